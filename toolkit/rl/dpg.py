"""Deterministic policy gradient with an LSTD critic on compatible features.

During a rollout the agent applies a = π_θ(s) + exploration and records, per
step, ∇θπ_θ(s) (from the MPC's KKT sensitivities), the exploration a − π_θ(s),
the cost and the next state.  After the rollout it fits, by least-squares
temporal differences, the advantage A(s,a) = Φ(s,a)ᵀ w on the compatible
features Φ(s,a) = ∇θπ_θ(s)ᵀ (a − π_θ(s)) together with a quadratic state-value
baseline V(s) = ψ(s)ᵀ v, and updates θ along the cost gradient
∇θJ ≈ mean(∇θπ_θ(s)ᵀ ∇θπ_θ(s)) w.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.rl.agent import MpcAgent
from rlmpc.toolkit.rl.exploration import Exploration
from rlmpc.toolkit.rl.native_dpg_step import DONE as NATIVE_DONE
from rlmpc.toolkit.rl.native_dpg_step import NativeDpgStep, native_dpg_step
from rlmpc.toolkit.rl.optimizers import Optimizer

CRITICS = ("lstd", "monte_carlo")


_TRIU: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _triu(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n)``, cached."""
    iu = _TRIU.get(n)
    if iu is None:
        iu = _TRIU[n] = np.triu_indices(n)
    return iu


def quadratic_features(s: FloatArray) -> FloatArray:
    """[1, s, upper triangle of s sᵀ]: the baseline's features."""
    return quadratic_features_rows(np.asarray(s, dtype=float).reshape(1, -1))[0]


def quadratic_features_rows(S: FloatArray) -> FloatArray:
    """The baseline's features [1, s, upper triangle of s sᵀ] of each row s of ``S`` (shape (m, n)),
    stacked: shape (m, 1 + n + n(n+1)/2)."""
    i, j = _triu(S.shape[1])
    return np.hstack([np.ones((S.shape[0], 1)), S, S[:, i] * S[:, j]])


