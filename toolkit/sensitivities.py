"""Parametric sensitivities of the MPC at acados' primal-dual solution.

acados v0.2.2 has no sensitivities with respect to parameters, so they are built
here with CasADi from the NLP transcription (:mod:`rlmpc.toolkit.nlp`) of the same
problem and evaluated at the acados iterate.

acados' multiplier conventions (v0.2.2), relied on by :meth:`Sensitivities.unpack`
and verified by ``tests/test_sensitivities.py`` (stationarity of the Lagrangian
and finite differences):

* ``pi_k`` (k = 0..N-1) belongs to the dynamics ``x_{k+1} = F(x_k, u_k)``; acados'
  Lagrangian carries ``+ pi_kᵀ (F(x_k,u_k) - x_{k+1})``, so the multiplier of our
  ``x_{k+1} - F = 0`` row is ``-pi_k``.
* ``lam_k`` stacks, per stage, ``[lbu, lbx, lh, ubu, ubx, uh, lsl, lsu]`` (``lg`` and
  ``lphi`` are empty here), every entry ``>= 0``.  A lower bound ``lb <= z`` enters as
  ``lam_l (lb - z)``, an upper bound ``z <= ub`` as ``lam_u (z - ub)``, and the slack
  bounds ``s >= 0`` as ``-lam_s s``.  Box bounds on stage 0 include the initial
  state (``lbx = ubx = s``) and, for Q(s,a), the first input (``lbu = ubu = a``),
  whose equality multipliers are therefore ``lam_u - lam_l``.
* Soft rows of ``h`` carry slacks ``sl, su`` in the order of ``idxsh``;
  ``lh - sl <= h <= uh + su``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import casadi as cs
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from rlmpc.toolkit.acados_instance import IterateLayout
from rlmpc.toolkit.fast_function import FastFunction, SparseFunction
from rlmpc.toolkit.kkt_reduction import Coo, ReductionPlan, make_plan, planned_u_rows, reduce_kkt
from rlmpc.toolkit.mpc import MpcSolution
from rlmpc.toolkit.nlp import Transcription, stage_soft_rows, transcribe
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.riccati_sensitivity import RiccatiNotApplicableError, StageStructure, hessian_term
from rlmpc.toolkit.riccati_sensitivity import policy_jacobian as riccati_policy_jacobian

PI_SIGN = -1.0  # multiplier of (x_{k+1} - F) = PI_SIGN * acados pi_k
ACTIVE_TOL = 1e-7  # a multiplier above this marks an active inequality
PERMC_SPEC = "COLAMD"  # SuperLU's fill-reducing column order for the reduced KKT matrix
DENSE_MAX = 160  # ∇θπ: a reduced KKT system up to this size is solved dense (LAPACK), larger ones sparse
PLAN_CACHE = 4096  # ∇θπ: reduction plans kept (one per sparsity pattern and active set met)
PI_METHODS = ("auto", "riccati", "sparse", "dense")


def _require_solution(sol: MpcSolution) -> None:
    """A failed solve holds acados' last iterate, not a solution at its state: refused."""
    if not isinstance(sol, MpcSolution):
        raise ValueError(f"sensitivities: expected an MpcSolution, got {type(sol).__name__}")
    if not sol.success:
        raise ValueError(f"sensitivities: the solve failed (status {sol.status}: {sol.message}); "
                         "there is no solution at this state to differentiate")


@dataclass(frozen=True)
class _MultiplierMap:
    """Index maps from the acados iterate (with a trailing zero) to (w, μ, λ)."""

    w: np.ndarray
    mu_plus: np.ndarray
    mu_minus: np.ndarray
    mu_scale: np.ndarray
    lam: np.ndarray


@dataclass(frozen=True)
class KktSensitivity:
    """Derivatives of the primal solution and active multipliers w.r.t. θ."""

    dw: FloatArray  # (nw, nθ)
    dmu: FloatArray  # (neq, nθ)
    dlam_active: FloatArray  # (n_active, nθ)
    active: np.ndarray  # indices of active inequalities


@dataclass(frozen=True)
class Regularity:
    """Whether the solution is regular enough for derivatives to exist.

    Without strict complementarity (an inequality active with a zero multiplier)
    π is not differentiable; without LICQ (linearly dependent active constraints)
    the multipliers are not unique and V, Q may not be differentiable either.
    """

    strict_complementarity: bool
    licq: bool
    n_active: int

    @property
    def regular(self) -> bool:
        return self.strict_complementarity and self.licq


