"""Write the malloc-free C99 MPC solver (``rlmpc_solver.c/.h``) of a linear MPC at fixed θ.

The output folder is self-contained: the solver, the DAQP sources it needs
(``daqp/src``, ``daqp/include``, with DAQP's licence; patched to use the precomputed
Gram matrix, see :mod:`rlmpc.codegen.mcu.daqp_patch`) and nothing else.  Build it with the
sources and defines of :class:`GeneratedSolver`, e.g. for float32::

    cc -std=c99 -DDAQP_SINGLE_PRECISION -fsingle-precision-constant -Idaqp/include \\
       -c rlmpc_solver.c daqp/src/daqp.c daqp/src/auxiliary.c daqp/src/factorization.c

and link with ``-lm`` (``fmaf``, which a Cortex-M4F build inlines as VFMA).

Identical inputs give byte-identical files.  Command line::

    python -m rlmpc.codegen.mcu.generate --problem lti --out build/mcu/lti [--theta θ.json]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np

from rlmpc.codegen.mcu.condense import CondensedQP, condense
from rlmpc.codegen.mcu.daqp_patch import copy_patched_daqp
from rlmpc.codegen.mcu.daqp_sources import LICENSE_NAME, SOLVER_HEADERS, SOLVER_SOURCES, daqp_sources
from rlmpc.codegen.mcu.ldp import DAQP_INF, LdpData, ldp_data
from rlmpc.codegen.mcu.linearise import LinearisedOcp, linearise
from rlmpc.codegen.mcu.param_affine import ParamAffine, param_affine
from rlmpc.codegen.mcu.theta_model import FILE as THETA_MODEL_FILE
from rlmpc.codegen.mcu.theta_model import theta_model
from rlmpc.toolkit.parameters import ParameterValues
from rlmpc.toolkit.problem import ParametricMPC, ProblemFunctions

TEMPLATES = Path(__file__).parent / "c"
PRECISIONS = ("float32", "float64")
SOLVER_FILES = ("rlmpc_solver.h", "rlmpc_solver.c")

# DAQP's defaults (constants.h), except a bounded iteration count for real time
SETTINGS = {"primal_tol": 1e-6, "dual_tol": 1e-12, "zero_tol": 1e-11, "pivot_tol": 1e-8,
            "progress_tol": 1e-14, "sing_tol": 3.7e-11, "refactor_tol": 1e-9, "rho_default": 1e-6}
CYCLE_TOL = 10
# polish_l1 (rlmpc_solver.c.in) runs when DAQP's u0 is off by about this much or more (estimated from the
# free purely linear soft sides: their multiplier excess over w times their u0 rows): below it DAQP's
# answer is as accurate as the polish's own rounding (float32: a few 1e-6 on the LTI problem)
POLISH_MIN_EXCESS = {"float32": 3e-6, "float64": 1e-12}
# polish_l1: a row whose squared distance from the span of the held rows is below this depends on them
POLISH_DEP_TOL = {"float32": 1e-5, "float64": 1e-10}
# the verification of an answer against the exact problem's optimality conditions (rlmpc_solver.c.in,
# verify_answer): primal tolerance relative to 1 + |M u| (plus DAQP's primal_tol) and dual relative to
# 1 + |lam| (rows normalised); an answer that fails it is reported RLMPC_OPTIMAL_INEXACT
VERIFY_TOL = {"float32": (1e-5, 1e-4), "float64": (1e-9, 1e-8)}
ITER_LIMIT = 1000
# M Mᵀ (m² numbers in flash) replaces DAQP's products of M up to this size; larger problems
# keep DAQP's own products (same results up to rounding, more instructions)
GRAM_MAX_BYTES = 16 * 1024
# the warm start's working set may be joined with its copy one stage earlier up to this many
# rows (rlmpc_solver.c.in, shift_working_set; 0: never).  Measured on the linear cart-pole bench
# (bench/mcu_solver.py, 40 loops): 8 and 12 the same; with 20 the steps with the cart far past
# its limit (20–36 rows active) cost 5 % more on average (2.5× if the join were always made).
SHIFT_MAX_ACTIVE = 12


@dataclass(frozen=True)
class GeneratedSolver:
    """A generated solver folder and how to compile it."""

    directory: Path
    precision: str
    qp: CondensedQP
    ldp: LdpData

    @property
    def sources(self) -> list[Path]:
        model = [self.directory / THETA_MODEL_FILE] if (self.directory / THETA_MODEL_FILE).exists() else []
        return [self.directory / "rlmpc_solver.c", *model,
                *(self.directory / "daqp" / "src" / s for s in SOLVER_SOURCES)]

    @property
    def include_dirs(self) -> list[Path]:
        return [self.directory, self.directory / "daqp" / "include"]

    @property
    def cflags(self) -> list[str]:
        """Defines and flags that the precision needs (add your own -O, -mcpu, …)."""
        if self.precision == "float32":
            return ["-DDAQP_SINGLE_PRECISION", "-fsingle-precision-constant"]
        return []


def c_number(value: float, single: bool) -> str:
    """Shortest round-trip C literal of ``value`` in the target precision (±inf → ±DAQP_INF)."""
    x = float(value)
    if not np.isfinite(x):
        x = DAQP_INF if x > 0 else -DAQP_INF
    return str(np.float32(x)) + "f" if single else repr(x)


def c_array(values: np.ndarray, single: bool, per_line: int = 6) -> str:
    """Comma-separated literals of a flattened (row-major) array, wrapped."""
    flat = np.asarray(values, dtype=float).ravel()
    items = [c_number(v, single) for v in flat]
    if not items:
        return "0"
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "\n    " + ",\n    ".join(lines) + "\n"


def _summary(fns: ProblemFunctions, theta: np.ndarray, qp: CondensedQP, precision: str) -> str:
    th = hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()[:16]
    return (f"problem hash {fns.problem_hash[:16]}, theta sha256 {th}, {precision}, "
            f"N={qp.horizon}, nz={qp.nz}, constraints={qp.m}, cond(H)={qp.cond_h:.3g}")


def _gram_fields(ldp: LdpData, single: bool) -> dict[str, str]:
    """The Gram matrix's declaration and the workspace's pointer to it (none if too large)."""
    if ldp.m * ldp.m * (4 if single else 8) > GRAM_MAX_BYTES:
        return {"gram_decl": "/* no GRAM: M M' would exceed GRAM_MAX_BYTES of flash */\n",
                "gram_ref": "0"}
    return {"gram_decl": f"static TC c_float GRAM[NC * NC] = {{{c_array(ldp.gram, single)}}};\n",
            "gram_ref": "GRAM"}


def _fma_dot(n: int) -> str:
    """C expression of dx[0..n) · xl[0..n) as a chain of fused multiply-adds."""
    expr = "dx[0] * xl[0]"
    for j in range(1, n):
        expr = f"FMA(dx[{j}], xl[{j}], {expr})"
    return expr


def u0_rows(qp: CondensedQP) -> np.ndarray:
    """Per row: 1 + i if it is the bound of input i at stage 0 (label ``u[i]@0``), else 0."""
    return np.array([int(lbl[2:-3]) + 1 if lbl.startswith("u[") and lbl.endswith("]@0") else 0
                     for lbl in qp.labels], dtype=int)


def l1_sides(qp: CondensedQP) -> np.ndarray:
    """Per row: 1 if its lower, 2 if its upper side is soft with a purely linear penalty (bits)."""
    pure = qp.soft[:, None] & (qp.w_quad == 0)
    return pure[:, 0].astype(int) | 2 * pure[:, 1].astype(int)


def _ints(values: np.ndarray) -> str:
    return ", ".join(str(int(v)) for v in np.ravel(values)) or "0"


def _doubles(values: np.ndarray) -> str:
    return c_array(np.asarray(values, dtype=float), single=False)


def _theta_fields(fns: ProblemFunctions, qp: CondensedQP, theta: np.ndarray, sz_iw: int, sz_w: int,
                  gram: bool, precision: str) -> dict[str, str]:
    """The fields of ``rlmpc_solver_theta.c.in`` (the on-device precomputation after SET_THETA)."""
    from rlmpc.codegen.mcu.ldp import L1_LDP_WEIGHT

    finite_u = np.where(np.isfinite(fns.u_lb) | np.isfinite(fns.u_ub))[0]
    sr, pr = fns.state_rows, fns.path_rows
    h_lb = np.concatenate([sr.lb, pr.lb])
    h_ub = np.concatenate([sr.ub, pr.ub])
    coef, lo, up = (np.full(qp.n_raw, -1, dtype=int) for _ in range(3))
    for row, (c, lo_src, up_src) in enumerate(qp.sources):
        coef[c] = row
        if lo_src >= 0:
            lo[lo_src] = row
        if up_src >= 0:
            up[up_src] = row
    return {
        "nhs": str(sr.n), "nhp": str(pr.n), "nuf": str(finite_u.size), "n_raw": str(qp.n_raw),
        "lin_sz_iw": str(sz_iw), "lin_sz_w": str(sz_w), "uf_idx": _ints(finite_u),
        "h_lb": _doubles(h_lb) if h_lb.size else "0", "h_ub": _doubles(h_ub) if h_ub.size else "0",
        "raw_coef": _ints(coef), "raw_lo": _ints(lo), "raw_up": _ints(up),
        "lo_open": _ints(qp.sources[:, 1] < 0), "up_open": _ints(qp.sources[:, 2] < 0),
        "wq_l": _doubles(qp.w_quad[:, 0]), "wq_u": _doubles(qp.w_quad[:, 1]),
        "theta0": _doubles(theta), "discount": repr(float(fns.discount)),
        "gram_used": "1" if gram else "0", "l1_weight": repr(L1_LDP_WEIGHT[precision]),
        "theta_lb": c_array(fns.theta.lower(), precision == "float32"),
        "theta_ub": c_array(fns.theta.upper(), precision == "float32"),
    }


def plan_dynamics(ocp: LinearisedOcp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, c) stacked per stage, or only once if every stage has the same dynamics."""
    stages = ocp.stages[: ocp.horizon]
    A = np.array([s.A for s in stages])
    B = np.array([s.B for s in stages])
    c = np.array([np.ravel(s.c) for s in stages])
    if all(np.array_equal(a, A[0]) for a in A) and all(np.array_equal(b, B[0]) for b in B) \
            and all(np.array_equal(v, c[0]) for v in c):
        return A[:1], B[:1], c[:1]
    return A, B, c