class DeterministicPolicyGradient(MpcAgent):
    """DPG with the MPC as deterministic policy.

    Parameters
    ----------
    rollout_length : int or None
        Steps per update; ``None`` updates at the end of every episode.
    ridge : float
        Tikhonov regularisation of the LSTD system.
    native : bool
        Solve V and compute ∇θπ in one compiled call where the problem takes the planned reduced KKT
        path: the same numbers, faster (:mod:`rlmpc.toolkit.rl.native_dpg_step`).  False: Python only.
    critic : {"lstd", "monte_carlo"}
        ``lstd`` fits the critic by temporal differences (bootstrapping on the
        quadratic baseline); ``monte_carlo`` regresses the discounted returns of
        the rollout on the same features (no bootstrapping bias, more variance).
    """

    def __init__(self, mpc: MPC, discount: float, optimizer: Optimizer,
                 exploration: Exploration, rng: np.random.Generator,
                 rollout_length: int | None = None, ridge: float = 1e-6,
                 critic: str = "lstd", failure_action: str = "solution", native: bool = True) -> None:
        super().__init__(mpc, discount, optimizer, exploration, rng, failure_action)
        if rollout_length is not None and (not isinstance(rollout_length, int) or rollout_length < 2):
            raise ValueError(f"agent.rollout_length: expected an integer >= 2, got {rollout_length!r}")
        if critic not in CRITICS:
            raise ValueError(f"agent.critic: expected one of {list(CRITICS)}, got {critic!r}")
        self.rollout_length = rollout_length
        self.ridge = float(ridge)
        self.critic = critic
        self._rollout: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self.native = native  # the compiled step where it applies (rlmpc.toolkit.rl.native_dpg_step)
        # (built now, with the KKT functions it evaluates: not in the first learning step)
        built = native_dpg_step(mpc) if native else "agent.native = false"
        self._native: NativeDpgStep | None = built if isinstance(built, NativeDpgStep) else None
        self._native_off = built if isinstance(built, str) else ""

    def _plan(self, s: FloatArray, sol: MpcSolution) -> FloatArray:
        action = self._action_from(sol, explore=True)
        if sol.success:
            jac = self.mpc.sensitivities.policy_jacobian(sol)
            self._current = {"s": s.copy(), "pi": sol.u0.copy(), "jac": jac, "a": action.copy()}
        else:
            self._current = None
        return action

    def _begin(self, s: FloatArray) -> FloatArray:
        return self._act_at(s)

    def _act_at(self, s: FloatArray) -> FloatArray:
        """Solve V(s), record ∇θπ(s) for the rollout, and return the explored action."""
        native = self._native_step()
        if native is not None:
            outcome = native.run(s)
            if outcome == NATIVE_DONE:  # V(s) and ∇θπ computed in C, the Python path's numbers
                pi, jac = native.policy()
                action = self._act(pi, explore=True)
                self._current = {"s": s.copy(), "pi": pi, "jac": jac, "a": action.copy()}
                return action
            sol = native.solution(s)
        else:
            sol = self.mpc.value(s)
        if not sol.success:
            self.failures.record("V", sol)
        return self._plan(s, sol)

    def observe(self, s: FloatArray, a: FloatArray, cost: float, s_next: FloatArray,
                terminated: bool) -> tuple[FloatArray, dict[str, float]]:
        if self._current is not None:
            self._current.update(cost=float(cost), s_next=s_next.copy(), terminated=bool(terminated))
            self._rollout.append(self._current)
        else:
            self.failures.skipped_updates += 1
        self.steps += 1
        info: dict[str, float] = {}
        if self.rollout_length is not None and len(self._rollout) >= self.rollout_length:
            info.update(self._learn())
        return self._act_at(s_next), info

    def _native_step(self) -> NativeDpgStep | None:
        """The compiled V solve and ∇θπ (:mod:`rlmpc.toolkit.rl.native_dpg_step`) where they apply."""
        return self._native if self._compiled_step_usable() else None

    def end_episode(self) -> dict[str, float]:
        return self._learn() if len(self._rollout) >= 2 else {}

    def _learn(self) -> dict[str, float]:
        data, self._rollout = self._rollout, []
        gamma = self.discount
        # (np.array of the rows: what np.stack gives, without its per-row Python work)
        jac = np.array([d["jac"] for d in data])  # (m, nu, nθ)
        jac_t = jac.transpose(0, 2, 1)
        explored = np.array([d["a"] for d in data]) - np.array([d["pi"] for d in data])
        phi = np.matmul(jac_t, explored[:, :, None])[:, :, 0]
        psi = quadratic_features_rows(np.array([d["s"] for d in data]))
        psi_next = quadratic_features_rows(np.array([d["s_next"] for d in data]))
        psi_next[[d["terminated"] for d in data]] = 0.0
        cost = np.array([d["cost"] for d in data])
        if self.critic == "lstd":
            # LSTD: Σ z (c + γ ψ'ᵀv − ψᵀv − Φᵀw) = 0 with z = [Φ; ψ]
            z = np.hstack([phi, psi])
            feats = np.hstack([phi, psi - gamma * psi_next])
            target = cost
        else:
            # Monte Carlo: discounted return-to-go of the rollout regressed on [Φ; ψ]
            target = np.zeros_like(cost)
            running = 0.0
            for i in range(len(data) - 1, -1, -1):
                if data[i]["terminated"] or i == len(data) - 1:
                    running = 0.0
                running = cost[i] + gamma * running
                target[i] = running
            z = feats = np.hstack([phi, psi])
        A = z.T @ feats / len(data)
        b = z.T @ target / len(data)
        A[np.diag_indices_from(A)] += self.ridge
        sol = np.linalg.lstsq(A, b, rcond=None)[0]
        w = sol[: phi.shape[1]]
        fisher = np.matmul(jac_t, jac).mean(axis=0)
        grad = fisher @ w
        self._update(grad, None)
        td = target - feats @ sol
        return {"td_error": float(np.sqrt(np.mean(td**2))), "policy_gradient_norm":
                float(np.linalg.norm(grad))}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["rollout"] = [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                             for k, v in d.items()} for d in self._rollout]
        state["current"] = None if self._current is None else {
            k: v.tolist() for k, v in self._current.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)

        def arrays(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (np.asarray(v, dtype=float) if isinstance(v, list) else v)
                    for k, v in d.items()}

        self._rollout = [arrays(d) for d in state["rollout"]]
        self._current = None if state["current"] is None else arrays(state["current"])
