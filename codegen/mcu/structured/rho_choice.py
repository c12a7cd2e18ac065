"""The ADMM penalty ρ of an export, chosen by measurement: the same iteration as
:file:`c/rlmpc_admm.c.in` run in float64 numpy from a few cold starts for each candidate ρ;
the ρ with the fewest iterations to the residual tolerance wins (ties: the smaller ρ).

A fixed ρ does not suit every problem (hover model: ρ = 1 converges in ~10× fewer iterations
than ρ = 10; the mass chain the other way round), and the best value follows from A, B, the
weights and the bounds, all known at export.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rlmpc.codegen.mcu.structured.lti import AdmmFactors, LtiQp, admm_factors
from rlmpc.toolkit.parameters import FloatArray

RHO_CANDIDATES = (1.0, 3.0, 10.0)
TRIAL_TOL = 1e-6
TRIAL_CAP = 1500
TRIAL_HORIZON = 20  # longer horizons are measured on their first 20 stages (same A, B, weights)


def _gains(fac: AdmmFactors, N: int) -> list[tuple[FloatArray, FloatArray]]:
    out = []
    for k in range(N):
        j = k - (N - fac.tail)
        out.append((fac.K_tail[j], fac.Quu_inv_tail[j]) if j >= 0 else (fac.K_inf, fac.Quu_inv_inf))
    return out


def admm_iterations(qp: LtiQp, fac: AdmmFactors, x0: FloatArray, alpha: float = 1.6,
                    tol: float = TRIAL_TOL, cap: int = TRIAL_CAP) -> int:
    """Iterations of the C solver's ADMM (cold start) until both residuals are below ``tol``
    (relative, as in the C code), or ``cap``."""
    N, nx, nu, nhs = qp.N, qp.nx, qp.nu, qp.nhs
    on = qp.rows_on()
    rho, G = fac.rho, qp.G
    soft = qp.soft & on
    stage_on = np.tile(on, (N + 1, 1))
    stage_on[0, nu:nu + nhs] = False
    stage_on[N, :nu] = False
    stage_on[N, nu + nhs:] = False
    V, Y = np.zeros((N + 1, qp.nr)), np.zeros((N + 1, qp.nr))
    gains = _gains(fac, N)
    A, B = qp.A, qp.B
    X, U = np.zeros((N + 1, nx)), np.zeros((N, nu))
    for it in range(1, cap + 1):
        W = np.where(stage_on, rho * (Y - V), 0.0)
        p = qp.w_n + G[nu:nu + nhs, :nx].T @ W[N, nu:nu + nhs]
        d = np.zeros((N, nu))
        for k in range(N - 1, -1, -1):
            K, Qi = gains[k]
            gz = qp.w + G.T @ W[k]
            qu = gz[nx:] + B.T @ p
            d[k] = Qi @ qu
            p = gz[:nx] + A.T @ p - K.T @ qu
        X[0] = x0
        for k in range(N):
            U[k] = -gains[k][0] @ X[k] - d[k]
            X[k + 1] = A @ X[k] + B @ U[k]
        Z = np.hstack([X, np.vstack([U, np.zeros((1, nu))])])
        g = Z @ G.T
        a = alpha * g + (1 - alpha) * V
        t = a + Y
        vn = np.clip(t, qp.lo, qp.up)
        with np.errstate(divide="ignore", invalid="ignore"):
            up_s = np.maximum((rho * (t - qp.up) - qp.wl) / (qp.wq + rho), 0.0)
            lo_s = np.maximum((rho * (qp.lo - t) - qp.wl) / (qp.wq + rho), 0.0)
        vn = np.where(soft & (t > qp.up), qp.up + up_s, vn)
        vn = np.where(soft & (t < qp.lo), qp.lo - lo_s, vn)
        vn = np.where(stage_on, vn, V)
        res_p = np.max(np.abs(np.where(stage_on, g - vn, 0.0)))
        res_d = np.max(np.abs(np.where(stage_on, rho * (vn - V), 0.0)))
        Y = np.where(stage_on, t - vn, Y)
        V = vn
        if not (np.isfinite(res_p) and np.isfinite(res_d)):
            return cap
        scale_p = np.max(np.abs(np.where(stage_on, g, 0.0)))
        scale_d = np.max(np.abs(np.where(stage_on, rho * Y, 0.0)))
        if res_p <= tol * (1 + scale_p) and res_d <= tol * (1 + scale_d):
            return it
    return cap


def choose_rho(qp: LtiQp, starts: FloatArray, tail_tol: float, candidates: tuple[float, ...] = RHO_CANDIDATES
               ) -> tuple[float, dict[float, int]]:
    """The ρ with the fewest total iterations from ``starts`` (and every candidate's count)."""
    counts = {}
    qp = replace(qp, N=min(qp.N, TRIAL_HORIZON))
    for rho in candidates:
        fac = admm_factors(qp, rho, tail_tol)
        counts[rho] = sum(admm_iterations(qp, fac, x0) for x0 in starts)
    best = min(candidates, key=lambda r: (counts[r], r))
    return best, counts
