"""Write the real-time-iteration MCU solver (``rlmpc_rti.c/.h``) of a nonlinear MPC at fixed θ.

Like acados ``SQP_RTI`` with the Gauss-Newton Hessian: every call linearises the
CasADi model (generated C, :mod:`rlmpc.codegen.mcu.casadi_functions`) along the
previous plan shifted by one stage (``warm_start="plan"``: as it is, like acados), from
the last stage to the first, with a Riccati recursion on the way.  Its feedback
u = −K̂ₖ xₖ + k̂ₖ + Lₖ⁻ᵀ wₖ (R̂ₖ = Lₖ Lₖᵀ) turns the QP into DAQP's least-distance
problem in w with the identity Hessian.
Soft rows that the guess violates clearly (by more than :data:`PEN_MARGIN`) enter
the Riccati cost as their slack penalty instead (checked on the plan; the step is
repeated without a row the plan does not violate; at a cold start with many violated
rows, those far outside at w = 0, :data:`COLD_PEN`, likewise).  A forward pass at w = 0
evaluates every row: if none is violated, DAQP is not called.  Otherwise only the
violated rows and those of the previous working set are formed (normalised, each
only up to its stage, which the copy-time patch :mod:`rlmpc.codegen.mcu.daqp_rti_patch`
lets DAQP exploit) and DAQP solves that, warm-started; rows that its plan violates
are added and DAQP continues until none is, so the result is that of the full QP.
The C sources ask GCC for fused multiply-adds (``-std=c99`` turns contraction off;
about −20% instructions on a Cortex-M4F) and the float32 model inlines sin/cos near 0.
The fallback input after a failed solve is the LQR gain at a steady state, if there is
one (:mod:`rlmpc.codegen.mcu.fallback`), else NaN (the firmware then applies the previous
plan, shifted).  Files: ``rlmpc_rti.h``, ``rlmpc_rti.c``, ``rlmpc_model.c`` and ``daqp/``
(see :mod:`rlmpc.codegen.mcu.generate`).  Identical inputs give identical files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from rlmpc.codegen.mcu.casadi_functions import (
    STAGE,
    STAGE_COST,
    TERMINAL,
    cost_curvature_varies,
    generate_stage_functions,
)
from rlmpc.codegen.mcu.daqp_rti_patch import patch_daqp_rti
from rlmpc.codegen.mcu.daqp_sources import SOLVER_SOURCES
from rlmpc.codegen.mcu.fallback import Fallback, fallback_gain
from rlmpc.codegen.mcu.generate import (
    CYCLE_TOL,
    ITER_LIMIT,
    PRECISIONS,
    SETTINGS,
    TEMPLATES,
    c_array,
    c_number,
    copy_daqp,
    parse_developer_args,
)
from rlmpc.codegen.mcu.ldp import DAQP_SOFT, L1_LDP_WEIGHT
from rlmpc.codegen.mcu.linearise import linearise
from rlmpc.toolkit.parameters import ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions

RTI_FILES = ("rlmpc_rti.h", "rlmpc_rti.c")
# SQP iterations of the first step after start-up or RESET (no guess yet: iterate to convergence
# there; a cold RTI step was 8e-3 from the converged MPC on the cart-pole); the firmware and the
# benchmark both do this
STARTUP_ITERATIONS = 10
# the guess of the next call: the last plan shifted by one stage (default), or as it is (like
# acados SQP_RTI, whose closed loops it then reproduces).  Measured on the cart-pole
# (bench/rti_warm_start.py, tests/test_hil_targets.py): shifted is the closer to the converged
# MPC in normal operation (HIL |Δu| 1.1e-3 against 1.2e-2); as it is, it kept the pole in the 2
# of 40 large transients in which the shifted one lost it
WARM_STARTS = ("shifted", "plan")
# violation (original units) of a row left out of DAQP's problem that adds it after a solve:
# DAQP's own feasibility tolerance (which it applies to the normalised rows)
CHECK_TOL = SETTINGS["primal_tol"]
# working_set_consistent (rlmpc_rti.c.in): a row of DAQP's working set this far (times 10 + |M w|, plus DAQP's
# primal_tol) off its bound, or a free slack's side this far inside, makes the step INEXACT.  Float32: the RTI's
# rows and w carry more rounding than the dense solver's (held rows up to 3.9e-5 off on the inclined cart-pole's
# host check, where u0 is within 7.6e-6 of the float64 build; the defect it catches: 7.8e-4 at |M w| = 6.8)
VERIFY_TOL_P = {"float32": 1e-5, "float64": 1e-10}
# violation of a soft row at the guess above which its slack penalty enters the Riccati cost
# (cart-pole closed loops: 5e-3..2e-2 about equal; from 2e-3 down the plan too often does
# not violate it and the step is repeated)
PEN_MARGIN = 1e-2
# at a cold start with at least COLD_ALL violated rows: violation at w = 0 above which a soft
# row's penalty enters the cost, the step repeated (cart-pole: worst cold start 413k -> 200k
# instructions; 0.1 and 0.2 leave the plans of some inside, 0.5 too few rows)
COLD_PEN = 0.3
# rows formed at once from which one forward pass of the sensitivities is cheaper than one
# adjoint recursion per row
FORWARD_ROWS = 10
# a cost Hessian that depends on (x, u) and has no Cholesky factor is projected: its eigenvalues below
# EIG_MIN raised to it (acados' PROJECT and its default epsilon); Jacobi sweeps stop when the squared
# off-diagonal is below JACOBI_TOL times the squared diagonal
EIG_MIN = 1e-4
JACOBI_TOL = {"float32": 1e-12, "float64": 1e-24}
# rows violated at w = 0 after a reset from which DAQP gets every row at once (cart-pole's
# worst cold start: 36 instead of 48 QP iterations)
COLD_ALL = 8


@dataclass(frozen=True)
class GeneratedRti:
    """A generated RTI solver folder and how to compile it."""

    directory: Path
    precision: str
    K: np.ndarray
    n_rows: int
    fallback: Fallback | None = field(default=None, compare=False)

    @property
    def sources(self) -> list[Path]:
        return [self.directory / "rlmpc_rti.c", self.directory / "rlmpc_model.c",
                *(self.directory / "daqp" / "src" / s for s in SOLVER_SOURCES)]

    @property
    def include_dirs(self) -> list[Path]:
        return [self.directory, self.directory / "daqp" / "include"]

    @property
    def cflags(self) -> list[str]:
        if self.precision == "float32":
            return ["-DDAQP_SINGLE_PRECISION", "-fsingle-precision-constant"]
        return []


def render_rti(fns: ProblemFunctions, theta: ParameterValues | None = None,
               p: ParameterValues | None = None, precision: str = "float32",
               warm_start: str = "shifted", operating_point: Any = None, runtime: bool = False
               ) -> tuple[dict[str, str], Fallback, int]:
    """The solver's files as text, its fallback and the number of QP rows; ``operating_point``:
    of the fallback gain (:func:`rlmpc.codegen.mcu.fallback.fallback_gain`); ``runtime``: θ and p
    are inputs of the stage models, kept in RAM (``rlmpc_set_theta``, ``rlmpc_set_params``:
    SET_THETA and STEP_PARAMS); otherwise compiled in."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if warm_start not in WARM_STARTS:
        raise ValueError(f"warm_start: expected one of {WARM_STARTS}, got {warm_start!r}")
    single = precision == "float32"
    th = fns.theta.flatten(theta)
    ocp = linearise(fns, th, p)  # at the origin: the row structure
    fb = fallback_gain(fns, th, fns.params.flatten(p, check_bounds=False), operating_point)
    K = fb.K if fb.K is not None else np.zeros((fns.nu, fns.nx))
    nu = fns.nu
    sense, w_l, w_u, wq_l, wq_u = [], [], [], [], []
    for st in ocp.stages:
        rows = st.rows
        if st.B.shape[1]:  # inputs first (stages 0..N-1)
            sense += [0] * nu
            w_l += [0.0] * nu
            w_u += [0.0] * nu
            wq_l += [0.0] * nu
            wq_u += [0.0] * nu
        sense += [DAQP_SOFT if s else 0 for s in rows.soft]
        w_l += list(rows.w_lin)
        w_u += list(rows.w_lin)
        wq_l += list(rows.w_quad)
        wq_u += list(rows.w_quad)
    sr, pr = fns.state_rows, fns.path_rows
    model = generate_stage_functions(fns, th, p, single, runtime)
    p_flat = fns.params.flatten(p, check_bounds=False)
    s_arg, s_res, s_iw, s_w = model.sizes[STAGE]
    t_arg, t_res, t_iw, t_w = model.sizes[TERMINAL]
    c_arg, c_res, c_iw, c_w = model.sizes[STAGE_COST]
    th_hash = hashlib.sha256(np.ascontiguousarray(th, dtype="<f8").tobytes()).hexdigest()[:16]

    def arr(a: np.ndarray | list[float]) -> str:
        return c_array(np.asarray(a, dtype=float), single)

    fields = {
        "name": fns.name,
        "summary": (f"problem hash {fns.problem_hash[:16]}, theta sha256 {th_hash}, {precision}, "
                    f"N={fns.horizon}, nz={fns.horizon * nu}, constraints={len(sense)}"),
        "nx": str(fns.nx), "nu": str(nu), "horizon": str(fns.horizon),
        "single": "1" if single else "0", "real": "float" if single else "double",
        "guess_shift": "1" if warm_start == "shifted" else "0",
        "guess_note": " shifted by one stage" if warm_start == "shifted" else "",
        "nhs": str(sr.n), "nhp": str(pr.n), "m": str(len(sense)),
        "nw": str(fns.horizon * nu + sum(1 for s in sense if s & DAQP_SOFT)),
        "stage_iw": str(s_iw), "stage_w": str(s_w), "terminal_iw": str(t_iw), "terminal_w": str(t_w),
        "cost_iw": str(c_iw), "cost_w": str(c_w),
        "K": arr(K), "has_gain": "1" if fb.K is not None else "0",
        "x_op": arr(fb.x_op), "u_op": arr(fb.u_op), "u_lb": arr(fns.u_lb), "u_ub": arr(fns.u_ub),
        "h_lb": arr(np.concatenate([sr.lb, pr.lb])), "h_ub": arr(np.concatenate([sr.ub, pr.ub])),
        "discount": arr(fns.discount ** np.arange(fns.horizon)),
        "sense": ", ".join(str(s) for s in sense),
        "w_l": arr(w_l), "w_u": arr(w_u), "wq_l": arr(wq_l), "wq_u": arr(wq_u),
        "l1_weight": c_number(L1_LDP_WEIGHT[precision], single),
        "cycle_tol": str(CYCLE_TOL), "iter_limit": str(ITER_LIMIT),
        "verify_tol_p": c_number(VERIFY_TOL_P[precision], single),
        "check_tol": c_number(CHECK_TOL, single), "pen_margin": c_number(PEN_MARGIN, single),
        "forward_rows": str(FORWARD_ROWS), "cold_all": str(COLD_ALL),
        "cold_pen": c_number(COLD_PEN, single),
        "runtime": "1" if runtime else "0",
        "convexify": "1" if cost_curvature_varies(fns, th, p, runtime) else "0",
        "eig_min": c_number(EIG_MIN, single), "jacobi_tol": c_number(JACOBI_TOL[precision], single),
        "ntheta_rt": str(fns.ntheta if runtime else 0), "np_rt": str(fns.np if runtime else 0),
        "theta0": arr(th), "p0": arr(p_flat),
        "theta_lb": arr(fns.theta.lower()), "theta_ub": arr(fns.theta.upper()),
        **{k: c_number(v, single) for k, v in SETTINGS.items()},
    }
    extra = 2 if runtime else 0
    assert s_arg <= 3 + extra and s_res <= 7 and t_arg <= 1 + extra and t_res <= 4 and c_arg <= 3 + extra \
        and c_res <= 2
    files = {name: Template((TEMPLATES / f"{name}.in").read_text()).substitute(fields)
             for name in RTI_FILES}
    files["rlmpc_model.c"] = model.source
    return files, fb, len(sense)


