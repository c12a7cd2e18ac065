"""Write the structured MCU solver (``rlmpc_solver.c/.h`` + ``rlmpc_model.c``) of an MPC at fixed θ.

The QP keeps its stage structure: a primal-dual interior-point method (Mehrotra
predictor-corrector) whose Newton systems are solved by a Riccati recursion, as in
HPIPM (:file:`c/rlmpc_riccati.c.in` explains the algebra).  The stage matrices
(A_k, B_k, cost Hessians and gradients, constraint rows) are computed on the device by
the CasADi-generated stage functions of the RTI path
(:mod:`rlmpc.codegen.mcu.casadi_functions`), at the last plan shifted by one stage:
for a linear MPC that is exact, for a nonlinear one each call is one real-time
iteration (Gauss-Newton).  Memory O(N (nx+nu)²), work O(N (nx+nu)³) per iteration, static
arrays only.  The header has the dense solver's API and name (``rlmpc_solver.h``), so
the firmware builds it unchanged.  Identical inputs give identical files.

Command line::

    python -m rlmpc.codegen.mcu.structured.generate --problem lti --out build/mcu/lti_s
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

import casadi as cs
import numpy as np

from rlmpc.codegen.mcu.casadi_functions import STAGE, TERMINAL, generate_stage_functions
from rlmpc.codegen.mcu.condense import lqr_gain
from rlmpc.codegen.mcu.generate import PRECISIONS, TEMPLATES, c_array, c_number, parse_developer_args
from rlmpc.codegen.mcu.linearise import linearise
from rlmpc.codegen.mcu.structured.sources import StructuredFolder
from rlmpc.toolkit.nlp import slack_weights, stage_soft_rows
from rlmpc.toolkit.parameters import ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions, fix_theta

# template -> generated file (the header keeps the dense solver's name: the firmware looks for it)
STRUCTURED_FILES = {"rlmpc_riccati.h.in": "rlmpc_solver.h", "rlmpc_riccati.c.in": "rlmpc_solver.c"}
# interior-point iterations per solve unless the export says otherwise
MAX_ITER = 30
# linearisations of the first solve after start-up or a reset of a nonlinear model
COLD_SQP = 10
# start point, step and tolerances per precision
IPM_SETTINGS: dict[str, dict[str, float]] = {
    # float32: the stationarity residual's rounding floor is near 1e-4 (1 + max|g|); polishing
    # iterations go below it while it halves; lambda/t beyond ~1e6 spoils the Riccati factors
    "float32": {"t0": 1.0, "mu0": 1.0, "tau": 0.99, "tol_stat": 1e-4, "tol_eq": 1e-5, "tol_comp": 1e-6,
                "mu_min": 5e-7, "stat_rel": 1.0, "polish": 4, "reg": 1e-7, "inexact_eq": 1e-2},
    "float64": {"t0": 1.0, "mu0": 1.0, "tau": 0.995, "tol_stat": 1e-10, "tol_eq": 1e-11, "tol_comp": 1e-12,
                "mu_min": 1e-13, "stat_rel": 1.0, "polish": 0, "reg": 1e-12, "inexact_eq": 1e-2},
}


@dataclass(frozen=True)
class GeneratedStructured(StructuredFolder):
    """A generated structured solver folder and how to compile it."""

    @property
    def sources(self) -> list[Path]:
        return [self.directory / "rlmpc_solver.c", self.directory / "rlmpc_model.c"]


def _row_tables(fns: ProblemFunctions) -> dict[str, np.ndarray]:
    """Per row of a stage (inputs, state rows, path rows): bounds, soft flag, and the slack
    penalties of every stage k = 0..N (zero where the row is hard or absent)."""
    N, nu = fns.horizon, fns.nu
    sr, pr = fns.state_rows, fns.path_rows
    nh = sr.n + pr.n
    lo = np.concatenate([fns.u_lb, sr.lb, pr.lb])
    up = np.concatenate([fns.u_ub, sr.ub, pr.ub])
    soft = np.concatenate([np.zeros(nu, dtype=bool), sr.soft, pr.soft])
    wl, wq = np.zeros((N + 1, nu + nh)), np.zeros((N + 1, nu + nh))
    for k in range(N + 1):
        idx = stage_soft_rows(fns, k)
        lin, quad = slack_weights(fns, k)
        wl[k, nu + idx], wq[k, nu + idx] = lin, quad
    return {"lo": lo, "up": up, "soft": soft, "wl": wl, "wq": wq}


def dynamics_sparsity(fns: ProblemFunctions, theta: np.ndarray, p: ParameterValues | None
                      ) -> tuple[list[int], list[int], list[int], list[int]]:
    """Structural nonzeros of A = ∂f/∂x and B = ∂f/∂u by column (CSC pointers and rows)."""
    x, u = cs.SX.sym("x", fns.nx), cs.SX.sym("u", fns.nu)
    fixed = fix_theta(fns, theta) if fns.ntheta else fns
    f = fixed.dynamics(x, u, cs.SX(0, 1), cs.DM(fns.params.flatten(p, check_bounds=False)))
    out = []
    for var in (x, u):
        sp = cs.jacobian(f, var).sparsity()
        out += [list(sp.colind()), list(sp.row())]
    return out[0], out[1], out[2], out[3]


def render_structured(fns: ProblemFunctions, theta: ParameterValues | None = None,
                      p: ParameterValues | None = None, precision: str = "float32",
                      max_iter: int = MAX_ITER) -> tuple[dict[str, str], np.ndarray]:
    """The solver's files as text and the fallback's LQR gain."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter: expected a positive number of iterations, got {max_iter}")
    single = precision == "float32"
    th = fns.theta.flatten(theta)
    K = lqr_gain(linearise(fns, th, p))
    model = generate_stage_functions(fns, th, p, single)
    s_arg, s_res, s_iw, s_w = model.sizes[STAGE]
    t_arg, t_res, t_iw, t_w = model.sizes[TERMINAL]
    assert s_arg <= 3 and s_res <= 7 and t_arg <= 1 and t_res <= 4
    rows = _row_tables(fns)
    a_ptr, a_row, b_ptr, b_row = dynamics_sparsity(fns, th, p)
    if fns.nx > 255:
        raise ValueError(f"nx: the structured path stores row indices in bytes (nx <= 255), got {fns.nx}")
    th_hash = hashlib.sha256(np.ascontiguousarray(th, dtype="<f8").tobytes()).hexdigest()[:16]

    def arr(a: np.ndarray) -> str:
        return c_array(np.asarray(a, dtype=float), single)

    fields = {
        "name": fns.name,
        "summary": (f"problem hash {fns.problem_hash[:16]}, theta sha256 {th_hash}, {precision}, "
                    f"N={fns.horizon}, nx={fns.nx}, nu={fns.nu}, rows per stage={rows['lo'].size}"),
        "nx": str(fns.nx), "nu": str(fns.nu), "horizon": str(fns.horizon),
        "single": "1" if single else "0", "real": "float" if single else "double",
        "nhs": str(fns.state_rows.n), "nhp": str(fns.path_rows.n),
        "max_iter": str(int(max_iter)), "cold_sqp": "1" if fns.is_qp else str(COLD_SQP),
        "stage_iw": str(s_iw), "stage_w": str(s_w), "terminal_iw": str(t_iw), "terminal_w": str(t_w),
        "K": arr(K), "lo": arr(rows["lo"]), "up": arr(rows["up"]),
        "soft": ", ".join(str(int(s)) for s in rows["soft"]),
        "discount": arr(fns.discount ** np.arange(fns.horizon)),
        "wl": arr(rows["wl"]), "wq": arr(rows["wq"]),
        "nnz_a": str(max(len(a_row), 1)), "nnz_b": str(max(len(b_row), 1)),
        "a_ptr": ", ".join(map(str, a_ptr)), "a_row": ", ".join(map(str, a_row or [0])),
        "b_ptr": ", ".join(map(str, b_ptr)), "b_row": ", ".join(map(str, b_row or [0])),
        **{k: c_number(v, single) for k, v in IPM_SETTINGS[precision].items() if k != "polish"},
        "polish": str(int(IPM_SETTINGS[precision]["polish"])),
    }
    files = {out: Template((TEMPLATES / tpl).read_text()).substitute(fields)
             for tpl, out in STRUCTURED_FILES.items()}
    files["rlmpc_model.c"] = model.source
    return files, K


def generate_structured(fns: ProblemFunctions, out_dir: str | Path, theta: ParameterValues | None = None,
                        p: ParameterValues | None = None, precision: str = "float32",
                        max_iter: int = MAX_ITER) -> GeneratedStructured:
    """Write the structured solver and its model functions into ``out_dir`` (a build folder)."""
    files, K = render_structured(fns, theta, p, precision, max_iter)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    return GeneratedStructured(out, precision, K)


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.registry import PROBLEMS

    fns, theta, args = parse_developer_args("python -m rlmpc.codegen.mcu.structured.generate", __doc__,
                                            PROBLEMS, argv)
    gen = generate_structured(fns, args.out, theta, precision=args.precision)
    print(f"{gen.directory}: structured solver (interior point + Riccati), N={fns.horizon}, "
          f"nx={fns.nx}, nu={fns.nu}, {args.precision}")


if __name__ == "__main__":
    main()
