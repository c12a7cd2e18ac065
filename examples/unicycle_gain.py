"""A unicycle whose actuators are not what the model says: a plugin module for learning θ in a
nonlinear model through a real-time-iteration device (docs/benchmarks.md, session 9).

    export RLMPC_PLUGINS=rlmpc.examples.unicycle_gain
    rlmpc train examples/unicycle_gain_qlearning.toml --device mps2-an386

State (x, y, heading), inputs (speed, turn rate), N = 20, sampling time 0.1 s; drive to the goal
(1, 0, 0) around a soft circular obstacle.  The model's speed and turn gains (θ, with the state
weights) start at 1; the plant's are 0.7 and 1.3 (a worn drive, a stronger steering servo).
"""

from __future__ import annotations

from typing import Any

import casadi as cs
import gymnasium as gym
import numpy as np

from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.registry import register_plant, register_problem

DT = 0.1
SPEED_LIMIT = 1.0
TURN_LIMIT = 2.0
OBSTACLE = (0.5, 0.0, 0.2)  # centre x, y and radius (m)
GOAL = (1.0, 0.0, 0.0)
START_BOX = ([-0.6, -0.6, -np.pi / 2], [0.0, 0.6, np.pi / 2])
TRUE_GAINS = (0.7, 1.3)


def dynamics(x: Any, u: Any, gains: Any) -> Any:
    """ẋ of a unicycle whose speed and turn rate are the inputs times ``gains``."""
    return cs.vertcat(gains[0] * u[0] * cs.cos(x[2]), gains[0] * u[0] * cs.sin(x[2]), gains[1] * u[1])


def unicycle_gain_mpc(horizon: int = 20) -> ParametricMPC:
    mpc = ParametricMPC("unicycle_gain", nx=3, nu=2, horizon=horizon, discount=1.0)
    x, u = mpc.x, mpc.u
    gains = mpc.learnable("gains", [1.0, 1.0], lb=0.3, ub=3.0)
    q = mpc.learnable("q", [1.0, 1.0, 0.1], lb=1e-3, ub=1e3)
    mpc.continuous_dynamics(dynamics(x, u, gains), dt=DT, integrator="rk4")
    err = x - cs.DM(GOAL)
    mpc.stage_cost(cs.sum1(q * err**2) + 0.1 * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * cs.sum1(q * err**2))
    mpc.input_bounds([-SPEED_LIMIT, -TURN_LIMIT], [SPEED_LIMIT, TURN_LIMIT])
    ox, oy, radius = OBSTACLE
    mpc.state_constraint("obstacle", (x[0] - ox) ** 2 + (x[1] - oy) ** 2, lb=radius**2, soft=True,
                         linear_penalty=1e3, quadratic_penalty=1e3)
    mpc.check_box(*START_BOX)
    return mpc


class UnicycleGainPlant(gym.Env[np.ndarray, np.ndarray]):
    """The unicycle with the true gains (exact RK4 steps); cost: squared distance to the goal,
    0.1 |u|², 100 per m² inside the obstacle."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,))
    action_space = gym.spaces.Box(np.array([-SPEED_LIMIT, -TURN_LIMIT], dtype=np.float32),
                                  np.array([SPEED_LIMIT, TURN_LIMIT], dtype=np.float32))

    def __init__(self) -> None:
        xs, us = cs.SX.sym("x", 3), cs.SX.sym("u", 2)
        g = cs.DM(TRUE_GAINS)
        k1 = dynamics(xs, us, g)
        k2 = dynamics(xs + DT / 2 * k1, us, g)
        k3 = dynamics(xs + DT / 2 * k2, us, g)
        k4 = dynamics(xs + DT * k3, us, g)
        self._f = cs.Function("unicycle_gain_step", [xs, us], [xs + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)])
        self.x = np.zeros(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "state" in options:
            self.x = np.asarray(options["state"], dtype=float).copy()
        else:
            self.x = self.np_random.uniform(*START_BOX)
        return self.x.copy(), {"state": self.x.copy()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        u = np.clip(np.asarray(action, dtype=float), self.action_space.low, self.action_space.high)
        err = self.x - np.array(GOAL)
        ox, oy, radius = OBSTACLE
        inside = max(0.0, radius**2 - (self.x[0] - ox) ** 2 - (self.x[1] - oy) ** 2)
        cost = float(err @ err + 0.1 * u @ u + 100.0 * inside)
        self.x = np.asarray(self._f(self.x, u), dtype=float).ravel()
        return self.x.copy(), -cost, False, False, {"state": self.x.copy(), "cost": cost}


register_problem("unicycle_gain", unicycle_gain_mpc)
register_plant("UnicycleGain", UnicycleGainPlant)