def generate_rti(fns: ProblemFunctions, out_dir: str | Path, theta: ParameterValues | None = None,
                 p: ParameterValues | None = None, precision: str = "float32",
                 warm_start: str = "shifted", operating_point: Any = None,
                 runtime: bool = False) -> GeneratedRti:
    """Write the RTI solver, its model functions and DAQP into ``out_dir`` (a build folder);
    ``warm_start``: the next call's guess is the plan as it is or shifted (:data:`WARM_STARTS`);
    ``operating_point``: of the fallback gain (:func:`rlmpc.codegen.mcu.fallback.fallback_gain`);
    ``runtime``: θ and p set at run time (see :func:`render_rti`)."""
    files, fb, m = render_rti(fns, theta, p, precision, warm_start, operating_point, runtime)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    copy_daqp(out)
    patch_daqp_rti(out / "daqp")
    K = fb.K if fb.K is not None else np.zeros((fns.nu, fns.nx))
    return GeneratedRti(out, precision, K, m, fb)


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.registry import PROBLEMS

    fns, theta, args = parse_developer_args("python -m rlmpc.codegen.mcu.generate_rti", __doc__, PROBLEMS, argv)
    gen = generate_rti(fns, args.out, theta, precision=args.precision)
    print(f"{gen.directory}: RTI solver, {fns.horizon * fns.nu} variables, {gen.n_rows} rows, "
          f"{args.precision}")


if __name__ == "__main__":
    main()
