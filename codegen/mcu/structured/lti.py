"""Is the MPC at fixed θ, p a time-invariant QP, and its data if so (the ADMM path's input).

Time-invariant means: after θ and p are fixed, the stage models of
:func:`rlmpc.codegen.mcu.linearise.linearise` are the same at every stage k = 0..N-1 and do not
move with the linearisation trajectory (linear dynamics without offset, constant quadratic cost
Hessian and gradient, linear constant constraint rows, stage-independent bounds and slack
penalties).  A problem that is not gets a one-line reason (it keeps the interior-point path).
The Riccati factors the ADMM solver caches (:func:`admm_factors`) are computed here in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlmpc.codegen.mcu.linearise import LinearisedOcp, linearise
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions

BIG = 1e20  # |bound| at or above: no bound (the C solvers' convention)
SAME_TOL = 1e-10  # relative difference of stage data still called equal


class NotTimeInvariant(ValueError):  # noqa: N818 (a ValueError: one line for the user)
    """The problem is not a time-invariant QP (the message says which part is not)."""


@dataclass(frozen=True)
class LtiQp:
    """x_{k+1} = A x_k + B u_k; stage cost ½ z'Wz + w'z (z = (x, u)), terminal ½ x'W_N x + w_N'x;
    rows r (inputs, then state rows on stages 1..N, then path rows on stages 0..N-1):
    lo ≤ G z ≤ up, soft rows with penalties wl·s + ½ wq·s² per unit of violation s."""

    nx: int
    nu: int
    N: int
    nhs: int
    nhp: int
    A: FloatArray
    B: FloatArray
    W: FloatArray
    w: FloatArray
    W_N: FloatArray
    w_n: FloatArray
    G: FloatArray  # (nr, nx + nu)
    lo: FloatArray  # (nr,) ±BIG where open
    up: FloatArray
    soft: np.ndarray  # (nr,) bool
    wl: FloatArray
    wq: FloatArray

    @property
    def nr(self) -> int:
        return self.nu + self.nhs + self.nhp

    def rows_on(self) -> np.ndarray:
        """Rows with at least one finite bound."""
        return (np.abs(self.lo) < BIG) | (np.abs(self.up) < BIG)


def _same(a: FloatArray, b: FloatArray) -> bool:
    """Equal up to rounding; equal infinities are the same, a NaN never is."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.all(finite | (a == b)):
        return False
    fa, fb = a[finite], b[finite]
    scale = 1.0 + max(float(np.max(np.abs(fa), initial=0.0)), float(np.max(np.abs(fb), initial=0.0)))
    return bool(np.all(np.abs(fa - fb) <= SAME_TOL * scale))


def _bounds(v: FloatArray) -> FloatArray:
    return np.clip(np.where(np.isfinite(v), v, np.sign(v) * BIG), -BIG, BIG)


def _compare(ocps: list[LinearisedOcp]) -> None:
    ref = ocps[0].stages[1] if ocps[0].horizon > 1 else ocps[0].stages[0]
    for ocp in ocps:
        for k, st in enumerate(ocp.stages):
            last = k == ocp.horizon
            checks = [("the cost Hessian", st.W, ocps[0].stages[-1].W if last else ref.W),
                      ("the cost gradient", st.w, ocps[0].stages[-1].w if last else ref.w)]
            if not last:
                checks += [("A", st.A, ref.A), ("B", st.B, ref.B), ("the dynamics offset", st.c, 0 * st.c)]
            if 0 < k < ocp.horizon:
                r, q = st.rows, ref.rows
                checks += [("the constraint rows", np.hstack([r.C, r.D]), np.hstack([q.C, q.D])),
                           ("the row bounds", np.r_[r.lower, r.upper], np.r_[q.lower, q.upper]),
                           ("the slack penalties", np.r_[r.w_lin, r.w_quad], np.r_[q.w_lin, q.w_quad])]
            for what, a, b in checks:
                if not _same(a, b):
                    raise NotTimeInvariant(f"{what} of stage {k} differs from stage 1's or moves with the "
                                           "linearisation point")


