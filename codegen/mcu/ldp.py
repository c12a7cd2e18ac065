"""DAQP's least-distance form of a condensed QP, computed offline in float64.

DAQP solves ``min ½‖u‖²  s.t.  dlower ≤ M u ≤ dupper`` with ``H = RᵀR``,
``M = S G R⁻¹`` (rows normalised by ``S = diag(scaling)``), ``v = R⁻ᵀ(F x_0 + f)``,
``d = S (b − E x_0) + M v`` and recovers ``z = R⁻¹(u − v)``.  Everything but the
x_0-dependent parts is constant, so the MCU only evaluates::

    dupper(x_0) = du0 + Dx x_0,   dlower(x_0) = dl0 + Dx x_0,
    u_0 = −K x_0 + z_0 = U0u u + u0c + U0x x_0        (the first rows of z = R⁻¹(u − v))

``gram = M Mᵀ`` replaces DAQP's products of M (see :mod:`rlmpc.codegen.mcu.daqp_patch`);
``v(x_0) = v0 + Vx x_0`` is only needed for the whole plan.

The arrays follow DAQP 0.11's workspace layout: R⁻¹ packed upper triangular by
rows, M row-major, per-constraint soft weights ``w`` (linear) and ``rho``
(reciprocal quadratic) in the units of the original problem.

A soft row with a purely linear penalty still needs a finite ``rho`` in DAQP: it
gets the quadratic weight ``ε'`` *in the normalised LDP* (unit rows, identity
Hessian), i.e. ``rho = 1/(ε'·scaling²)`` in original units.  A free slack adds
``1/ε'`` to a diagonal entry of DAQP's LDLᵀ factor that is later subtracted again,
so ``1/ε'`` must stay far below ``1/eps_machine``; the price is a perturbation of
u (the LDP variable) of at most ``ε'·σ'`` for a scaled violation ``σ'``.
:data:`L1_LDP_WEIGHT` holds ε' per precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from rlmpc.codegen.mcu.condense import CondensedQP
from rlmpc.toolkit.parameters import FloatArray

DAQP_INF = 1e30  # DAQP's infinity (constants.h)
DAQP_SOFT = 8  # sense bit of a soft constraint (constants.h)
# ε' of soft rows with a purely linear penalty, per precision (see the module docstring)
L1_LDP_WEIGHT = {"float64": 1e-9, "float32": 1e-4}


@dataclass(frozen=True)
class LdpData:
    """Constant data of the DAQP workspace for one condensed QP (all float64)."""

    n: int  # decision variables (v)
    m: int  # general constraints (DAQP's ms = 0: no simple bounds)
    nx: int
    nu: int
    K: FloatArray  # (nu, nx)
    Rinv: FloatArray  # packed upper triangle of R⁻¹, n(n+1)/2
    M: FloatArray  # (m, n), rows of unit norm
    scaling: FloatArray  # (m,)
    v0: FloatArray  # (n,)
    Vx: FloatArray  # (n, nx)
    du0: FloatArray  # (m,), ±DAQP_INF for open sides
    dl0: FloatArray  # (m,)
    Dx: FloatArray  # (m, nx)
    sense: np.ndarray  # (m,) int
    w_soft: FloatArray  # (m, 2) linear soft weight of the lower, upper side (0: none)
    rho_soft: FloatArray  # (m, 2) reciprocal quadratic soft weight (0 for hard rows)
    gram: FloatArray  # (m, m) M Mᵀ
    U0u: FloatArray  # (nu, n): u_0 = U0u u + u0c + U0x x_0
    u0c: FloatArray  # (nu,)
    U0x: FloatArray  # (nu, nx)

    @property
    def n_soft(self) -> int:
        return int(np.count_nonzero(self.sense & DAQP_SOFT))


def packed_upper(U: FloatArray) -> FloatArray:
    """Rows of the upper triangle of U, concatenated (DAQP's ``DAQP_R_OFFSET`` layout)."""
    return np.concatenate([U[i, i:] for i in range(U.shape[0])])


def ldp_data(qp: CondensedQP, precision: str = "float64") -> LdpData:
    """DAQP's LDP of the condensed QP (strictly convex) for a solver in ``precision``."""
    R = np.linalg.cholesky(qp.H).T  # H = RᵀR, R upper triangular
    Rinv = scipy.linalg.solve_triangular(R, np.eye(qp.nz), lower=False)
    M_raw = qp.G @ Rinv
    norms = np.linalg.norm(M_raw, axis=1)
    scaling = 1.0 / norms
    M = M_raw * scaling[:, None]
    RinvT = Rinv.T  # v = R⁻ᵀ f
    v0, Vx = RinvT @ qp.f, RinvT @ qp.F
    Dx = M @ Vx - scaling[:, None] * qp.E
    shift = M @ v0

    def side(b: FloatArray, inf: float) -> FloatArray:
        return np.where(np.isfinite(b), scaling * np.where(np.isfinite(b), b, 0.0) + shift, inf)

    soft = qp.soft[:, None]
    quad = np.where(qp.w_quad > 0, qp.w_quad, L1_LDP_WEIGHT[precision] * scaling[:, None] ** 2)
    return LdpData(
        n=qp.nz, m=qp.m, nx=qp.nx, nu=qp.nu, K=qp.K, Rinv=packed_upper(Rinv), M=M,
        scaling=scaling, v0=v0, Vx=Vx, du0=side(qp.upper, DAQP_INF), dl0=side(qp.lower, -DAQP_INF),
        Dx=Dx, sense=np.where(qp.soft, DAQP_SOFT, 0).astype(int),
        w_soft=np.where(soft, qp.w_lin, 0.0), rho_soft=np.where(soft, 1.0 / quad, 0.0),
        gram=M @ M.T, U0u=Rinv[:qp.nu], u0c=-Rinv[:qp.nu] @ v0, U0x=-(Rinv[:qp.nu] @ Vx + qp.K))
