"""The linear plant of Gros & Zanon (2020), as in the `mpcrl` Q-learning example."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlmpc.toolkit.envs.checks import as_vector
from rlmpc.toolkit.problems.lti import A_TRUE, B_TRUE, U_BOUND, VIOLATION_WEIGHT, X_LB, X_UB

NOISE_BOUNDS = (-0.1, 0.0)
"""Bounds of the uniform additive disturbance e on the first state."""
X0_DEFAULT = np.array([0.0, 0.15])
"""Initial state after `reset` unless overridden."""


class LtiGrosZanon(gym.Env[NDArray[np.float64], NDArray[np.float64]]):
    """x⁺ = A x + B a + [e; 0] with e ~ U(−0.1, 0).

    The stage cost ``0.5 (xᵀx + 0.5 a² + w·max(0, x_lb − x) + w·max(0, x − x_ub))`` is
    evaluated at the state *before* the step and returned as ``info["cost"]``; the
    reward is its negative. ``info["violation"]`` is the summed bound violation of that
    state. Actions are not clipped (the action space holds the MPC's input bounds).
    Episodes never end on their own: wrap with ``gymnasium.wrappers.TimeLimit``.

    Parameters
    ----------
    x0
        Initial state on reset (default ``[0, 0.15]``); ``reset(options={"state": x})``
        overrides it for one episode.
    noise
        If False, the disturbance e is zero.
    """

    nx = 2
    nu = 1

    def __init__(self, x0: ArrayLike | None = None, noise: bool = True) -> None:
        super().__init__()
        self.A = np.array(A_TRUE, dtype=np.float64)
        self.B = np.array(B_TRUE, dtype=np.float64).reshape(self.nx)
        self.x_lb = np.array(X_LB, dtype=np.float64)
        self.x_ub = np.array(X_UB, dtype=np.float64)
        self.violation_weight = float(VIOLATION_WEIGHT)
        self.x0 = self._as_state(X0_DEFAULT if x0 is None else x0)
        self.noise = bool(noise)
        self.action_space = gym.spaces.Box(-U_BOUND, U_BOUND, (self.nu,), np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.nx,), np.float64)
        self._x = self.x0.copy()

    @property
    def state(self) -> NDArray[np.float64]:
        """A copy of the current true state."""
        return self._x.copy()

    def _as_state(self, x: ArrayLike) -> NDArray[np.float64]:
        return as_vector("LtiGrosZanon", "a state", x, self.nx)

    def violation(self, x: ArrayLike) -> float:
        """Summed violation of the state bounds X_LB ≤ x ≤ X_UB."""
        x = np.asarray(x, dtype=np.float64)
        return float(np.sum(np.maximum(0.0, self.x_lb - x) + np.maximum(0.0, x - self.x_ub)))

    def stage_cost(self, x: ArrayLike, a: float) -> float:
        """0.5 (xᵀx + 0.5 a² + w·max(0, x_lb − x) + w·max(0, x − x_ub))."""
        x = np.asarray(x, dtype=np.float64)
        return 0.5 * float(x @ x + 0.5 * a**2 + self.violation_weight * self.violation(x))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float64], dict[str, Any]]:
        """Reset to ``x0`` (or ``options["state"]``); ``seed`` seeds the disturbance."""
        super().reset(seed=seed)
        state = None if options is None else options.get("state")
        self._x = self.x0.copy() if state is None else self._as_state(state)
        return self._x.copy(), {}

    def step(
        self, action: ArrayLike
    ) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (shape (1,) or scalar); cost is that of the pre-step state."""
        a = float(as_vector("LtiGrosZanon", "an action", action, self.nu)[0])
        x = self._x
        cost = self.stage_cost(x, a)
        violation = self.violation(x)
        e = float(self.np_random.uniform(*NOISE_BOUNDS)) if self.noise else 0.0
        x_next = self.A @ x + self.B * a
        x_next[0] += e
        self._x = x_next
        info = {"cost": cost, "violation": violation, "noise": e}
        return x_next.copy(), -cost, False, False, info
