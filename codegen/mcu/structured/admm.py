"""Write the ADMM MCU solver (``rlmpc_solver.c/.h``) of a time-invariant MPC at fixed θ, p.

The QP data come from :func:`rlmpc.codegen.mcu.structured.lti.lti_qp` (one definition of the
problem: the same CasADi functions as acados and the other paths), the Riccati gains of the
ρ-augmented cost from :func:`~rlmpc.codegen.mcu.structured.lti.admm_factors` (float64, at export).
A, B and the constraint rows become straight-line C over their nonzeros; the gains are constant
arrays (flash).  :file:`c/rlmpc_admm.c.in` explains the iteration.  Same header and API as the
other MCU solvers.  Identical inputs give identical files.

Command line::

    python -m rlmpc.codegen.mcu.structured.admm --problem quadrotor_hover --out build/mcu/hover_admm
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np

from rlmpc.codegen.mcu.condense import lqr_gain
from rlmpc.codegen.mcu.generate import PRECISIONS, TEMPLATES, c_array, c_number, parse_developer_args
from rlmpc.codegen.mcu.linearise import linearise
from rlmpc.codegen.mcu.structured.lti import LtiQp, admm_factors, lti_qp
from rlmpc.codegen.mcu.structured.sources import StructuredFolder
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions

ADMM_FILES = {"rlmpc_admm.h.in": "rlmpc_solver.h", "rlmpc_admm.c.in": "rlmpc_solver.c"}
MAX_ITER = 200  # ADMM iterations per solve unless the export says otherwise
# over-relaxation, residual check period and tolerances per precision (the penalty ρ: measured at
# export by :mod:`~rlmpc.codegen.mcu.structured.rho_choice` unless the settings give "rho")
ADMM_SETTINGS: dict[str, dict[str, float]] = {
    "float32": {"alpha": 1.6, "check_every": 1, "tol_prim": 1e-6, "tol_dual": 1e-6},
    "float64": {"alpha": 1.6, "check_every": 1, "tol_prim": 1e-9, "tol_dual": 1e-9},
}
TAIL_TOL = {"float32": 1e-8, "float64": 1e-14}  # gains this close to the stationary ones are shared


@dataclass(frozen=True)
class GeneratedAdmm(StructuredFolder):
    """A generated ADMM solver folder and how to compile it."""

    tail: int  # stages with their own gains
    rho: float
    max_iter: int

    @property
    def sources(self) -> list[Path]:
        return [self.directory / "rlmpc_solver.c"]


def _term(c: float, var: str, single: bool) -> str:
    if c == 1.0:
        return f"+ {var}"
    if c == -1.0:
        return f"- {var}"
    lit = c_number(abs(c), single)
    return f"{'-' if c < 0 else '+'} ({lit}) * {var}"


def _lines(M: FloatArray, var: str | list[str], out: str, op: str, single: bool, transpose: bool = False) -> str:
    """Straight-line ``out[i] op sum_j M[i, j] var[j]`` over the nonzeros (``transpose``: of M';
    ``var``: an array name or one C expression per column)."""
    mat = np.asarray(M, dtype=float)
    mat = mat.T if transpose else mat
    names = [f"{var}[{j}]" for j in range(mat.shape[1])] if isinstance(var, str) else var
    rows = []
    for i in range(mat.shape[0]):
        terms = [_term(float(mat[i, j]), names[j], single) for j in range(mat.shape[1]) if mat[i, j] != 0.0]
        if not terms:
            if op == "=":
                rows.append(f"    {out}[{i}] = 0;")
            continue
        expr = " ".join(terms)
        expr = expr[2:] if expr.startswith("+ ") else "-" + expr[2:]
        rows.append(f"    {out}[{i}] {op} {expr};")
    return "\n".join(rows)


_RHO_CACHE: dict[tuple[str, bytes, bytes], float] = {}


def _measured_rho(fns: ProblemFunctions, qp: LtiQp, th: FloatArray, p: ParameterValues | None) -> float:
    """:func:`~rlmpc.codegen.mcu.structured.rho_choice.choose_rho` from two cold starts (cached per
    problem, θ and p: both precisions of an export get the same ρ)."""
    from rlmpc.codegen.mcu.host_check import random_states
    from rlmpc.codegen.mcu.structured.rho_choice import choose_rho

    key = (fns.problem_hash, np.asarray(th, dtype="<f8").tobytes(),
           np.asarray(fns.params.flatten(p, check_bounds=False), dtype="<f8").tobytes())
    if key not in _RHO_CACHE:
        _RHO_CACHE[key] = choose_rho(qp, random_states(fns, 2, 0), TAIL_TOL["float64"])[0]
    return _RHO_CACHE[key]


def _pattern(mats: list[FloatArray], rel: float = 1e-12) -> np.ndarray:
    """Entries nonzero in any of the matrices (relative to the largest entry): structural zeros of
    the gains (e.g. decoupled axes) are exact zeros up to rounding."""
    stack = np.abs(np.asarray(mats, dtype=float))
    return np.any(stack > rel * max(float(stack.max(initial=0.0)), 1e-300), axis=0)


def _compact(M: FloatArray, mask: np.ndarray) -> FloatArray:
    return np.asarray(M, dtype=float)[mask]


def _masked_lines(mask: np.ndarray, coef: str, var: str, out: str, op: str, transpose: bool = False,
                  first: str | None = None) -> str:
    """Straight-line ``out[i] op sum coef[q] var[j]`` over the mask's nonzeros (q: their row-major
    index; ``transpose``: over the columns); ``first``: an array subtracted first (u = -K x - d)."""
    idx = np.full(np.shape(mask), -1, dtype=int)
    idx[mask] = np.arange(int(mask.sum()))
    m = idx.T if transpose else idx
    n_out, n_in = np.shape(m)[0], np.shape(m)[-1]
    rows = []
    for i in range(n_out):
        terms = [f"{coef}[{m[i, j]}] * {var}[{j}]" for j in range(n_in) if m[i, j] >= 0]
        if first is not None:
            rows.append(f"    {out}[{i}] = -{first}[{i}]" + "".join(f" - {t}" for t in terms) + ";")
        elif terms:
            rows.append(f"    {out}[{i}] {op} " + " + ".join(terms) + ";")
        elif op == "=":
            rows.append(f"    {out}[{i}] = 0;")
    return "\n".join(rows)


def render_admm(fns: ProblemFunctions, theta: ParameterValues | None = None, p: ParameterValues | None = None,
                precision: str = "float32", max_iter: int = MAX_ITER,
                settings: dict[str, float] | None = None) -> tuple[dict[str, str], np.ndarray, int, float]:
    """The solver's files as text, the fallback's LQR gain, the number of stages with their own gains
    and ρ.

    Raises :class:`~rlmpc.codegen.mcu.structured.lti.NotTimeInvariant` (a ValueError) for a problem
    that is not a time-invariant QP.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter: expected a positive number of iterations, got {max_iter}")
    single = precision == "float32"
    st = {**ADMM_SETTINGS[precision], **(settings or {})}
    th = fns.theta.flatten(theta)
    qp = lti_qp(fns, th, p)
    if "rho" not in st:
        st["rho"] = _measured_rho(fns, qp, th, p)
    fac = admm_factors(qp, float(st["rho"]), TAIL_TOL[precision])
    K = lqr_gain(linearise(fns, th, p))
    nx, nu, nhs = qp.nx, qp.nu, qp.nhs
    Cs = qp.G[nu:nu + nhs, :nx]
    Cp, Dp = qp.G[nu + nhs:, :nx], qp.G[nu + nhs:, nx:]
    th_hash = hashlib.sha256(np.ascontiguousarray(th, dtype="<f8").tobytes()).hexdigest()[:16]
    soft = qp.soft & qp.rows_on()
    pinv = np.where(soft, 1.0 / (qp.wq + fac.rho + (fac.rho == 0)), 0.0)
    kmask = _pattern([fac.K_inf, *fac.K_tail])
    qmask = _pattern([fac.Quu_inv_inf, *fac.Quu_inv_tail])
    has_w = bool(np.any(qp.w != 0) or np.any(qp.w_n != 0))

    def arr(a: np.ndarray) -> str:
        return c_array(np.asarray(a, dtype=float), single)

    fields = {
        "name": fns.name,
        "summary": (f"problem hash {fns.problem_hash[:16]}, theta sha256 {th_hash}, {precision}, N={fns.horizon}, "
                    f"nx={nx}, nu={nu}, rows per stage={qp.nr}, rho={st['rho']:g}, stages with own gains={fac.tail}"),
        "nx": str(nx), "nu": str(nu), "horizon": str(fns.horizon),
        "single": "1" if single else "0", "real": "float" if single else "double",
        "nhs": str(nhs), "nhp": str(qp.nhp), "tail": str(fac.tail), "max_iter": str(int(max_iter)),
        "check_every": str(int(st["check_every"])),
        "tol_prim": c_number(st["tol_prim"], single), "tol_dual": c_number(st["tol_dual"], single),
        "alpha": c_number(st["alpha"], single), "has_w": "1" if has_w else "0",
        "K": arr(K), "lo": arr(qp.lo), "up": arr(qp.up),
        "on": ", ".join(str(int(v)) for v in qp.rows_on()), "soft": ", ".join(str(int(v)) for v in soft),
        "rho": arr(fac.rho), "wl": arr(np.where(soft, qp.wl, 0.0)), "pinv": arr(pinv),
        "wx": arr(qp.w[:nx]), "wu": arr(qp.w[nx:]), "wxn": arr(qp.w_n),
        "nnz_k": str(max(int(kmask.sum()), 1)), "nnz_q": str(max(int(qmask.sum()), 1)),
        "kinf": arr(_compact(fac.K_inf, kmask)) if kmask.any() else "0",
        "qinf": arr(_compact(fac.Quu_inv_inf, qmask)),
        "ktail": arr(np.array([_compact(K, kmask) for K in fac.K_tail])) if fac.tail and kmask.any() else "0",
        "qtail": arr(np.array([_compact(Q, qmask) for Q in fac.Quu_inv_tail])) if fac.tail else "0",
        "k_mul": _masked_lines(kmask, "K", "x", "u", "=", first="d"),
        "k_mul_t": _masked_lines(kmask, "K", "q", "p", "-=", transpose=True).replace("-= ", "-= (") .replace(";", ");"),
        "q_mul": _masked_lines(qmask, "Q", "q", "d", "="),
        "mul_a": _lines(qp.A, "x", "o", "=", single),
        "addmul_b": _lines(qp.B, "u", "o", "+=", single),
        "mul_at": _lines(qp.A, "p", "o", "=", single, transpose=True),
        "addmul_bt": _lines(qp.B, "p", "o", "+=", single, transpose=True),
        "rows_s": _lines(Cs, "x", "o", "=", single),
        "rows_s_t": _lines(Cs, "w", "ox", "+=", single, transpose=True),
        "rows_p": _lines(np.hstack([Cp, Dp]), [f"x[{j}]" for j in range(nx)] + [f"u[{j}]" for j in range(nu)],
                         "o", "=", single),
        "rows_p_t": (_lines(Cp, "w", "ox", "+=", single, transpose=True) + "\n"
                     + _lines(Dp, "w", "ou", "+=", single, transpose=True)),
    }
    files = {out: Template((TEMPLATES / tpl).read_text()).substitute(fields) for tpl, out in ADMM_FILES.items()}
    return files, K, fac.tail, float(st["rho"])


def generate_admm(fns: ProblemFunctions, out_dir: str | Path, theta: ParameterValues | None = None,
                  p: ParameterValues | None = None, precision: str = "float32", max_iter: int = MAX_ITER,
                  settings: dict[str, float] | None = None) -> GeneratedAdmm:
    """Write the ADMM solver into ``out_dir`` (a build folder)."""
    files, K, tail, rho = render_admm(fns, theta, p, precision, max_iter, settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    return GeneratedAdmm(out, precision, K, tail, rho, int(max_iter))


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.registry import PROBLEMS

    fns, theta, args = parse_developer_args("python -m rlmpc.codegen.mcu.structured.admm", __doc__, PROBLEMS, argv)
    gen = generate_admm(fns, args.out, theta, precision=args.precision)
    print(f"{gen.directory}: ADMM solver (cached Riccati gains, {gen.tail} stages with their own), "
          f"N={fns.horizon}, nx={fns.nx}, nu={fns.nu}, {args.precision}")


if __name__ == "__main__":
    main()