class _Evaluators:
    """Fast evaluators of one transcription (V or Q), all with arguments
    ``(w, μ, λ, s, a, θ, p)``; each is generated on first use (the KKT blocks take the
    longest, and second-order Q-learning never needs them)."""

    def __init__(self, tr: Transcription) -> None:
        mu = cs.SX.sym("mu", tr.g_eq.shape[0])
        lam = cs.SX.sym("lam", tr.g_in.shape[0])
        lag = tr.lagrangian(mu, lam)
        self._tr, self._lag = tr, lag
        self._args = [tr.w, mu, lam, tr.s, tr.a, tr.theta, tr.p]
        self._grad_th = cs.gradient(lag, tr.theta)
        self._grad_w = cs.gradient(lag, tr.w)

    def _fast(self, name: str, *outs: cs.SX, matrices: tuple[int, ...] = ()) -> FastFunction:
        return FastFunction(cs.Function(name, self._args, list(outs)), matrix_outputs=matrices)

    @cached_property
    def first_order(self) -> FastFunction:
        tr, lag = self._tr, self._lag
        return self._fast("first_order", self._grad_th, cs.gradient(lag, tr.s),
                          cs.gradient(lag, tr.a))

    @cached_property
    def stationarity(self) -> FastFunction:
        return self._fast("stationarity", self._grad_w, self._tr.g_in)

    @cached_property
    def hess_theta(self) -> FastFunction:
        return self._fast("hess_theta", self._grad_th, cs.jacobian(self._grad_th, self._tr.theta),
                          matrices=(1,))

    def _kkt_outputs(self) -> list[cs.SX]:
        tr, grad_w, grad_th = self._tr, self._grad_w, self._grad_th
        return [
            cs.jacobian(grad_w, tr.w),  # ∇²_ww L
            cs.jacobian(tr.g_eq, tr.w),
            cs.jacobian(tr.g_in, tr.w),
            cs.jacobian(grad_w, tr.theta),  # ∇²_wθ L
            cs.jacobian(tr.g_eq, tr.theta),
            cs.jacobian(tr.g_in, tr.theta),
            cs.jacobian(grad_th, tr.theta),  # ∇²_θθ L
        ]

    @cached_property
    def kkt(self) -> FastFunction:
        # (a single θ or constraint still gives 2-D blocks)
        return self._fast("kkt", *self._kkt_outputs(), matrices=tuple(range(7)))

    @cached_property
    def kkt_needs_x0_multiplier(self) -> bool:
        """Whether the KKT blocks depend on the multiplier of ``x_0 = s`` (a linear, θ-free row: they
        do not, so ∇θπ can skip recovering it from stationarity)."""
        nx = self._tr.x_index[0].size
        return any(cs.depends_on(out, self._args[1][:nx]) for out in self._kkt_outputs())

    @cached_property
    def kkt_sparse(self) -> SparseFunction:
        """The KKT blocks as sparse matrices: their nonzeros grow linearly with the horizon."""
        return SparseFunction(cs.Function("kkt_sparse", self._args, self._kkt_outputs()))


def _pinning_rows(J: FloatArray, J_theta: FloatArray) -> np.ndarray:
    """For each constraint row: the variable it pins (one nonzero, no θ-dependence), else -1."""
    out = np.full(J.shape[0], -1)
    if J.shape[0] == 0:
        return out
    nonzero = J != 0.0
    single = (nonzero.sum(axis=1) == 1) & ~np.any(J_theta != 0.0, axis=1)
    out[single] = np.argmax(nonzero[single], axis=1)
    return out


