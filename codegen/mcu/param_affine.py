"""How the run-time parameters p enter the condensed QP of a linear MPC.

For a linear MPC whose cost gradient, constraint bounds and dynamics offsets are affine in p
(e.g. a reference given as p), every p-dependent vector of the LDP data is affine in p::

    du0(p) = du0(p̄) + DUp (p − p̄)      (and dl0, v0, u0c, the plan's dynamics offsets c)

while H, M, the scaling and K do not depend on p.  :func:`param_affine` computes these
matrices at export (one linearisation per parameter, exact for an affine dependence) and checks
the affinity at a second, random p: a new p then costs O(m · np) on the device, no re-condensing.
A problem whose p enters otherwise is refused at export with one line (ValueError).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlmpc.codegen.mcu.condense import CondensedQP
from rlmpc.codegen.mcu.ldp import DAQP_INF, LdpData
from rlmpc.toolkit.parameters import FloatArray

HOW = ("the linear MCU solver cannot take it at run time; let p enter only the cost's linear terms, the "
       "bounds and the dynamics' offset, or export with --fixed-theta (θ and p compiled in)")
# relative mismatch of the affine prediction at a random p above which p is called non-affine
AFFINE_TOL = 1e-8


@dataclass(frozen=True)
class ParamAffine:
    """d(vector)/dp of the p-dependent LDP vectors at the default p̄ (all float64)."""

    p0: FloatArray  # (np,) the default p̄ the constant data is evaluated at
    DUp: FloatArray  # (m, np): dupper moves by DUp (p − p̄) (0 on open sides)
    DLp: FloatArray  # (m, np): dlower likewise
    Vp: FloatArray  # (n, np)
    U0p: FloatArray  # (nu, np)
    Cp: FloatArray  # (ndyn·nx, np) offsets c of the plan's dynamics


LdpAt = Callable[[FloatArray], tuple[CondensedQP, LdpData, FloatArray]]


def _vectors(ldp: LdpData, dyn_c: FloatArray) -> dict[str, FloatArray]:
    finite = np.abs(ldp.du0) < DAQP_INF
    finite_l = np.abs(ldp.dl0) < DAQP_INF
    return {"du": np.where(finite, ldp.du0, 0.0), "dl": np.where(finite_l, ldp.dl0, 0.0),
            "v": ldp.v0, "u0": ldp.u0c, "c": np.ravel(dyn_c)}


def _fixed(ldp: LdpData) -> list[FloatArray]:
    return [ldp.M, ldp.scaling, ldp.K, ldp.Rinv, ldp.Dx, ldp.w_soft, ldp.rho_soft,
            (np.abs(ldp.du0) < DAQP_INF).astype(float), (np.abs(ldp.dl0) < DAQP_INF).astype(float)]


def _close(a: FloatArray, b: FloatArray) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= AFFINE_TOL * (1.0 + np.abs(b))))


def param_affine(ldp_at: LdpAt, p0: FloatArray, seed: int = 0) -> ParamAffine:
    """The matrices of :class:`ParamAffine` from ``ldp_at(p) -> (qp, ldp, dyn_c)``.

    Raises ValueError (one line) if p changes H, the constraint matrices or the soft weights, or if
    the vectors are not affine in p (then the problem needs the RTI solver).
    """
    p0 = np.asarray(p0, dtype=float).ravel()
    _, base, c0 = ldp_at(p0)
    vec0, fixed0 = _vectors(base, c0), _fixed(base)
    cols: dict[str, list[FloatArray]] = {k: [] for k in vec0}
    for i in range(p0.size):
        step = max(1.0, abs(p0[i]))
        pi = p0.copy()
        pi[i] += step
        _, ldp_i, ci = ldp_at(pi)
        if not all(_close(a, b) for a, b in zip(_fixed(ldp_i), fixed0, strict=True)):
            raise ValueError(f"p[{i}] changes the QP's matrices (Hessian, constraint rows or soft weights), "
                             f"not only its gradient and bounds: {HOW}")
        for k, v in _vectors(ldp_i, ci).items():
            cols[k].append((v - vec0[k]) / step)
    mats = {k: (np.column_stack(v) if v else np.zeros((vec0[k].size, 0))) for k, v in cols.items()}
    rng = np.random.default_rng(seed)
    if p0.size:
        pr = p0 + rng.uniform(-1.0, 1.0, p0.size) * np.maximum(1.0, np.abs(p0))
        _, ldp_r, cr = ldp_at(pr)
        for k, v in _vectors(ldp_r, cr).items():
            if not _close(vec0[k] + mats[k] @ (pr - p0), v):
                raise ValueError("p enters the condensed QP non-affinely (e.g. a product of p with x or u, or p "
                                 f"inside a nonlinear function): {HOW}")
    return ParamAffine(p0=p0, DUp=mats["du"], DLp=mats["dl"], Vp=mats["v"], U0p=mats["u0"], Cp=mats["c"])