def lti_qp(fns: ProblemFunctions, theta: ParameterValues | None = None,
           p: ParameterValues | None = None, seed: int = 0) -> LtiQp:
    """The problem's time-invariant QP data, or :class:`NotTimeInvariant` (one line).

    The stage models are evaluated at zero and at a random trajectory: both must give the same
    data at every stage (so nonlinear, discounted or time-varying problems are refused).
    """
    N, nx, nu = fns.horizon, fns.nx, fns.nu
    if N < 2:
        raise NotTimeInvariant(f"horizon N={N}: the ADMM path needs N >= 2")
    rng = np.random.default_rng(seed)
    ocps = [linearise(fns, theta, p),
            linearise(fns, theta, p, rng.normal(size=(N + 1, nx)), rng.normal(size=(N, nu)))]
    _compare(ocps)
    s0, s1, sN = ocps[0].stages[0], ocps[0].stages[1], ocps[0].stages[-1]
    nhs, nhp = fns.state_rows.n, fns.path_rows.n
    # stage 0 has the path rows only, stage N the state rows only: they must agree with stage 1's
    if not (_same(s0.rows.C, s1.rows.C[nhs:]) and _same(s0.rows.D, s1.rows.D[nhs:])
            and _same(sN.rows.C, s1.rows.C[:nhs])
            and _same(np.r_[sN.rows.lower, sN.rows.upper], np.r_[s1.rows.lower[:nhs], s1.rows.upper[:nhs]])
            and _same(np.r_[sN.rows.w_lin, sN.rows.w_quad], np.r_[s1.rows.w_lin[:nhs], s1.rows.w_quad[:nhs]])):
        raise NotTimeInvariant("the constraint rows of stage 0 or N differ from stage 1's")
    G = np.vstack([np.hstack([np.zeros((nu, nx)), np.eye(nu)]), np.hstack([s1.rows.C, s1.rows.D])])
    if nhs and np.any(s1.rows.D[:nhs] != 0):
        raise NotTimeInvariant("a state row depends on the input")
    r = s1.rows
    return LtiQp(nx=nx, nu=nu, N=N, nhs=nhs, nhp=nhp, A=s0.A, B=s0.B, W=s1.W, w=s1.w, W_N=sN.W, w_n=sN.w,
                 G=G, lo=_bounds(np.r_[fns.u_lb, r.lower]), up=_bounds(np.r_[fns.u_ub, r.upper]),
                 soft=np.r_[np.zeros(nu, dtype=bool), r.soft], wl=np.r_[np.zeros(nu), r.w_lin],
                 wq=np.r_[np.zeros(nu), r.w_quad])


@dataclass(frozen=True)
class AdmmFactors:
    """Riccati factors of the ρ-augmented cost: K_k and (R̂ + B'P_{k+1}B)⁻¹ equal their stationary
    values for k < N − tail; the last ``tail`` stages (k = N − tail..N − 1) are stored each."""

    rho: FloatArray  # (nr,) per row (0 on rows without a bound)
    K_inf: FloatArray
    Quu_inv_inf: FloatArray
    K_tail: FloatArray  # (tail, nu, nx)
    Quu_inv_tail: FloatArray  # (tail, nu, nu)

    @property
    def tail(self) -> int:
        return int(self.K_tail.shape[0])


def admm_factors(qp: LtiQp, rho: float, tail_tol: float = 1e-9, rho_rows: FloatArray | None = None) -> AdmmFactors:
    """Backward Riccati recursion of the cost augmented by ρ/2 |G z|² on the bounded rows,
    from P_N = W_N + ρ C_s'C_s, until K_k no longer changes (relative ``tail_tol``)."""
    nx, nu, nhs = qp.nx, qp.nu, qp.nhs
    rr = (np.full(qp.nr, rho) if rho_rows is None else np.asarray(rho_rows, dtype=float)) * qp.rows_on()
    What = qp.W + qp.G.T @ (rr[:, None] * qp.G)
    Q, S, R = What[:nx, :nx], What[nx:, :nx], What[nx:, nx:]
    Cs = qp.G[nu:nu + nhs, :nx]
    P = qp.W_N + Cs.T @ (rr[nu:nu + nhs, None] * Cs)
    A, B = qp.A, qp.B
    Ks: list[FloatArray] = []
    Qs: list[FloatArray] = []
    for _ in range(qp.N):
        Quu = R + B.T @ P @ B
        Qux = S + B.T @ P @ A
        Qinv = np.linalg.inv(Quu)
        K = Qinv @ Qux
        P = Q + A.T @ P @ A - Qux.T @ K
        P = 0.5 * (P + P.T)
        Ks.append(K)
        Qs.append(Qinv)
    # Ks[j] is K_{N-1-j}; find the stationary value (the recursion may not reach it within N)
    K_inf, Q_inf = Ks[-1], Qs[-1]
    for _ in range(2000):
        Quu = R + B.T @ P @ B
        Qux = S + B.T @ P @ A
        Qinv = np.linalg.inv(Quu)
        K = Qinv @ Qux
        P = 0.5 * (Q + A.T @ P @ A - Qux.T @ K + (Q + A.T @ P @ A - Qux.T @ K).T)
        done = np.max(np.abs(K - K_inf)) <= 1e-14 * (1 + np.max(np.abs(K)))
        K_inf, Q_inf = K, Qinv
        if done:
            break
    scale = 1.0 + float(np.max(np.abs(K_inf)))
    tail = 0
    for j, (K, Qi) in enumerate(zip(Ks, Qs, strict=True)):
        if (np.max(np.abs(K - K_inf)) > tail_tol * scale
                or np.max(np.abs(Qi - Q_inf)) > tail_tol * (1 + np.max(np.abs(Q_inf)))):
            tail = j + 1
    # stored in stage order k = N - tail .. N - 1
    K_tail = np.array(Ks[:tail][::-1]).reshape(tail, nu, nx)
    Q_tail = np.array(Qs[:tail][::-1]).reshape(tail, nu, nu)
    return AdmmFactors(rho=rr, K_inf=K_inf, Quu_inv_inf=Q_inf, K_tail=K_tail, Quu_inv_tail=Q_tail)
