"""Parametric sensitivities by a Riccati-type backward pass over the horizon.

At a solution with the active set fixed, the derivatives dw/dθ solve the KKT system of
:mod:`rlmpc.toolkit.kkt_reduction`, which is the optimality system of the equality-constrained LQ
problem (one right-hand side per entry of θ)::

    min  Σ_k ½ y_kᵀ H_k y_k + y_kᵀ R_k
    s.t. x_{k+1} = G_k y_k + f_k,   C_k y_k + d_k = 0 (the active rows of stage k),   x_0 = 0,

with the stage variables ``y_k = (x_k, v_k)``, ``v_k = (u_k, slacks_k)``, ``H_k`` the Lagrangian
Hessian block of stage k, ``G_k`` the dynamics Jacobian, ``R_k, f_k, d_k`` the ∂/∂θ columns.  This
module solves it backwards, stage by stage, at O(N·(nx+nv)³):

* Active rows that pin one input or slack without depending on θ (an input bound, a slack at zero)
  fix that variable's derivative at zero; the variable and the row are dropped first.  A free slack
  stays a stage variable (an extra "input" that the dynamics do not see).
* The other active rows of stage k, stacked with the state rows handed down from stage k+1
  (``E x_{k+1} + e = 0``, substituted through the dynamics), are split by an SVD of their input
  part: the rows the inputs can satisfy fix those input directions (u = K x + k in the range), the
  inputs' nullspace minimises the cost-to-go, and the rest (rows without input part: active pure
  state constraints, or more rows than inputs) become state rows on x_k, handed to stage k-1 — the
  projection of pure-state constraints onto earlier inputs of constrained LQR recursions.
* Where this cannot give the exact answer it raises :class:`RiccatiNotApplicableError` with the reason
  (the caller falls back to the KKT factorisation): the Hessian or a constraint couples stages
  (structure), state rows left at stage 0 or linearly dependent state rows (active constraints not
  linearly independent: LICQ fails), a reduced Hessian that is not positive definite (no
  second-order sufficiency), a variable pinned by two active rows, or a non-finite result.

"Active" is the dense path's convention: an inequality whose multiplier exceeds the threshold the
caller passes (``ACTIVE_TOL``); weakly active rows (multiplier below it) are inactive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dgesdd, dposv

from rlmpc.toolkit.nlp import Transcription
from rlmpc.toolkit.parameters import FloatArray

RANK_TOL = 1e-9  # singular values below this × the rows' largest entry count as zero
Pattern = tuple[np.ndarray, np.ndarray, tuple[int, int]]  # (row, col, shape) of a block's nonzeros


class RiccatiNotApplicableError(ValueError):
    """The backward pass cannot give the exact answer here; ``str(exc)`` says why."""


@dataclass(frozen=True)
class _StagePlan:
    """What one stage keeps for one active set: the free inputs/slacks (``nv``) then the states (none
    at stage 0), the active rows that do not pin, as flat indices into the stage arrays."""

    n: int
    nv: int
    m: int
    hr_take: np.ndarray  # [H R] rows kept × (kept variables, θ)
    gf_take: np.ndarray  # [G f] all rows × (kept variables, θ)
    cd_take: np.ndarray  # [C d] rows kept × (kept variables, θ)
    u_pos: np.ndarray  # stage 0: rows of the solution holding the unpinned entries of u_0 ...
    u_out: np.ndarray  # ... and which entries they are


class StageStructure:
    """The stage blocks of one transcription's KKT system, gathered from the nonzeros of the blocks
    ``(H, Jeq, Jin, Hwθ, Jeqθ, Jinθ)`` (sparsity patterns ``patterns``) into dense per-stage arrays
    ``[H R]``, ``[G f]`` and ``[C d]`` (stage variables ordered inputs, slacks, states) by one scatter
    per evaluation.  Raises :class:`RiccatiNotApplicableError` if the problem lacks the stage structure."""

    def __init__(self, tr: Transcription, patterns: list[Pattern], active_tol: float) -> None:
        fns = tr.fns
        N, nx, nth = fns.horizon, fns.nx, int(tr.theta.shape[0])
        self.N, self.nx, self.nth, self.active_tol = N, nx, nth, active_tol
        stage = np.full(tr.nw, -1)
        local = np.full(tr.nw, -1)
        ny_list = []
        for k in range(N + 1):
            idx = np.concatenate(([tr.u_index[k]] if k < N else []) + [tr.sl_index[k], tr.su_index[k],
                                                                         tr.x_index[k]])
            stage[idx] = k
            local[idx] = np.arange(idx.size)
            ny_list.append(idx.size)
        self.ny = np.asarray(ny_list)
        self.nu = fns.nu
        (hr, hc, _), (er, ec, eshape), (ir, ic, _), (tr_, tc, _), (etr, etc, _), (itr, itc, _) = patterns
        ndyn = nx * (N + 1)  # rows of x_0 = s and the dynamics
        # candidate constraint rows: the extra equalities (Q: u_0 = a; always active), then the
        # inequalities (active by their multiplier); renumbered by stage ("positions")
        extra = np.arange(ndyn, eshape[0])
        extra_stage = np.full(extra.size, -1)
        for j, r in enumerate(extra):
            st = np.unique(stage[ec[er == r]])
            if st.size != 1:
                raise RiccatiNotApplicableError(f"equality row {r} couples stages {st.tolist()}")
            extra_stage[j] = st[0]
        cand_stage = np.concatenate([extra_stage, [row.stage for row in tr.ineq_rows]]).astype(int)
        order = np.argsort(cand_stage, kind="stable")
        pos_of = np.empty(order.size, dtype=int)
        pos_of[order] = np.arange(order.size)
        self.extra_pos, self.ineq_pos = pos_of[:extra.size], pos_of[extra.size:]
        counts = np.bincount(cand_stage, minlength=N + 1)
        self.row_start = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        self.ncand = int(order.size)
        pos_stage = cand_stage[order]
        pos_local = np.arange(self.ncand) - self.row_start[pos_stage]

        width = self.ny + nth  # columns of every stage array: the stage's variables, then θ
        sizes = np.stack([self.ny * width, np.full(N + 1, nx) * width, counts * width], axis=1)
        offsets = np.concatenate([[0], np.cumsum(sizes.ravel())])[:-1].reshape(N + 1, 3)
        self.buf = np.zeros(int(sizes.sum()))
        self.HR: list[FloatArray] = []
        self.GF: list[FloatArray] = []
        self.CD: list[FloatArray] = []
        for k in range(N + 1):
            for lst, j, rows in ((self.HR, 0, self.ny[k]), (self.GF, 1, nx), (self.CD, 2, counts[k])):
                lst.append(self.buf[offsets[k, j]:offsets[k, j] + rows * width[k]])
        src, dst, sign = [], [], []
        base = np.cumsum([0] + [p[0].size for p in patterns])

        def add(block: int, mask: np.ndarray, k: np.ndarray, j: int, row: np.ndarray, col: np.ndarray,
                sgn: float) -> None:
            src.append(base[block] + np.flatnonzero(mask))
            dst.append(offsets[k, j] + row * width[k] + col)
            sign.append(np.full(row.size, sgn))

        if np.any(stage[hr] != stage[hc]):
            raise RiccatiNotApplicableError("the Lagrangian Hessian couples variables of different stages")
        every = np.ones(hr.size, bool)
        add(0, every, stage[hr], 0, local[hr], local[hc], 1.0)
        add(3, np.ones(tr_.size, bool), stage[tr_], 0, local[tr_], self.ny[stage[tr_]] + tc, 1.0)
        init = er < nx
        if np.any(stage[ec[init]] != 0) or np.any(etr < nx):
            raise RiccatiNotApplicableError("the initial-state rows are not x_0 = s")
        dyn = (er >= nx) & (er < ndyn)
        k_dyn, i_dyn = (er - nx) // nx, (er - nx) % nx
        nxt = dyn & (stage[ec] == k_dyn + 1)
        if np.any(local[ec[nxt]] != self.ny[k_dyn[nxt] + 1] - nx + i_dyn[nxt]):
            raise RiccatiNotApplicableError("a dynamics row is not x_{k+1} - F(x_k, u_k)")
        cur = dyn & ~nxt
        if np.any(stage[ec[cur]] != k_dyn[cur]):
            raise RiccatiNotApplicableError("the dynamics couple more than two stages")
        self._check_next = base[1] + np.flatnonzero(nxt)  # entries that must be exactly 1
        add(1, cur, k_dyn[cur], 1, i_dyn[cur], local[ec[cur]], -1.0)  # G = -∂(x_{k+1} - F)/∂y_k
        ex = er >= ndyn
        p = self.extra_pos[er[ex] - ndyn]
        add(1, ex, pos_stage[p], 2, pos_local[p], local[ec[ex]], 1.0)
        dyn_t = (etr >= nx) & (etr < ndyn)
        kt = (etr[dyn_t] - nx) // nx
        add(4, dyn_t, kt, 1, (etr[dyn_t] - nx) % nx, self.ny[kt] + etc[dyn_t], -1.0)
        ex_t = etr >= ndyn
        p = self.extra_pos[etr[ex_t] - ndyn]
        add(4, ex_t, pos_stage[p], 2, pos_local[p], self.ny[pos_stage[p]] + etc[ex_t], 1.0)
        p = self.ineq_pos[ir]
        if np.any(stage[ic] != pos_stage[p]):
            raise RiccatiNotApplicableError("an inequality row couples variables of different stages")
        add(2, np.ones(ir.size, bool), pos_stage[p], 2, pos_local[p], local[ic], 1.0)
        p = self.ineq_pos[itr]
        add(5, np.ones(itr.size, bool), pos_stage[p], 2, pos_local[p], self.ny[pos_stage[p]] + itc, 1.0)
        self._src, self._dst, self._sign = np.concatenate(src), np.concatenate(dst), np.concatenate(sign)

        # per row position: the input or slack it pins (one structural nonzero, no θ), else -1
        nnz = np.zeros(self.ncand, dtype=int)
        target = np.full(self.ncand, -1)
        theta_dep = np.zeros(self.ncand, dtype=bool)
        for rows_, cols_, is_eq in ((er, ec, True), (ir, ic, False)):
            m = rows_ >= ndyn if is_eq else np.ones(rows_.size, bool)
            p = self.extra_pos[rows_[m] - ndyn] if is_eq else self.ineq_pos[rows_[m]]
            np.add.at(nnz, p, 1)
            target[p] = local[cols_[m]]
        for rows_, is_eq in ((etr, True), (itr, False)):
            m = rows_ >= ndyn if is_eq else np.ones(rows_.size, bool)
            theta_dep[self.extra_pos[rows_[m] - ndyn] if is_eq else self.ineq_pos[rows_[m]]] = True
        pin = np.where((nnz == 1) & ~theta_dep & (target < self.ny[pos_stage] - nx), target, -1)
        self.pin_target = [pin[self.row_start[k]:self.row_start[k + 1]] for k in range(N + 1)]
        # stages with the same layout (size, rows, pins; stage 0 apart: x_0 is fixed) share stage plans
        kinds: dict[tuple[bool, int, bytes], int] = {}
        self._kind = [kinds.setdefault((k == 0, int(self.ny[k]), self.pin_target[k].tobytes()), len(kinds))
                      for k in range(N + 1)]
        self._plans: dict[bytes, list[_StagePlan]] = {}
        self._stage_plans: dict[tuple[int, bytes], _StagePlan | str] = {}

    # --- per evaluation -------------------------------------------------------------------------
    def load(self, blocks: list[FloatArray]) -> None:
        """Scatter the six blocks' nonzeros (on their patterns) into the stage arrays."""
        data = np.concatenate(blocks)
        if not np.all(data[self._check_next] == 1.0):
            raise RiccatiNotApplicableError("a dynamics row is not x_{k+1} - F(x_k, u_k)")
        self.buf[self._dst] = data[self._src] * self._sign

    def active_mask(self, lam: FloatArray) -> np.ndarray:
        """Row positions that are active: extra equalities always, inequalities whose multiplier
        exceeds ``active_tol`` (the dense path's convention)."""
        mask = np.ones(self.ncand, dtype=bool)
        mask[self.ineq_pos] = lam > self.active_tol
        return mask

    def plans(self, active: np.ndarray) -> list[_StagePlan]:
        """The stage plans of an active set (cached); raises :class:`RiccatiNotApplicableError`."""
        key = active.tobytes()
        plans = self._plans.get(key)
        if plans is None:
            out: list[_StagePlan] = []
            for k in range(self.N + 1):
                sl = active[self.row_start[k]:self.row_start[k + 1]]
                sk = (self._kind[k], sl.tobytes())
                plan = self._stage_plans.get(sk)
                if plan is None:
                    plan = self._stage_plans[sk] = self._make_stage_plan(k, sl)
                if isinstance(plan, str):
                    raise RiccatiNotApplicableError(plan)
                out.append(plan)
            if len(self._plans) >= 4096:
                self._plans.clear()
            self._plans[key] = plans = out
        return plans

    def _make_stage_plan(self, k: int, active: np.ndarray) -> _StagePlan | str:
        nx, ny, nth = self.nx, int(self.ny[k]), self.nth
        rows = np.flatnonzero(active)
        pins = self.pin_target[k][rows]
        targets = pins[pins >= 0]
        keep = np.ones(ny - nx, dtype=bool)
        keep[targets] = False
        free_v = np.flatnonzero(keep)
        if free_v.size + targets.size != ny - nx:
            return f"stage {k}: a variable pinned by two active rows (LICQ fails)"
        y = np.concatenate([free_v, np.arange(ny - nx, ny)]) if k > 0 else free_v
        cols = np.concatenate([y, ny + np.arange(nth)])
        other = rows[pins < 0]
        w = ny + nth
        u_pos = np.flatnonzero(free_v < self.nu) if k == 0 else np.zeros(0, dtype=int)
        return _StagePlan(y.size, free_v.size, other.size, (y[:, None] * w + cols).ravel(),
                          (np.arange(nx)[:, None] * w + cols).ravel(), (other[:, None] * w + cols).ravel(),
                          u_pos, free_v[u_pos])


