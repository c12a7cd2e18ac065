"""`MPC`: V(s), Q(s,a) and π(s) of a :class:`ParametricMPC` from acados solvers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rlmpc.toolkit.acados_build import BuiltSolver, build_solver, resolve_nlp_solver
from rlmpc.toolkit.acados_instance import AcadosInstance, IterateLayout, SolveStats
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ParametricMPC, ProblemFunctions
from rlmpc.toolkit.soft_pairs import IterateExpansion, SoftPairs, find_pairs, merged_slacks
from rlmpc.toolkit.stage_settings import StartupSettings, startup_settings

if TYPE_CHECKING:
    from rlmpc.toolkit.sensitivities import Sensitivities

UNVERIFIED = 10  # status of a solve whose QP stopped at its iteration limit (see MPC._solve_again)
ACADOS_STATUS = {
    0: "success", 1: "NaN detected", 2: "maximum number of iterations reached",
    3: "minimum step size reached", 4: "QP solver failed", 5: "solver not ready",
    UNVERIFIED: "QP stopped at its iteration limit (not verified)",
}
FALLBACK = "!"  # suffix of the instances that solve again what the first solve did not verify


@dataclass
class Verification:
    """Solves that acados reported as successful but whose QP stopped at its iteration limit."""

    unverified: int = 0  # such solves
    resolved: int = 0  # of which solved again, and verified, with the fallback HPIPM mode


@dataclass(frozen=True)
class MpcSolution:
    """A primal-dual solution of the MPC for V(s) (``a is None``) or Q(s,a).

    When ``success`` is false, ``value``, ``u0`` and the plan are acados' last iterate (often
    the warm start: another state's solution), not a solution at ``s``: check ``success``
    before using them; the sensitivities refuse such a solution."""

    value: float
    status: int
    sqp_iter: int
    time_tot: float
    s: FloatArray
    a: FloatArray | None
    theta: FloatArray
    p: FloatArray
    iterate: FloatArray
    layout: IterateLayout

    @property
    def success(self) -> bool:
        return self.status == 0

    @property
    def message(self) -> str:
        return ACADOS_STATUS.get(self.status, f"status {self.status}")

    def stage(self, field: str, k: int) -> FloatArray:
        return self.iterate[self.layout.index(field, k)]

    @property
    def x(self) -> FloatArray:
        """Predicted states, shape (N+1, nx)."""
        n = self.layout.sizes.shape[0]
        return np.stack([self.stage("x", k) for k in range(n)])

    @property
    def u(self) -> FloatArray:
        """Predicted inputs, shape (N, nu)."""
        n = self.layout.sizes.shape[0] - 1
        return np.stack([self.stage("u", k) for k in range(n)])

    @property
    def u0(self) -> FloatArray:
        start = int(self.layout.offsets[0, 1])  # = self.stage("u", 0), without the index array
        return self.iterate[start:start + int(self.layout.sizes[0, 1])].copy()


def _vector(name: str, value: npt.ArrayLike, n: int) -> FloatArray:
    if (type(value) is np.ndarray and value.dtype == np.float64 and value.shape == (n,)
            and value.flags.c_contiguous and np.isfinite(value).all()):
        return value  # fast path: what the general path returns (a view) for such input
    arr = np.asarray(value, dtype=float)
    if arr.size != n or arr.ndim > 2:
        raise ValueError(f"{name}: expected a vector of {n} entries, got shape {np.shape(value)}")
    arr = np.ascontiguousarray(arr.ravel())
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite numbers, got {arr}")
    return arr


class MPC:
    """acados solvers for V(s), Q(s,a) and π(s) of one parametric problem.

    Parameters
    ----------
    problem : ParametricMPC or ProblemFunctions
        The problem definition.
    options : SolverOptions, optional
        Solver options (defaults: ``nlp_solver="auto"`` (one RTI step for a QP, else SQP),
        Gauss-Newton Hessian, full condensing with HPIPM in BALANCE mode, tol 1e-8).
    theta, p : mapping or vector, optional
        Initial learnable and fixed parameter values (defaults from the definition).
    """

    def __init__(self, problem: ParametricMPC | ProblemFunctions,
                 options: SolverOptions | None = None,
                 theta: ParameterValues | None = None,
                 p: ParameterValues | None = None) -> None:
        self.fns = problem.build() if isinstance(problem, ParametricMPC) else problem
        self.options = options or SolverOptions()
        pairs = find_pairs(self.fns) if self.options.merge_soft_pairs else None
        self._pairs: SoftPairs | None = pairs if pairs is not None and pairs.n else None
        self._expansion: IterateExpansion | None = None
        self._uh = self._pairs.upper_bounds(self.fns) if self._pairs is not None else None
        self.built = build_solver(self.fns, self.options, self._pairs)
        fns = self.fns
        self._theta = fns.theta.flatten(theta)
        self._p = fns.params.flatten(p, check_bounds=False)
        self.nlp_solver = resolve_nlp_solver(fns, self.options)
        settings = startup_settings(fns, self._theta, self._p)
        self._lbu = np.ascontiguousarray(settings.lbu)
        self._ubu = np.ascontiguousarray(settings.ubu)
        # rows [θ; p; γ^k] per stage, kept up to date in place: recomputing the startup
        # settings on every θ update (as learning does each step) costs ~0.2 ms
        self._stage_parameters = np.array(settings.stage_parameters, dtype=float, order="C")
        self._ntheta = self._theta.size
        self._theta_lb = fns.theta.lower()
        self._theta_ub = fns.theta.upper()
        self._instances: dict[str, AcadosInstance] = {}
        self._stale: set[str] = set()  # instances whose (θ, p) lag behind (see _push_parameters)
        self._fallback_kinds: tuple[str, ...] = ()  # the kinds of the fallback instances made so far
        self._sens: Sensitivities | None = None
        self.failures = 0
        self.verification = Verification()
        self._check_qp = self.nlp_solver == "SQP_RTI"  # (SQP's own convergence test covers its QPs)
        self._fallback_built: BuiltSolver | None = None

    # --- parameters -------------------------------------------------------------------
    @property
    def theta(self) -> FloatArray:
        return self._theta.copy()

    @theta.setter
    def theta(self, value: ParameterValues) -> None:
        self._theta = self._flatten_theta(value)
        self._push_parameters()

    def _flatten_theta(self, value: ParameterValues) -> FloatArray:
        """``fns.theta.flatten(value)``, with a fast path for valid flat vectors."""
        if not isinstance(value, Mapping):
            flat = np.asarray(value, dtype=float).ravel()
            if (flat.size == self._ntheta and np.isfinite(flat).all()
                    and not ((flat < self._theta_lb) | (flat > self._theta_ub)).any()):
                return flat
        return self.fns.theta.flatten(value)  # the general path, with its error messages

    @property
    def p(self) -> FloatArray:
        return self._p.copy()

    @p.setter
    def p(self, value: ParameterValues) -> None:
        self._p = self.fns.params.flatten(value, check_bounds=False)
        self._push_parameters()

    def theta_dict(self) -> dict[str, FloatArray]:
        return self.fns.theta.unflatten(self._theta)

    def _settings(self) -> StartupSettings:
        return startup_settings(self.fns, self._theta, self._p)

    def _push_parameters(self) -> None:
        # the same rows as ``self._settings().stage_parameters``, updated in place
        p_all = self._stage_parameters
        p_all[:, :self._ntheta] = self._theta
        p_all[:, self._ntheta:self._ntheta + self._p.size] = self._p
        # the fallback instances (rarely used) are brought up to date when they solve (_synced)
        self._stale.update(self._fallback_kinds)
        current = [inst for kind, inst in self._instances.items() if kind not in self._fallback_kinds]
        for inst in current:
            inst.set_params_all(p_all)
        if self._pairs is not None:
            uh_mid, uh_end = self._merged_upper_bounds()
            for inst in current:
                inst.set_uh_stages(uh_mid, uh_end)

    def _adopt_theta(self, theta: FloatArray) -> None:
        """θ that compiled code has already set on the Q and V solvers and in the stage parameter rows
        (:mod:`rlmpc.toolkit.rl.native_q_step`): taken over without setting it again."""
        self._theta = theta
        self._stale.update(self._fallback_kinds)

    def _synced(self, kind: str) -> AcadosInstance:
        """The instance of ``kind``, with the current (θ, p) if it missed an update."""
        inst = self._instance(kind)
        if kind in self._stale:
            self._stale.discard(kind)
            inst.set_params_all(self._stage_parameters)
            if self._pairs is not None:
                inst.set_uh_stages(*self._merged_upper_bounds())
        return inst

    def _merged_upper_bounds(self) -> tuple[FloatArray, FloatArray]:
        """Upper bounds of the merged solver's h on stages 1..N-1 and N at the current (θ, p)."""
        assert self._uh is not None
        self._uh.inputs[0][:] = self._theta
        self._uh.inputs[1][:] = self._p
        mid, end = self._uh.evaluate()
        return mid, end

    # --- instances ----------------------------------------------------------------------
    def _instance(self, kind: str) -> AcadosInstance:
        inst = self._instances.get(kind)
        if inst is None:
            if kind.endswith(FALLBACK):
                if self._fallback_built is None:
                    opts = replace(self.options, hpipm_mode=self.options.fallback_hpipm_mode or "ROBUST",
                                   qp_max_iter=max(self.options.qp_max_iter, 200))
                    self._fallback_built = build_solver(self.fns, opts, self._pairs)
                inst = AcadosInstance(self._fallback_built)
            else:
                inst = AcadosInstance(self.built)
                if self.options.qp_mu0 is not None:
                    inst.set_qp_mu0(self.options.qp_mu0)
            self._configure(inst)
            self._instances[kind] = inst
            self._fallback_kinds = tuple(k for k in self._instances if k.endswith(FALLBACK))
        return inst

    def _configure(self, inst: AcadosInstance) -> None:
        settings = self._settings()
        inst.set_params_all(settings.stage_parameters)
        pairs, n_state = self._pairs, self.fns.state_rows.n
        if settings.lh0 is not None and settings.uh0 is not None:
            lh0, uh0 = settings.lh0, settings.uh0
            if pairs is not None:  # (stage 0's state rows are relaxed: drop the partners' rows)
                rows = np.concatenate([pairs.kept, np.arange(n_state, lh0.size)])
                lh0, uh0 = np.ascontiguousarray(lh0[rows]), np.ascontiguousarray(uh0[rows])
            inst.constraints_set(0, "lh", lh0)
            inst.constraints_set(0, "uh", uh0)
        for k, slack in enumerate(settings.slacks):
            if slack is None:
                continue
            if pairs is None:
                values = (("zl", slack.linear), ("zu", slack.linear),
                          ("Zl", slack.quadratic), ("Zu", slack.quadratic))
            else:
                m = merged_slacks(self.fns, pairs, k, slack.linear, slack.quadratic)
                values = (("zl", m.zl), ("zu", m.zu), ("Zl", m.Zl), ("Zu", m.Zu))
            for field, val in values:
                inst.cost_set(k, field, val)
        if pairs is not None:
            inst.set_uh_stages(*self._merged_upper_bounds())
            if self._expansion is None:
                self._expansion = IterateExpansion(self.fns, pairs, inst.layout)

    # --- evaluation ---------------------------------------------------------------------
    def _solve(self, kind: str, s: FloatArray, a: FloatArray | None) -> MpcSolution:
        inst = self._instances.get(kind) or self._instance(kind)
        if not self.options.warm_start:
            inst.reset()
        lbu, ubu = (self._lbu, self._ubu) if a is None else (a, a)
        stats, iterate = inst.solve_full(s, lbu, ubu)
        return self._finish(kind, inst, stats, iterate, s, a)

    def _finish(self, kind: str, inst: AcadosInstance, stats: SolveStats, iterate: FloatArray,
                s: FloatArray, a: FloatArray | None) -> MpcSolution:
        """The solution of a solve of ``kind`` just made: verified (or solved again), in the problem's layout."""
        if self._check_qp and stats.qp_status != 0 and stats.status == 0:
            lbu, ubu = (self._lbu, self._ubu) if a is None else (a, a)
            inst, stats, iterate = self._solve_again(kind, s, lbu, ubu, stats, iterate)
        return self._solution(inst, stats, iterate, s, a)

    def q_and_value(self, s: npt.ArrayLike, a: npt.ArrayLike,
                    s_next: npt.ArrayLike) -> tuple[MpcSolution, MpcSolution]:
        """``(q_value(s, a), value(s_next))``, the two solves in one call to C (a Q-learning step's)."""
        s = _vector("state s", s, self.fns.nx)
        a = _vector("action a", a, self.fns.nu)
        s_next = _vector("state s", s_next, self.fns.nx)
        q_inst = self._instances.get("Q") or self._instance("Q")
        v_inst = self._instances.get("V") or self._instance("V")
        if not self.options.warm_start:
            q_inst.reset()
            v_inst.reset()
        (q_stats, q_it), (v_stats, v_it) = q_inst.solve_pair_with(v_inst, s, a, a, s_next, self._lbu, self._ubu)
        return (self._finish("Q", q_inst, q_stats, q_it, s, a),
                self._finish("V", v_inst, v_stats, v_it, s_next, None))

    def _solve_again(self, kind: str, s: FloatArray, lbu: FloatArray, ubu: FloatArray,
                     stats: SolveStats, iterate: FloatArray) -> tuple[AcadosInstance, SolveStats, FloatArray]:
        """The QP of a real-time iteration stopped at its iteration limit, which acados reports as
        success: not verified.  Solved again with the fallback HPIPM mode, else reported failed."""
        self.verification.unverified += 1
        if self.options.fallback_hpipm_mode is None:
            return self._instances[kind], replace(stats, status=UNVERIFIED), iterate
        inst = self._synced(kind + FALLBACK)
        stats2, iterate = inst.solve_full(s, lbu, ubu)
        if stats2.status == 0 and stats2.qp_status == 0:
            self.verification.resolved += 1
            return inst, replace(stats2, time_tot=stats.time_tot + stats2.time_tot), iterate
        status = stats2.status if stats2.status != 0 else UNVERIFIED
        return inst, replace(stats2, status=status, time_tot=stats.time_tot + stats2.time_tot), iterate

    def _solution(self, inst: AcadosInstance, stats: SolveStats, iterate: FloatArray,
                  s: FloatArray, a: FloatArray | None) -> MpcSolution:
        if stats.status != 0:
            self.failures += 1
            if stats.status in (1, 4) or not np.all(np.isfinite(iterate)):
                inst.reset()  # never warm-start from a broken iterate
        layout = inst.layout
        if self._expansion is not None:  # the problem's own layout (soft pairs merged in acados)
            iterate, layout = self._expansion.expand(iterate), self._expansion.layout
        return MpcSolution(
            value=stats.cost, status=stats.status, sqp_iter=stats.sqp_iter,
            time_tot=stats.time_tot, s=s, a=a, theta=self._theta.copy(), p=self._p.copy(),
            iterate=iterate, layout=layout,
        )

    def value(self, s: npt.ArrayLike) -> MpcSolution:
        """Solve for V(s); the solution's ``u0`` is the policy π(s)."""
        return self._solve("V", _vector("state s", s, self.fns.nx), None)

    def q_value(self, s: npt.ArrayLike, a: npt.ArrayLike) -> MpcSolution:
        """Solve for Q(s, a): the first input is fixed to ``a``."""
        return self._solve("Q", _vector("state s", s, self.fns.nx),
                           _vector("action a", a, self.fns.nu))

    def policy(self, s: npt.ArrayLike) -> FloatArray:
        """π(s) = u_0 of the V solution."""
        return self.value(s).u0

    # --- sensitivities --------------------------------------------------------------------
    @property
    def sensitivities(self) -> Sensitivities:
        """∇θV, ∇θQ, ∇θπ and Hessians at acados solutions (built lazily)."""
        if self._sens is None:
            from rlmpc.toolkit.sensitivities import Sensitivities

            self._sens = Sensitivities(self.fns)
        return self._sens

    def warm_start_state(self) -> dict[str, FloatArray]:
        """The primal-dual iterates the next solves start from (for checkpoints)."""
        return {kind: inst.get_iterate() for kind, inst in self._instances.items()}

    def load_warm_start_state(self, state: dict[str, FloatArray]) -> None:
        """Restore iterates saved by :meth:`warm_start_state` (bit-identical resumes)."""
        for kind, iterate in state.items():
            inst = self._instance(kind)
            arr = np.asarray(iterate, dtype=float)
            if self._expansion is not None and arr.size == self._expansion.layout.total:
                arr = self._expansion.compress(arr)  # (a solution's iterate, in the problem's layout)
            inst.set_iterate(arr)

    def set_primal_guess(self, x: FloatArray, u: FloatArray) -> None:
        """The next ``value`` starts from these states ((N+1) × nx) and inputs (N × nu), with zero
        multipliers and slacks (as an RTI device's guess after a failed step)."""
        inst = self._instance("V")
        lay = inst.layout
        iterate = np.zeros(lay.total)
        for k in range(inst.horizon + 1):
            iterate[lay.index("x", k)] = x[k]
        for k in range(inst.horizon):
            iterate[lay.index("u", k)] = u[k]
        inst.set_iterate(iterate)

    def shift_warm_start(self) -> None:
        """Shift the warm start of the V solver one stage on (x_k <- x_{k+1}, u_k <- u_{k+1},
        the last stage repeated): the next ``value`` starts from the last plan shifted."""
        self._instance("V").shift_iterate()

    def reset(self) -> None:
        """Forget warm starts: the next solves start from a zero iterate."""
        for inst in self._instances.values():
            inst.reset()

    def close(self) -> None:
        for inst in self._instances.values():
            inst.close()
        self._instances.clear()
        self._fallback_kinds = ()
        self._stale.clear()
