"""Worker of :mod:`osqp_peer`: runs in the OSQP venv (``python -I``), never the project's.

Arguments: QP (.npz), output folder, codegen prefix, settings (JSON).  Generates OSQP's
embedded code (mode 1: ``parameters='vectors'``, float) and solves the check states in
double precision with tight tolerances (to confirm the QP is the MPC's); prints one JSON
line: ``{"version": ..., "settings": {...}, "check_u0": [[...], ...]}``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import osqp
import scipy.sparse as sp

TIGHT = {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iter": 200000, "polishing": True}


def main() -> None:
    npz_path, out_dir, prefix, settings_json = sys.argv[1:5]
    d = np.load(npz_path)
    P = sp.csc_matrix((d["P_data"], d["P_indices"], d["P_indptr"]), shape=tuple(d["P_shape"]))
    A = sp.csc_matrix((d["A_data"], d["A_indices"], d["A_indptr"]), shape=tuple(d["A_shape"]))
    settings = json.loads(settings_json)
    i0, nu = int(d["u0_index"]), int(d["nu"])

    check = osqp.OSQP()
    check.setup(P, d["q"], A, d["l"], d["u"], verbose=False, **TIGHT)
    check_u0 = []
    for lo, up in zip(d["check_l"], d["check_u"], strict=True):
        check.update(l=lo, u=up)
        res = check.solve()
        check_u0.append([float(v) for v in res.x[i0:i0 + nu]])

    prob = osqp.OSQP()
    prob.setup(P, d["q"], A, d["l"], d["u"], verbose=False, **settings)
    prob.codegen(out_dir, prefix=prefix, parameters="vectors", use_float=True, force_rewrite=True)
    used = {k: getattr(prob.settings, k) for k in ("rho", "sigma", "alpha", "eps_abs", "eps_rel",
                                                   "max_iter", "check_termination", "scaling",
                                                   "adaptive_rho", "warm_starting")}
    print(json.dumps({"version": osqp.__version__, "settings": used, "check_u0": check_u0}))


if __name__ == "__main__":
    main()