def render(fns: ProblemFunctions, theta: ParameterValues | None = None,
           p: ParameterValues | None = None,
           precision: str = "float32", shift_max_active: int = SHIFT_MAX_ACTIVE,
           runtime_theta: bool = False) -> tuple[dict[str, str], CondensedQP, LdpData]:
    """The solver's files as text (no I/O); the condensed QP and LDP data they hold.

    ``runtime_theta``: θ-dependent data in RAM, recomputed on the device by ``rlmpc_set_theta``
    (SET_THETA), and p taken at run time (``rlmpc_set_params``, STEP_PARAMS); otherwise constant
    (flash), θ and p compiled in."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if not fns.is_qp:
        raise ValueError(f"{fns.name}: the MCU solver needs a linear MPC (affine dynamics and "
                         "constraints, quadratic cost); for a nonlinear one use rlmpc.codegen.mcu.generate_rti")
    single = precision == "float32"
    theta_flat = fns.theta.flatten(theta)
    p_flat = fns.params.flatten(p, check_bounds=False)
    ocp = linearise(fns, theta_flat, p_flat)
    qp = condense(ocp)
    ldp = ldp_data(qp, precision)
    dyn_a, dyn_b, dyn_c = plan_dynamics(ocp)

    def ldp_at(pv: np.ndarray) -> tuple[CondensedQP, LdpData, np.ndarray]:
        o = linearise(fns, theta_flat, pv)
        q = condense(o, K=qp.K)
        return q, ldp_data(q, precision), plan_dynamics(o)[2]

    if runtime_theta:  # θ and p at run time (SET_THETA, STEP_PARAMS)
        pa: ParamAffine = param_affine(ldp_at, p_flat)
    else:  # both compiled in
        pa = ParamAffine(p0=np.zeros(0), DUp=np.zeros((ldp.m, 0)), DLp=np.zeros((ldp.m, 0)),
                         Vp=np.zeros((ldp.n, 0)), U0p=np.zeros((ldp.nu, 0)), Cp=np.zeros((dyn_c.size, 0)))

    def arr(a: np.ndarray) -> str:
        return c_array(a, single)

    fields = {
        "name": fns.name, "summary": _summary(fns, theta_flat, qp, precision),
        "nx": str(qp.nx), "nu": str(qp.nu), "horizon": str(qp.horizon),
        "single": "1" if single else "0", "real": "float" if single else "double",
        "n": str(ldp.n), "m": str(ldp.m), "nw": str(ldp.n + ldp.n_soft),
        "K": arr(ldp.K), "u_lb": arr(fns.u_lb), "u_ub": arr(fns.u_ub), "Rinv": arr(ldp.Rinv),
        "M": arr(ldp.M), "scaling": arr(ldp.scaling), "v0": arr(ldp.v0), "Vx": arr(ldp.Vx),
        "du0": arr(ldp.du0), "dl0": arr(ldp.dl0), "Dx": arr(ldp.Dx),
        "sense": ", ".join(str(int(s)) for s in ldp.sense),
        "rho_l": arr(ldp.rho_soft[:, 0]), "rho_u": arr(ldp.rho_soft[:, 1]),
        "w_l": arr(ldp.w_soft[:, 0]), "w_u": arr(ldp.w_soft[:, 1]),
        "l1_side": _ints(l1_sides(qp)), "l1_polish": "1" if l1_sides(qp).any() else "0", "u0_row": _ints(u0_rows(qp)),
        "polish_min_excess": c_number(POLISH_MIN_EXCESS[precision], single),
        "polish_dep_tol": c_number(POLISH_DEP_TOL[precision], single),
        "verify_tol_p": c_number(VERIFY_TOL[precision][0], single),
        "verify_tol_d": c_number(VERIFY_TOL[precision][1], single),
        **{k: v.replace("TC ", "" if runtime_theta and fns.ntheta else "const ")
           for k, v in _gram_fields(ldp, single).items()},
        "u0m": arr(ldp.M @ ldp.U0u.T), "u0c": arr(ldp.u0c), "u0x": arr(ldp.U0x),
        "dx_dot": _fma_dot(qp.nx), "tc": "" if runtime_theta and fns.ntheta else "const ",
        "ntheta_runtime": str(fns.ntheta if runtime_theta else 0),
        "shift_max_active": str(int(shift_max_active)),
        "earlier_row": ", ".join(str(int(r)) for r in qp.earlier_rows()) or "0",
        "ndyn": str(dyn_a.shape[0]),
        "dyn_a": arr(dyn_a), "dyn_b": arr(dyn_b), "dyn_c": arr(dyn_c),
        "np": str(pa.p0.size), "np_alloc": str(max(pa.p0.size, 1)),
        "p0": arr(pa.p0), "dup": arr(pa.DUp), "dlp": arr(pa.DLp), "vp": arr(pa.Vp),
        "u0p": arr(pa.U0p), "cp": arr(pa.Cp),
        "cycle_tol": str(CYCLE_TOL), "iter_limit": str(ITER_LIMIT),
        **{k: c_number(v, single) for k, v in SETTINGS.items()},
    }
    fields["theta_code"] = ""
    if runtime_theta and fns.ntheta:
        source, sz_iw, sz_w = theta_model(fns)
        fields["theta_code"] = Template((TEMPLATES / "rlmpc_solver_theta.c.in").read_text()).substitute(
            fields, **_theta_fields(fns, qp, theta_flat, sz_iw, sz_w, ldp.m * ldp.m * (4 if single else 8)
                                    <= GRAM_MAX_BYTES, precision))
    files = {name: Template((TEMPLATES / f"{name}.in").read_text()).substitute(fields)
             for name in SOLVER_FILES}
    if runtime_theta and fns.ntheta:
        files[THETA_MODEL_FILE] = source
    return files, qp, ldp


def generate(fns: ProblemFunctions, out_dir: str | Path, theta: ParameterValues | None = None,
             p: ParameterValues | None = None, precision: str = "float32",
             shift_max_active: int = SHIFT_MAX_ACTIVE, runtime_theta: bool = False) -> GeneratedSolver:
    """Write the solver and the DAQP sources it needs into ``out_dir`` (a build folder)."""
    files, qp, ldp = render(fns, theta, p, precision, shift_max_active, runtime_theta)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    copy_patched_daqp(out)
    return GeneratedSolver(out, precision, qp, ldp)


def copy_daqp(out: Path) -> None:
    """Copy the DAQP sources the solver compiles, with DAQP's licence, to ``out/daqp``."""
    src = daqp_sources()
    for sub, names in (("src", SOLVER_SOURCES), ("include", SOLVER_HEADERS)):
        (out / "daqp" / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(src / sub / name, out / "daqp" / sub / name)
    shutil.copyfile(src / LICENSE_NAME, out / "daqp" / LICENSE_NAME)


ProblemBuilders = dict[str, Callable[[], ParametricMPC]]


def parse_developer_args(prog: str, description: str | None, problems: ProblemBuilders, argv: list[str] | None
                         ) -> tuple[ProblemFunctions, np.ndarray | None, argparse.Namespace]:
    """The developer command line of a generator: ``--problem``/``--theta``, ``--out``, ``--precision``."""
    from rlmpc.toolkit.theta_file import load_theta

    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(problems), help="problem at its default θ")
    parser.add_argument("--theta", help="θ file from `rlmpc train` (names the problem)")
    parser.add_argument("--out", required=True, help="output folder (outside the repository)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    args = parser.parse_args(argv)
    if (args.problem is None) == (args.theta is None):
        parser.error("give exactly one of --problem and --theta")
    if args.theta is not None:
        tf = load_theta(args.theta)
        return tf.fns, tf.values, args
    return problems[args.problem]().build(), None, args


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc
    from rlmpc.toolkit.registry import PROBLEMS

    fns, theta, args = parse_developer_args("python -m rlmpc.codegen.mcu.generate", __doc__,
                                            {**PROBLEMS, "linear_cartpole": linear_cartpole_mpc}, argv)
    try:
        gen = generate(fns, args.out, theta, precision=args.precision)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    print(f"{gen.directory}: {gen.qp.nz} variables, {gen.qp.m} constraints, "
          f"cond(H) = {gen.qp.cond_h:.3g}, {args.precision}")


if __name__ == "__main__":
    main()
