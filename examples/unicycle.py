"""A unicycle that drives to a reference around a soft circular obstacle: a plugin module.

Name it in ``RLMPC_PLUGINS`` (it ships as ``rlmpc.examples.unicycle``; or copy it next to your
work as a template for your own)::

    export RLMPC_PLUGINS=rlmpc.examples.unicycle
    rlmpc theta init unicycle --plant Unicycle --out theta.json
    rlmpc export --theta theta.json --target cortex-m4 --out mcu --check

State (x, y, heading), inputs (speed, turn rate), N = 20, sampling time 0.1 s.  The reference
(x_ref, y_ref, heading_ref) is a stage parameter p: the plant reports its schedule in
``info["p"]`` (waypoints that change at given steps).  A unicycle at rest has no stabilisable
linearisation (no sideways motion), so the exported solver has no fallback gain: after a
failed solve the firmware applies the previous plan, shifted.
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
START_BOX = ([-0.6, -0.6, -np.pi / 2], [0.0, 0.6, np.pi / 2])  # the plant's reset distribution
WAYPOINTS = ((1.0, 0.0, 0.0), (1.0, 0.8, np.pi / 2), (0.0, 0.8, np.pi))  # with SWITCH_EVERY


def unicycle_dynamics(x: cs.SX, u: cs.SX) -> cs.SX:
    """ẋ of a unicycle: speed u[0] along the heading x[2], turn rate u[1]."""
    return cs.vertcat(u[0] * cs.cos(x[2]), u[0] * cs.sin(x[2]), u[1])


def unicycle_mpc(horizon: int = 20, penalty: float = 1e3) -> ParametricMPC:
    """Drive to the reference p = (x_ref, y_ref, heading_ref); soft obstacle (penalty ``penalty``)."""
    mpc = ParametricMPC("unicycle", nx=3, nu=2, horizon=horizon, discount=1.0)
    x, u = mpc.x, mpc.u
    q = mpc.learnable("q", [1.0, 1.0, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", [0.1, 0.02], lb=1e-3, ub=1e2)
    ref = mpc.fixed("ref", [1.0, 0.0, 0.0])
    mpc.continuous_dynamics(unicycle_dynamics(x, u), dt=DT, integrator="rk4")
    err = x - ref
    mpc.stage_cost(cs.sum1(q * err**2) + cs.sum1(r * u**2))
    mpc.terminal_cost(10.0 * cs.sum1(q * err**2))
    mpc.input_bounds([-SPEED_LIMIT, -TURN_LIMIT], [SPEED_LIMIT, TURN_LIMIT])
    ox, oy, radius = OBSTACLE
    mpc.state_constraint("obstacle", (x[0] - ox) ** 2 + (x[1] - oy) ** 2, lb=radius**2, soft=True,
                         linear_penalty=penalty, quadratic_penalty=penalty)
    mpc.check_box(*START_BOX)
    return mpc


class UnicyclePlant(gym.Env[np.ndarray, np.ndarray]):
    """The unicycle (exact RK4 steps of the model); the reference follows WAYPOINTS, switching
    every ``switch_every`` steps, reported as ``info["p"]``."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,))
    action_space = gym.spaces.Box(np.array([-SPEED_LIMIT, -TURN_LIMIT], dtype=np.float32),
                                  np.array([SPEED_LIMIT, TURN_LIMIT], dtype=np.float32))

    def __init__(self, switch_every: int = 40) -> None:
        self.switch_every = int(switch_every)
        xs, us = cs.SX.sym("x", 3), cs.SX.sym("u", 2)
        k1 = unicycle_dynamics(xs, us)
        k2 = unicycle_dynamics(xs + DT / 2 * k1, us)
        k3 = unicycle_dynamics(xs + DT / 2 * k2, us)
        k4 = unicycle_dynamics(xs + DT * k3, us)
        self._f = cs.Function("unicycle_step", [xs, us], [xs + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)])
        self.x = np.zeros(3)
        self.t = 0

    def reference(self) -> np.ndarray:
        return np.array(WAYPOINTS[min(self.t // self.switch_every, len(WAYPOINTS) - 1)])

    def _info(self, **extra: Any) -> dict[str, Any]:
        return {"state": self.x.copy(), "p": self.reference(), **extra}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        if options and "state" in options:
            self.x = np.asarray(options["state"], dtype=float).copy()
        else:
            self.x = self.np_random.uniform(*START_BOX)
        return self.x.copy(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        u = np.clip(np.asarray(action, dtype=float), self.action_space.low, self.action_space.high)
        err = self.x - self.reference()
        cost = float(err @ err + 0.1 * u @ u)
        self.x = np.asarray(self._f(self.x, u), dtype=float).ravel()
        self.t += 1
        return self.x.copy(), -cost, False, False, self._info(cost=cost)


register_problem("unicycle", unicycle_mpc)
register_plant("Unicycle", UnicyclePlant)