class Sensitivities:
    """∇θV, ∇θQ, ∇θπ, ∇sV, ∇aQ and Hessians of Q in θ for one problem."""

    def __init__(self, fns: ProblemFunctions) -> None:
        self.fns = fns
        self.transcriptions = {False: transcribe(fns, False), True: transcribe(fns, True)}
        self._evaluators: dict[bool, _Evaluators] = {}
        self._maps: dict[tuple[bool, int], _MultiplierMap] = {}
        self._fused: dict[tuple[bool, int], FastFunction] = {}
        self._pi_plans: dict[bytes, ReductionPlan | None] = {}
        self._stages: dict[bool, StageStructure | str] = {}
        self.pi_fallbacks: Counter[str] = Counter()  # why ∇θπ (method "auto") left the Riccati pass
        self.last_pi_method = ""  # the path the last ∇θπ took: "riccati", "sparse" or "dense"

    def _eval(self, is_q: bool) -> _Evaluators:
        if is_q not in self._evaluators:
            self._evaluators[is_q] = _Evaluators(self.transcriptions[is_q])
        return self._evaluators[is_q]

    # --- mapping acados -> NLP -------------------------------------------------------------
    def _map(self, is_q: bool, layout: IterateLayout) -> _MultiplierMap:
        key = (is_q, id(layout))
        cached = self._maps.get(key)
        if cached is not None:
            return cached
        fns, tr = self.fns, self.transcriptions[is_q]
        N, nx, nu = fns.horizon, fns.nx, fns.nu
        zero = layout.total  # index of the appended zero
        w = np.empty(tr.nw, dtype=int)
        for k in range(N + 1):
            w[tr.x_index[k]] = layout.index("x", k)
            if k < N:
                w[tr.u_index[k]] = layout.index("u", k)
            # stage-0 state rows are relaxed in acados and absent from the NLP
            w[tr.sl_index[k]] = layout.index("sl", k)
            w[tr.su_index[k]] = layout.index("su", k)

        def lam_index(k: int, kind: str, i: int) -> int:
            nbu = nu if k < N else 0
            nbx = nx if k == 0 else 0
            nb = nbu + nbx
            nh = fns.state_rows.n + (fns.path_rows.n if k < N else 0)
            ns = len(stage_soft_rows(fns, k))
            offset = {"lbu": 0, "lbx": nbu, "lh": nb, "ubu": nb + nh, "ubx": nb + nh + nbu,
                      "uh": 2 * nb + nh, "lsl": 2 * (nb + nh), "lsu": 2 * (nb + nh) + ns}[kind]
            base = layout.index("lam", k)
            if base.size != 2 * (nb + nh + ns):
                raise RuntimeError(f"acados lam at stage {k} has {base.size} entries, "
                                   f"expected {2 * (nb + nh + ns)}")
            return int(base[offset + i])

        plus, minus, scale = [], [], []
        for i in range(nx):  # x_0 - s = 0
            plus.append(lam_index(0, "ubx", i))
            minus.append(lam_index(0, "lbx", i))
            scale.append(1.0)
        for k in range(N):  # x_{k+1} - F = 0
            for idx in layout.index("pi", k):
                plus.append(int(idx))
                minus.append(zero)
                scale.append(PI_SIGN)
        if is_q:  # u_0 - a = 0
            for i in range(nu):
                plus.append(lam_index(0, "ubu", i))
                minus.append(lam_index(0, "lbu", i))
                scale.append(1.0)
        lam = np.array([lam_index(r.stage, r.kind, r.index) for r in tr.ineq_rows], dtype=int)
        result = _MultiplierMap(w, np.array(plus), np.array(minus), np.array(scale), lam)
        self._maps[key] = result
        return result

    def _unpack(self, sol: MpcSolution, x0_multiplier: bool = True) -> tuple[FloatArray, FloatArray, FloatArray]:
        """`unpack`; ``x0_multiplier=False`` leaves the multiplier of ``x_0 = s`` at zero (saves the
        stationarity evaluation where it is not used)."""
        if x0_multiplier:
            return self.unpack(sol)
        _require_solution(sol)
        m = self._map(sol.a is not None, sol.layout)
        it = np.append(sol.iterate, 0.0)
        mu = m.mu_scale * (it[m.mu_plus] - it[m.mu_minus])
        mu[:self.fns.nx] = 0.0
        return it[m.w], mu, it[m.lam]

    def unpack(self, sol: MpcSolution) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(w, μ, λ) of the NLP from an acados solution.

        The multiplier of ``x_0 = s`` is recovered from stationarity in x_0 rather
        than read from acados: with full condensing and SQP_RTI acados does not
        return it (x_0 is eliminated).  It is exact given the other multipliers.
        """
        _require_solution(sol)
        a = sol.a if sol.a is not None else np.zeros(self.fns.nu)
        is_q = sol.a is not None
        m = self._map(is_q, sol.layout)
        it = np.append(sol.iterate, 0.0)
        mu = m.mu_scale * (it[m.mu_plus] - it[m.mu_minus])
        w, lam = it[m.w], it[m.lam]
        nx = self.fns.nx
        mu[:nx] = 0.0
        grad_w = self._eval(is_q).stationarity(w, mu, lam, sol.s, a, sol.theta, sol.p)[0]
        mu[:nx] = -grad_w[self.transcriptions[is_q].x_index[0]]
        return w, mu, lam

    def _args(self, sol: MpcSolution) -> list[FloatArray]:
        w, mu, lam = self.unpack(sol)
        a = sol.a if sol.a is not None else np.zeros(self.fns.nu)
        return [w, mu, lam, sol.s, a, sol.theta, sol.p]

    # --- first order -----------------------------------------------------------------------
    def grad_theta(self, sol: MpcSolution) -> FloatArray:
        """∇θV(s) or ∇θQ(s,a) = ∂L/∂θ at the primal-dual solution."""
        return self.grad_and_hessian_theta(sol)[0]

    def grad_state(self, sol: MpcSolution) -> FloatArray:
        """∇sV(s) (or ∇sQ(s,a))."""
        return self._eval(sol.a is not None).first_order(*self._args(sol))[1].copy()

    def grad_action(self, sol: MpcSolution) -> FloatArray:
        """∇aQ(s,a) for a Q solution."""
        if sol.a is None:
            raise ValueError("grad_action: expected a Q(s,a) solution, got a V(s) solution")
        return self._eval(True).first_order(*self._args(sol))[2].copy()

    def stationarity(self, sol: MpcSolution) -> FloatArray:
        """∇_w L at the solution (zero at a KKT point; used to check conventions)."""
        return self._eval(sol.a is not None).stationarity(*self._args(sol))[0].copy()

    def inequalities(self, sol: MpcSolution) -> tuple[FloatArray, FloatArray]:
        """(g_in(w), λ): inequality values (<= 0 when feasible) and their multipliers."""
        args = self._args(sol)
        return self._eval(sol.a is not None).stationarity(*args)[1].copy(), args[2]

    def grad_and_hessian_theta(self, sol: MpcSolution) -> tuple[FloatArray, FloatArray]:
        """(∂L/∂θ, ∂²L/∂θ²) in one evaluation: what second-order LSTD needs per step."""
        _require_solution(sol)
        fn = self._fused_hess_theta(sol.a is not None, sol.layout)
        it, s, a, theta, p = fn.inputs
        it[:-1] = sol.iterate  # it[-1] stays 0: the appended zero of `unpack`
        s[:] = sol.s
        if sol.a is not None:
            a[:] = sol.a
        theta[:] = sol.theta
        p[:] = sol.p
        g, h = fn.evaluate()
        return g.copy(), h.copy()

    def _fused_hess_theta(self, is_q: bool, layout: IterateLayout) -> FastFunction:
        """(∂L/∂θ, ∂²L/∂θ²) straight from the acados iterate: `unpack` (gather, the x_0
        multiplier from stationarity) and `hess_theta` in one generated function.

        The same operations as the two-call path, so the same numbers: the gathered
        entries go through the same arithmetic, and the zeroed x_0 multipliers are the
        iterate's appended zero rather than constants CasADi would fold away.
        """
        key = (is_q, id(layout))
        fn = self._fused.get(key)
        if fn is not None:
            return fn
        m = self._map(is_q, layout)
        ev, tr, fns = self._eval(is_q), self.transcriptions[is_q], self.fns
        it = cs.SX.sym("it", layout.total + 1)
        s, a = cs.SX.sym("s", tr.s.shape[0]), cs.SX.sym("a", tr.a.shape[0])
        theta, p = cs.SX.sym("theta", tr.theta.shape[0]), cs.SX.sym("p", tr.p.shape[0])
        w, lam = it[m.w.tolist()], it[m.lam.tolist()]
        mu = cs.DM(m.mu_scale) * (it[m.mu_plus.tolist()] - it[m.mu_minus.tolist()])
        nx, zero = fns.nx, it[layout.total]
        rest = mu[nx:]
        mu_zeroed = cs.vertcat(*([zero] * nx), rest)
        grad_w = ev.stationarity.fn(w, mu_zeroed, lam, s, a, theta, p)[0]
        mu_full = cs.vertcat(-grad_w[tr.x_index[0].tolist()], rest)
        g, h = ev.hess_theta.fn(w, mu_full, lam, s, a, theta, p)
        fn = FastFunction(cs.Function("hess_theta_fused", [it, s, a, theta, p], [g, h]), matrix_outputs=(1,))
        self._fused[key] = fn
        return fn

    def regularity(self, sol: MpcSolution, tol: float = 1e-5) -> Regularity:
        """Check strict complementarity and LICQ at the solution (diagnostics)."""
        g, lam = self.inequalities(sol)
        weak = (lam < tol) & (g > -tol)
        _, Jeq, Jin, *_ = self._kkt_blocks(sol)
        active = np.where(lam >= tol)[0]
        J = np.vstack([Jeq, Jin[active]])
        licq = bool(np.linalg.matrix_rank(J) == J.shape[0])
        return Regularity(not bool(np.any(weak)), licq, int(active.size))

    # --- KKT sensitivities ------------------------------------------------------------------
    def _kkt_blocks(self, sol: MpcSolution) -> list[FloatArray]:
        return [o.copy() for o in self._eval(sol.a is not None).kkt(*self._args(sol))]

    def kkt_sensitivity(self, sol: MpcSolution,
                        blocks: list[FloatArray] | None = None) -> KktSensitivity:
        """Solve the KKT system on the active set for d(w, μ, λ_A)/dθ.

        Variables pinned by a θ-independent simple bound or equality (x_0 = s, an active
        input bound, a slack at zero) have dw = 0: they and their pinning rows are
        eliminated before the dense solve, and the derivatives of those rows'
        multipliers are recovered afterwards from the stationarity of the pinned
        variable.  This shrinks the system several-fold (exact, not an approximation).
        """
        H, Jeq, Jin, Hwt, Jeq_t, Jin_t, _ = blocks or self._kkt_blocks(sol)
        _, _, lam = self.unpack(sol)
        active = np.where(lam > ACTIVE_TOL)[0]
        JA, JA_t = Jin[active], Jin_t[active]
        nw, neq, na = H.shape[0], Jeq.shape[0], active.size
        eq_pin = _pinning_rows(Jeq, Jeq_t)
        in_pin = _pinning_rows(JA, JA_t)
        pinned = np.zeros(nw, dtype=bool)
        pinned[eq_pin[eq_pin >= 0]] = True
        pinned[in_pin[in_pin >= 0]] = True
        keep_w = np.where(~pinned)[0]
        keep_eq = np.where(eq_pin < 0)[0]
        keep_in = np.where(in_pin < 0)[0]
        Hr = H[np.ix_(keep_w, keep_w)]
        Er, Ar = Jeq[np.ix_(keep_eq, keep_w)], JA[np.ix_(keep_in, keep_w)]
        n1, n2, n3 = keep_w.size, keep_eq.size, keep_in.size
        K = np.zeros((n1 + n2 + n3, n1 + n2 + n3))
        K[:n1, :n1] = Hr
        K[:n1, n1:n1 + n2] = Er.T
        K[:n1, n1 + n2:] = Ar.T
        K[n1:n1 + n2, :n1] = Er
        K[n1 + n2:, :n1] = Ar
        rhs = -np.vstack([Hwt[keep_w], Jeq_t[keep_eq], JA_t[keep_in]])
        try:
            dz = np.linalg.solve(K, rhs)
        except np.linalg.LinAlgError:
            dz = np.linalg.lstsq(K, rhs, rcond=None)[0]
        dw = np.zeros((nw, rhs.shape[1]))
        dw[keep_w] = dz[:n1]
        dmu = np.zeros((neq, rhs.shape[1]))
        dmu[keep_eq] = dz[n1:n1 + n2]
        dlam = np.zeros((na, rhs.shape[1]))
        dlam[keep_in] = dz[n1 + n2:]
        # multipliers of the pinning rows, from stationarity in the pinned variable
        residual = H @ dw + Jeq.T @ dmu + JA.T @ dlam + Hwt  # rows of pinned variables
        claimed = np.zeros(nw, dtype=bool)
        for rows, J, dmult in ((np.where(eq_pin >= 0)[0], Jeq, dmu),
                               (np.where(in_pin >= 0)[0], JA, dlam)):
            pins = eq_pin if J is Jeq else in_pin
            for r in rows:
                j = pins[r]
                if claimed[j]:
                    continue  # a variable pinned twice: degenerate, leave the second at zero
                claimed[j] = True
                dmult[r] = -residual[j] / J[r, j]
        return KktSensitivity(dw, dmu, dlam, active)

    def _sparse_blocks(self, sol: MpcSolution) -> list[Coo]:
        """The KKT blocks as nonzeros (zeros of this point dropped: as the dense path sees them)."""
        out = []
        for data, row, col, shape in self._eval(sol.a is not None).kkt_sparse.coo(*self._args(sol)):
            keep = data != 0.0
            out.append(Coo(data[keep], row[keep], col[keep], shape))
        return out

    def kkt_sensitivity_sparse(self, sol: MpcSolution, blocks: list[Coo] | None = None,
                               multipliers: bool = True) -> KktSensitivity:
        """`kkt_sensitivity` from the sparse KKT blocks, with a sparse LU factorisation of the reduced
        KKT matrix (fill-reducing column order).  The stage structure keeps the nonzeros, the fill and
        so the cost about linear in the horizon, where the dense path grows as its cube.  Same system,
        same eliminations (assembled from index arrays, no dense matrix); a singular or non-finite
        solve falls back to the dense least-squares path.  ``multipliers=False`` skips the derivatives of
        the pinning rows' multipliers (left at zero; ∇θπ needs only dw)."""
        H, Jeq, Jin, Hwt, Jeq_t, Jin_t, _ = blocks if blocks is not None else self._sparse_blocks(sol)
        _, _, lam = self.unpack(sol)
        nw, neq, nin, nth = H.shape[0], Jeq.shape[0], Jin.shape[0], Hwt.shape[1]
        active = np.where(lam > ACTIVE_TOL)[0]
        na = active.size
        amap = np.full(nin, -1)
        amap[active] = np.arange(na)
        JA, JA_t = Jin.rows_mapped(amap, na), Jin_t.rows_mapped(amap, na)
        red = reduce_kkt(H, Jeq, JA, Hwt, Jeq_t, JA_t)
        keep_w, keep_eq, keep_in, pinned = red.keep_w, red.keep_eq, red.keep_in, red.pinned
        eq_pin, eq_pivot, in_pin, in_pivot = red.eq_pin, red.eq_pivot, red.in_pin, red.in_pivot
        n, n1, n2 = red.n, keep_w.size, keep_eq.size
        K = sp.csc_matrix((red.k_vals, (red.k_rows, red.k_cols)), shape=(n, n))
        rhs = np.zeros((n, nth))
        rhs[red.r_rows, red.r_cols] = red.r_vals
        try:
            dz = spla.splu(K, permc_spec=PERMC_SPEC).solve(rhs) if n else np.zeros((0, nth))
        except RuntimeError:  # exactly singular: the dense path's least-squares fallback
            return self.kkt_sensitivity(sol)
        if not np.all(np.isfinite(dz)):
            return self.kkt_sensitivity(sol)
        dw = np.zeros((nw, nth))
        dw[keep_w] = dz[:n1]
        dmu = np.zeros((neq, nth))
        dmu[keep_eq] = dz[n1:n1 + n2]
        dlam = np.zeros((na, nth))
        dlam[keep_in] = dz[n1 + n2:]
        if not multipliers:
            return KktSensitivity(dw, dmu, dlam, active)
        # multipliers of the pinning rows, from stationarity in the pinned variable (a variable pinned
        # twice keeps the first row, the second stays at zero: degenerate)
        pinned_w = np.flatnonzero(pinned)
        npin = pinned_w.size
        pmap = np.full(nw, -1)
        pmap[pinned_w] = np.arange(npin)
        residual = np.zeros((npin, nth))
        m = pmap[Hwt.row] >= 0
        residual[pmap[Hwt.row[m]], Hwt.col[m]] = Hwt.data[m]
        for B, tr, other, x in ((H, False, nw, dw), (Jeq, True, neq, dmu), (JA, True, na, dlam)):
            r, c = (B.col, B.row) if tr else (B.row, B.col)  # rows of Bᵀ are the columns of B
            m = pmap[r] >= 0
            residual += sp.csr_matrix((B.data[m], (pmap[r[m]], c[m])), shape=(npin, other)) @ x
        rows_eq, rows_in = np.flatnonzero(eq_pin >= 0), np.flatnonzero(in_pin >= 0)
        var = np.concatenate([eq_pin[rows_eq], in_pin[rows_in]])
        _, first = np.unique(var, return_index=True)
        take = np.zeros(var.size, dtype=bool)
        take[first] = True
        n_eq = rows_eq.size
        for rws, vars_, pivot, dmult, sel in ((rows_eq, var[:n_eq], eq_pivot, dmu, take[:n_eq]),
                                              (rows_in, var[n_eq:], in_pivot, dlam, take[n_eq:])):
            r = rws[sel]
            dmult[r] = -residual[pmap[vars_[sel]]] / pivot[r][:, None]
        return KktSensitivity(dw, dmu, dlam, active)

    def policy_jacobian(self, sol: MpcSolution, method: str = "auto") -> FloatArray:
        """∇θπ(s) = ∂u_0/∂θ, shape (nu, nθ), from a V solution.

        ``method``:

        * "auto": problems with more than `DENSE_MAX` NLP variables take the Riccati-type backward pass
          over the horizon (:mod:`rlmpc.toolkit.riccati_sensitivity`, linear in N); where it does not
          apply, the reduced KKT solve ("sparse"), the reason counted in :attr:`pi_fallbacks`.  Smaller
          problems take "sparse" directly: its dense solve of the small reduced system is faster there
          (LTI example: 0.11 against 0.41 ms, docs/benchmarks.md).
        * "riccati": the backward pass only; raises :class:`RiccatiNotApplicableError` with the reason.
        * "sparse": the reduced KKT system (cached plans, dense up to `DENSE_MAX` rows, sparse LU above).
        * "dense": the dense KKT solve, the reference.

        :attr:`last_pi_method` names the path taken."""
        if sol.a is not None:
            raise ValueError("policy_jacobian: expected a V(s) solution, got a Q(s,a) solution")
        if method not in PI_METHODS:
            raise ValueError(f"policy_jacobian: method: expected one of {list(PI_METHODS)}, got {method!r}")
        if method == "dense":
            self.last_pi_method = "dense"
            return self.kkt_sensitivity(sol).dw[self.transcriptions[False].u_index[0]]
        if method == "sparse" or (method == "auto" and self.transcriptions[False].nw <= DENSE_MAX):
            self.last_pi_method = "sparse"
            return self._policy_jacobian_planned(sol)
        try:
            out = self._policy_jacobian_riccati(sol)
        except RiccatiNotApplicableError as exc:
            if method == "riccati":
                raise
            self.pi_fallbacks[str(exc)] += 1
            self.last_pi_method = "sparse"
            return self._policy_jacobian_planned(sol)
        self.last_pi_method = "riccati"
        return out

    def stage_structure(self, is_q: bool = False) -> StageStructure:
        """The stage blocks of the V (or Q) problem's KKT system for the backward pass; raises
        :class:`RiccatiNotApplicableError` if the problem lacks the stage structure."""
        st = self._stages.get(is_q)
        if st is None:
            try:
                st = StageStructure(self.transcriptions[is_q], self._eval(is_q).kkt_sparse.patterns[:6],
                                    ACTIVE_TOL)
            except RiccatiNotApplicableError as exc:
                st = str(exc)
            self._stages[is_q] = st
        if isinstance(st, str):
            raise RiccatiNotApplicableError(st)
        return st

    def _policy_jacobian_riccati(self, sol: MpcSolution) -> FloatArray:
        _require_solution(sol)
        st = self.stage_structure(False)
        ev = self._eval(False)
        w, mu, lam = self._unpack(sol, x0_multiplier=ev.kkt_needs_x0_multiplier)
        st.load(ev.kkt_sparse.nonzeros(w, mu, lam, sol.s, np.zeros(self.fns.nu), sol.theta, sol.p)[:6])
        return riccati_policy_jacobian(st, st.plans(st.active_mask(lam)))

    def _policy_jacobian_planned(self, sol: MpcSolution) -> FloatArray:
        """The sparse path's ∇θπ, its reduced system assembled from a cached :class:`ReductionPlan` (one
        per sparsity pattern and active set) and, up to `DENSE_MAX` rows, solved dense; otherwise, or if
        that solve is singular or not finite, `kkt_sensitivity_sparse`."""
        u_index = self.transcriptions[False].u_index[0]
        if self.transcriptions[False].w.shape[0] > DENSE_MAX:  # (more variables: never a dense solve)
            return self.kkt_sensitivity_sparse(sol, multipliers=False).dw[u_index]
        ev = self._eval(False)
        # (unpacks the iterate once: λ decides the active set; μ of x_0 = s only if the blocks use it)
        w, mu, lam = self._unpack(sol, x0_multiplier=ev.kkt_needs_x0_multiplier)
        args = [w, mu, lam, sol.s, np.zeros(self.fns.nu), sol.theta, sol.p]
        coo = ev.kkt_sparse.coo(*args)
        data = np.concatenate([c[0] for c in coo[:6]])
        nonzero = data != 0.0
        active = args[2] > ACTIVE_TOL
        nth = coo[3][3][1]
        plan = self._pi_plan(nonzero.tobytes() + active.tobytes(), nonzero, active)
        du = None if plan is None else planned_u_rows(plan, data, nth)
        if plan is None or du is None:
            blocks = [Coo(d[d != 0.0], r[d != 0.0], c[d != 0.0], shape) for d, r, c, shape in coo]
            return self.kkt_sensitivity_sparse(sol, blocks, multipliers=False).dw[u_index]
        out = np.zeros((u_index.size, nth))
        out[plan.u_out] = du
        return out

    def _pi_plan(self, key: bytes, nonzero: np.ndarray, active: np.ndarray) -> ReductionPlan | None:
        """The cached reduction plan of the V problem's KKT nonzeros ``nonzero`` (the six blocks' data
        concatenated) and active inequality rows ``active`` (``key``: their bytes), made if new; None for
        a reduced system above `DENSE_MAX` rows."""
        try:
            return self._pi_plans[key]
        except KeyError:
            pass
        if len(self._pi_plans) >= PLAN_CACHE:
            self._pi_plans.clear()
        patterns = self._eval(False).kkt_sparse.patterns[:6]
        plan: ReductionPlan | None = make_plan(patterns, nonzero, np.flatnonzero(active),
                                               self.transcriptions[False].u_index[0], patterns[3][2][1])
        self._pi_plans[key] = plan = plan if plan is not None and plan.n <= DENSE_MAX else None
        return plan

    def hessian_theta(self, sol: MpcSolution, full: bool = False, method: str = "auto") -> FloatArray:
        """Hessian of V or Q in θ.

        ``full=False`` gives ∂²L/∂θ² at fixed primal-dual solution (the usual
        approximation of second-order LSTD Q-learning); ``full=True`` adds the
        term through the solution's own dependence on θ, by ``method``: "riccati" (the backward
        and a forward pass over the horizon, :func:`rlmpc.toolkit.riccati_sensitivity.hessian_term`;
        raises :class:`RiccatiNotApplicableError` where it does not apply), "sparse" (the sparse LU of
        the reduced KKT system, with the multipliers' derivatives) or "auto" (the first, else the
        second, the reason counted in :attr:`pi_fallbacks`).
        """
        if not full:
            return self.grad_and_hessian_theta(sol)[1]
        if method not in ("auto", "riccati", "sparse"):
            raise ValueError(f"hessian_theta: method: expected 'auto', 'riccati' or 'sparse', got {method!r}")
        if method != "sparse":
            try:
                return self._full_hessian_riccati(sol)
            except RiccatiNotApplicableError as exc:
                if method == "riccati":
                    raise
                self.pi_fallbacks[str(exc)] += 1
        blocks = self._sparse_blocks(sol)
        _, _, _, Hwt, Jeq_t, Jin_t, Htt = blocks
        sens = self.kkt_sensitivity_sparse(sol, blocks)
        amap = np.full(Jin_t.shape[0], -1)
        amap[sens.active] = np.arange(sens.active.size)
        JA_t = Jin_t.rows_mapped(amap, sens.active.size)
        total = (Htt.csr().toarray() + Hwt.csr().T @ sens.dw + Jeq_t.csr().T @ sens.dmu
                 + JA_t.csr().T @ sens.dlam_active)
        return np.asarray(0.5 * (total + total.T))

    def _full_hessian_riccati(self, sol: MpcSolution) -> FloatArray:
        _require_solution(sol)
        is_q = sol.a is not None
        st = self.stage_structure(is_q)
        ev = self._eval(is_q)
        w, mu, lam = self._unpack(sol, x0_multiplier=ev.kkt_needs_x0_multiplier)
        a = sol.a if sol.a is not None else np.zeros(self.fns.nu)
        nonzeros = ev.kkt_sparse.nonzeros(w, mu, lam, sol.s, a, sol.theta, sol.p)
        row, col, shape = ev.kkt_sparse.patterns[6]
        total = np.zeros(shape)
        total[row, col] = nonzeros[6]
        st.load(nonzeros[:6])
        total += hessian_term(st, st.plans(st.active_mask(lam)))
        return 0.5 * (total + total.T)