def _stage_solve(k: int, A: FloatArray, C: FloatArray, nv: int) -> tuple[FloatArray, FloatArray]:
    """One stage: ``A = [Q q]`` (variables v, x; columns v, x, θ), ``C = [C d]`` the rows to satisfy.
    Returns ``[K kff]`` with ``v = K x + kff`` minimising ½[v;x]ᵀQ[v;x] + [v;x]ᵀq on the rows v can
    satisfy, and the rows it cannot, as state rows ``[E e]`` (``E x + e = 0``)."""
    nxt = A.shape[1] - nv  # x and θ columns
    if nv == 0:
        return np.zeros((0, nxt)), C
    Qvv, rhs_q = A[:nv, :nv], A[:nv, nv:]
    if C.shape[0] == 0:
        _, sol, info = dposv(Qvv, rhs_q)
        if info != 0:
            raise RiccatiNotApplicableError(f"stage {k}: the reduced Hessian is not positive definite "
                                       "(no second-order sufficiency)")
        return -sol, C[:, nv:]
    scale = float(np.abs(C).max())
    U, sv, Vt, info = dgesdd(C[:, :nv])
    if info != 0:
        raise RiccatiNotApplicableError(f"stage {k}: the SVD of the active rows failed")
    tol = RANK_TOL * scale
    r = int(np.count_nonzero(sv > tol))
    Ur = U.T @ C[:, nv:]
    sol = Vt[:r].T @ (-Ur[:r] / sv[:r, None])
    if r < nv:
        V2 = Vt[r:].T
        QV2 = Qvv @ V2
        _, z, info = dposv(V2.T @ QV2, QV2.T @ sol + V2.T @ rhs_q)
        if info != 0:
            raise RiccatiNotApplicableError(f"stage {k}: the reduced Hessian is not positive definite "
                                       "(no second-order sufficiency)")
        sol = sol - V2 @ z
    return sol, Ur[r:]


