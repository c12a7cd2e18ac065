"""The mass chain of :mod:`rlmpc.toolkit.problems.mass_chain` as a plant (exact discretisation)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from rlmpc.toolkit.envs.checks import is_number
from rlmpc.toolkit.problems.mass_chain import FORCE_LIMIT, POSITION_LIMIT, chain_model

VIOLATION_WEIGHT = 100.0


class MassChain(gym.Env[NDArray[np.float64], NDArray[np.float64]]):
    """x⁺ = A x + B a of the chain (``nx`` states, ``nu`` forces, sampling time ``dt``).

    Resets draw positions in ±``start`` and velocities in ±``start``/2 (``reset(options={"state": x})``
    sets one).  ``info["cost"]``: xᵀx + 0.1 aᵀa + VIOLATION_WEIGHT × the position-box violation of
    the state before the step; the reward is its negative.  Actions are clipped to the force box.
    """

    PARAMS = ("nx", "nu", "dt", "start")

    def __init__(self, nx: int = 12, nu: int = 4, dt: float = 0.1, start: float = 1.0) -> None:
        super().__init__()
        for key, count in (("nx", nx), ("nu", nu)):
            if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
                raise ValueError(f"MassChain: expected a positive integer {key}, got {count!r}")
        for key, number in (("dt", dt), ("start", start)):
            if not is_number(number) or not float(number) > 0:
                raise ValueError(f"MassChain: expected a positive number {key}, got {number!r}")
        self.nx, self.nu = int(nx), int(nu)
        self.A, self.B = chain_model(self.nx, self.nu, float(dt))
        self.start = float(start)
        self.action_space = gym.spaces.Box(-FORCE_LIMIT, FORCE_LIMIT, (self.nu,), np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.nx,), np.float64)
        self._x = np.zeros(self.nx)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float64], dict[str, Any]]:
        super().reset(seed=seed)
        if options and "state" in options:
            self._x = np.asarray(options["state"], dtype=float).copy()
        else:
            n = self.nx // 2
            half = np.r_[[self.start] * n, [self.start / 2] * n]
            self._x = self.np_random.uniform(-half, half)
        return self._x.copy(), {"state": self._x.copy()}

    def step(self, action: NDArray[np.float64]) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=float).ravel(), -FORCE_LIMIT, FORCE_LIMIT)
        pos = self._x[: self.nx // 2]
        violation = float(np.sum(np.maximum(np.abs(pos) - POSITION_LIMIT, 0.0)))
        cost = float(self._x @ self._x + 0.1 * a @ a + VIOLATION_WEIGHT * violation)
        self._x = self.A @ self._x + self.B @ a
        return self._x.copy(), -cost, False, False, {"state": self._x.copy(), "cost": cost, "violation": violation}
