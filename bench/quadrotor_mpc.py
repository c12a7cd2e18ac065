"""A 12-state, 4-input MPC for the sensitivity benchmarks: a quadrotor linearised at hover.

The model and input limits are those of ``rlmpc.toolkit.problems.quadrotor`` (zero-order hold, here
at 50 ms); this benchmark variant learns more than the weights.  θ: the model offset b (12), the
diagonals of the state and input weights (12 + 4) and back-offs of the soft velocity bounds (3):
31 parameters.  Soft bounds on velocity and tilt, hard input bounds, so closed loops from a
displaced hover have active input and (soft) state constraints.
"""

from __future__ import annotations

from typing import Any

import casadi as cs
import gymnasium as gym
import numpy as np

from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems.quadrotor import INPUT_LIMITS, hover_model

DT = 0.05
U_MAX = np.asarray(INPUT_LIMITS)
V_MAX = 1.0
TILT_MAX = 0.35


def quadrotor_mpc(horizon: int = 20, discount: float = 0.99) -> ParametricMPC:
    mpc = ParametricMPC(f"quadrotor_n{horizon}", nx=12, nu=4, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    a_mat, b_mat = hover_model(DT)
    b = mpc.learnable("b", np.zeros(12), lb=-1.0, ub=1.0)
    q = mpc.learnable("q", [10, 10, 10, 1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", [0.1, 1.0, 1.0, 1.0], lb=1e-3, ub=1e3)
    backoff = mpc.learnable("v_backoff", np.zeros(3), lb=-0.5, ub=0.5)
    mpc.discrete_dynamics(a_mat @ x + b_mat @ u + b, dt=DT)
    mpc.input_bounds(-U_MAX, U_MAX)
    v = x[3:6]
    mpc.state_constraint("v_upper", v + backoff, ub=V_MAX, soft=True, linear_penalty=10.0,
                         quadratic_penalty=1.0)
    mpc.state_constraint("v_lower", v - backoff, lb=-V_MAX, soft=True, linear_penalty=10.0,
                         quadratic_penalty=1.0)
    mpc.state_constraint("tilt", x[6:8], lb=-TILT_MAX, ub=TILT_MAX, soft=True, linear_penalty=10.0)
    mpc.stage_cost(cs.dot(q, x * x) + cs.dot(r, u * u))
    mpc.terminal_cost(10.0 * cs.dot(q, x * x))
    return mpc


def start_states(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Displaced hovers: positions ±2 m, velocities ±0.8 m/s, small tilts (inputs saturate)."""
    scale = np.array([2, 2, 2, 0.8, 0.8, 0.8, 0.2, 0.2, 0.3, 0.5, 0.5, 0.5])
    return [rng.uniform(-1, 1, 12) * scale for _ in range(n)]


class QuadrotorHover(gym.Env[np.ndarray, np.ndarray]):
    """The hover model as a plant, with a constant wind offset on the velocities (which the MPC's
    learnable b can absorb) and uniform noise; cost xᵀQx + uᵀRu with the MPC's initial weights."""

    def __init__(self, wind: float = 0.02, noise: float = 0.005) -> None:
        super().__init__()
        self.a, self.b = hover_model(DT)
        self.wind, self.noise = float(wind), float(noise)
        self.q = np.array([10, 10, 10, 1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.1])
        self.r = np.array([0.1, 1.0, 1.0, 1.0])
        self.action_space = gym.spaces.Box(-U_MAX, U_MAX, (4,), np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (12,), np.float64)
        self._x = np.zeros(12)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._x = start_states(1, self.np_random)[0] * 0.5
        return self._x.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        u = np.clip(np.asarray(action, dtype=float).reshape(4), -U_MAX, U_MAX)
        x = self._x
        cost = float(self.q @ (x * x) + self.r @ (u * u))
        drift = np.zeros(12)
        drift[3:6] = self.wind
        self._x = self.a @ x + self.b @ u + drift + self.np_random.uniform(-self.noise, self.noise, 12)
        return self._x.copy(), -cost, False, False, {"cost": cost}