def _check_state_rows(k: int, E: FloatArray, nxk: int, scale: float) -> None:
    if nxk == 0 or E.shape[0] > nxk:
        raise RiccatiNotApplicableError(f"stage {k}: {E.shape[0]} active rows the inputs cannot satisfy and "
                                   f"{nxk} free states (active constraints linearly dependent: LICQ fails)")
    sv = np.linalg.svd(E[:, :nxk], compute_uv=False)
    if sv[-1] <= RANK_TOL * scale:
        raise RiccatiNotApplicableError(f"stage {k}: the active state rows are linearly dependent (LICQ fails)")


def _backward(st: StageStructure, plans: list[_StagePlan], keep: bool
              ) -> tuple[FloatArray, list[tuple[FloatArray, FloatArray, FloatArray]]]:
    """The backward pass: stage 0's ``[K kff]`` (only kff: x_0 is fixed) and, with ``keep``, per stage
    (N down to 0) ``([K kff], [H R] kept, [G f] kept)`` for a forward pass."""
    nx, nth, N = st.nx, st.nth, st.N
    Pp = np.zeros((nx, nx + nth))  # [P p]: the cost-to-go ½xᵀPx + xᵀp (one column of p per θ)
    E = np.zeros((0, nx + nth))  # [E e]: state rows E x + e = 0 handed down
    sol = np.zeros((0, nth))
    stages: list[tuple[FloatArray, FloatArray, FloatArray]] = []
    GF = np.zeros((nx, 0))
    for k in range(N, -1, -1):
        pl = plans[k]
        n, nv, w = pl.n, pl.nv, pl.n + nth
        HR = st.HR[k].take(pl.hr_take).reshape(n, w)
        A = HR
        if k < N:
            GF = st.GF[k].take(pl.gf_take).reshape(nx, w)
            T = Pp[:, :nx] @ GF
            T[:, n:] += Pp[:, nx:]
            A = HR + GF[:, :n].T @ T
        if pl.m == 0 and E.shape[0] == 0:  # no rows: the plain Riccati step
            if nv:
                _, sol, info = dposv(A[:nv, :nv], A[:nv, nv:])
                if info != 0:
                    raise RiccatiNotApplicableError(f"stage {k}: the reduced Hessian is not positive definite "
                                                    "(no second-order sufficiency)")
                sol = -sol
            else:
                sol = np.zeros((0, w))
            if keep:
                stages.append((sol, HR, GF))
            if k == 0:
                break
            Pp = A[nv:, nv:] + A[nv:, :nv] @ sol  # (Qvv [K kff] = -[Qvx qv]: the constrained terms vanish)
        else:
            C = st.CD[k].take(pl.cd_take).reshape(pl.m, w)
            if E.shape[0]:
                EG = E[:, :nx] @ GF
                EG[:, n:] += E[:, nx:]
                C = np.vstack((C, EG))
            sol, E = _stage_solve(k, A, C, nv)
            if E.shape[0]:
                _check_state_rows(k, E, n - nv, float(np.abs(C).max()))
            if keep:
                stages.append((sol, HR, GF))
            if k == 0:
                break
            AvS = A[:nv, nv:] + A[:nv, :nv] @ sol
            Pp = A[nv:, nv:] + A[nv:, :nv] @ sol + sol[:, :n - nv].T @ AvS
        P = Pp[:, :nx]
        P += P.T
        P *= 0.5
    return sol, stages


