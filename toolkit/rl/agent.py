"""Common machinery of MPC-based agents: acting, exploration, failures, state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.rl.exploration import Exploration
from rlmpc.toolkit.rl.optimizers import Optimizer

FAILURE_ACTIONS = ("solution", "last")


@dataclass
class FailureCounter:
    """MPC failures met during learning, by problem (V or Q)."""

    value: int = 0
    q_value: int = 0
    skipped_updates: int = 0
    messages: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, sol: MpcSolution) -> None:
        if kind == "V":
            self.value += 1
        else:
            self.q_value += 1
        self.messages[sol.message] = self.messages.get(sol.message, 0) + 1

    @property
    def total(self) -> int:
        return self.value + self.q_value


class MpcAgent:
    """Base class: an MPC as policy, with exploration and a θ optimiser.

    Parameters
    ----------
    mpc : MPC
        Parametric MPC whose θ is learned.
    discount : float
        Discount factor γ of the learning problem.
    optimizer : Optimizer
        Turns gradients (of the cost to minimise) into bounded θ updates.
    exploration : Exploration
        Perturbs the greedy action.
    rng : numpy.random.Generator
        The agent's random stream (exploration, replay sampling).
    failure_action : {"solution", "last"}
        The action applied when the MPC fails: the failed solution's u0 when it is
        finite (``"solution"``), or the previous action (``"last"``).
    """

    def __init__(self, mpc: MPC, discount: float, optimizer: Optimizer,
                 exploration: Exploration, rng: np.random.Generator,
                 failure_action: str = "solution") -> None:
        if failure_action not in FAILURE_ACTIONS:
            raise ValueError(f"agent.on_failure: expected one of {list(FAILURE_ACTIONS)}, "
                             f"got {failure_action!r}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"agent.discount: expected 0 < γ <= 1, got {discount}")
        self.mpc = mpc
        self.discount = float(discount)
        self.optimizer = optimizer
        self.exploration = exploration
        self.rng = rng
        self.failure_action = failure_action
        self.failures = FailureCounter()
        self.low = np.asarray(mpc.fns.u_lb, dtype=float)
        self.high = np.asarray(mpc.fns.u_ub, dtype=float)
        self.steps = 0
        self.updates = 0
        self._last_action = np.clip(np.zeros(mpc.fns.nu), self.low, self.high)
        # learning through a device (rlmpc.hil.device_training): the greedy action comes from the
        # controller on the target, at the solution's state and θ (MpcSolution.s, .theta)
        self.greedy_source: Callable[[MpcSolution], FloatArray] | None = None
        # … and may be told (s, θ, p) of the next greedy action as soon as they are known, before the
        # workstation's solves, to start on it meanwhile (the action is still taken by greedy_source)
        self.greedy_prefetch: Callable[[FloatArray, FloatArray, FloatArray], None] | None = None
        # … and told when an episode starts (a device restarts its controller cold: a new experiment)
        self.greedy_episode_start: Callable[[], None] | None = None
        # the compiled learning step of a subclass (its object, or why there is none)
        self.native = False
        self._native: Any = None
        self._native_off = "not available for this agent"

    # --- acting ----------------------------------------------------------------------
    def _action_from(self, sol: MpcSolution, explore: bool) -> FloatArray:
        if self.greedy_source is not None:
            action = np.asarray(self.greedy_source(sol), dtype=float)
        elif sol.success or (self.failure_action == "solution" and np.all(np.isfinite(sol.u0))):
            action = sol.u0
        else:
            action = self._last_action.copy()
        return self._act(action, explore)

    def _act(self, action: FloatArray, explore: bool) -> FloatArray:
        """The greedy ``action`` (a new array) explored, clipped and remembered."""
        if explore:
            action = self.exploration.perturb(action, self.rng, self.steps)
        action = np.minimum(np.maximum(action, self.low), self.high)  # = np.clip, without its wrapper
        self._last_action = action.copy()
        return action

    def greedy_action(self, s: FloatArray) -> FloatArray:
        """π_θ(s) without exploration (failures handled by the failure policy)."""
        sol = self.mpc.value(s)
        if not sol.success:
            self.failures.record("V", sol)
        return self._action_from(sol, explore=False)

    def begin_episode(self, s: FloatArray) -> FloatArray:
        """Start an episode in state s; returns the first action."""
        self.exploration.reset()
        if self.greedy_episode_start is not None:
            self.greedy_episode_start()
        return self._begin(s)

    def _begin(self, s: FloatArray) -> FloatArray:
        sol = self.mpc.value(s)
        if not sol.success:
            self.failures.record("V", sol)
        return self._action_from(sol, explore=True)

    def observe(self, s: FloatArray, a: FloatArray, cost: float, s_next: FloatArray,
                terminated: bool) -> tuple[FloatArray, dict[str, float]]:
        """Learn from one transition; returns the next action and step diagnostics."""
        raise NotImplementedError

    def compiled_step_report(self) -> dict[str, Any]:
        """What the compiled learning step did in this process (:mod:`rlmpc.toolkit.rl.native_q_step`,
        :mod:`rlmpc.toolkit.rl.native_dpg_step`): its counts, or ``{"off": why}``."""
        if not self.native:
            return {"off": "agent.native = false"}
        if self._native is None:
            return {"off": self._native_off}
        if self.greedy_source is not None:
            return {"off": "a device in the loop supplies the greedy actions"}
        return dict(self._native.report())

    def _compiled_step_usable(self) -> bool:
        """Whether the compiled step may take this step: switched on, and no device in the loop
        (whose actions the Python path asks for)."""
        return self.native and self.greedy_source is None and self.greedy_prefetch is None

    def end_episode(self) -> dict[str, float]:
        """Called when an episode ends (DPG updates here)."""
        return {}

    def _update(self, grad: FloatArray, hessian: FloatArray | None) -> None:
        new_theta = self.optimizer.step(self.mpc.theta, grad, hessian)
        self.mpc.theta = new_theta
        self.updates += 1

    # --- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "theta": self.mpc.theta.tolist(),
            "optimizer": self.optimizer.state_dict(),
            "exploration": self.exploration.state_dict(),
            "rng": self.rng.bit_generator.state,
            "steps": self.steps,
            "updates": self.updates,
            "last_action": self._last_action.tolist(),
            "failures": vars(self.failures).copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mpc.theta = np.asarray(state["theta"], dtype=float)
        self.optimizer.load_state_dict(state["optimizer"])
        self.exploration.load_state_dict(state["exploration"])
        self.rng.bit_generator.state = state["rng"]
        self.steps = int(state["steps"])
        self.updates = int(state["updates"])
        self._last_action = np.asarray(state["last_action"], dtype=float)
        self.failures = FailureCounter(**state["failures"])