def policy_jacobian(st: StageStructure, plans: list[_StagePlan]) -> FloatArray:
    """∂u_0/∂θ (shape (nu, nθ)) by the backward pass over the loaded stage arrays."""
    sol, _ = _backward(st, plans, keep=False)
    out = np.zeros((st.nu, st.nth))
    out[plans[0].u_out] = sol[plans[0].u_pos]
    if not np.all(np.isfinite(out)):
        raise RiccatiNotApplicableError("the backward pass gave non-finite numbers")
    return out


def hessian_term(st: StageStructure, plans: list[_StagePlan]) -> FloatArray:
    """The term of d²L/dθ² through the solution's dependence on θ, ``Hwθᵀ dw + dwᵀ Hwθ + dwᵀ H dw``
    (equal to the KKT form ``Mᵀ dz``; no multiplier derivatives needed), shape (nθ, nθ): the backward
    pass, then a forward pass for dw stage by stage."""
    _, stages = _backward(st, plans, keep=True)
    nth = st.nth
    x = np.zeros((0, nth))  # dx_0 = 0 (x_0 = s does not depend on θ)
    total = np.zeros((nth, nth))
    for k, (sol, HR, GF) in enumerate(reversed(stages)):
        n = HR.shape[0]
        nxk = n - sol.shape[0]
        dy = np.vstack((sol[:, nxk:] + sol[:, :nxk] @ x, x))  # (n, nθ): the kept variables (pinned: 0)
        Rdy = HR[:, n:].T @ dy
        total += Rdy + Rdy.T + dy.T @ (HR[:, :n] @ dy)
        if k < st.N:
            x = GF[:, :n] @ dy + GF[:, n:]
    if not np.all(np.isfinite(total)):
        raise RiccatiNotApplicableError("the backward pass gave non-finite numbers")
    return total
