"""A cart-pole plant with a continuous force input, integrated with RK4."""

from __future__ import annotations

from typing import Any

import casadi as cs
import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from toolkit.envs.checks import as_vector
from toolkit.problems.cartpole import CART_LIMIT, FORCE_LIMIT, cartpole_dynamics

STATE_WEIGHTS = np.array([1.0, 5.0, 0.1, 0.1])
"""Diagonal of the quadratic state weight Q in the stage cost xᵀQx."""
INPUT_WEIGHT = 0.1
"""Weight R of the quadratic input cost R u²."""
CART_VIOLATION_WEIGHT = 100.0
"""Weight of the exact penalty on max(0, |cart position| − CART_LIMIT)."""
INIT_HALF_WIDTH = np.array([0.2, 0.2, 0.1, 0.1])
"""The initial state is drawn uniformly from [−w, w] with these half-widths w."""
FALL_ANGLE = np.pi / 2
"""The episode terminates once |pole angle| exceeds this (the pole fell)."""


class CartPole(gym.Env[NDArray[np.float64], NDArray[np.float64]]):
    """Cart-pole with state (cart position, pole angle from upright, cart velocity, rate).

    The continuous dynamics are `toolkit.problems.cartpole.cartpole_dynamics`, integrated
    over ``dt`` with ``substeps`` RK4 steps. The force is clipped to ±FORCE_LIMIT. The
    stage cost ``xᵀQx + R u² + 100·max(0, |x₀| − CART_LIMIT)`` of the state *before* the
    step and the applied (clipped) force is returned as ``info["cost"]``; the reward is
    its negative. Terminates when |angle| > π/2; never truncates (wrap with TimeLimit).

    Parameters
    ----------
    m_cart, m_pole, length, friction
        Physical parameters [kg, kg, m, N·s/m] passed to ``cartpole_dynamics``.
    dt
        Sampling time [s].
    substeps
        Number of RK4 steps per sampling interval.
    """

    nx = 4
    nu = 1

    def __init__(self, m_cart: float = 1.0, m_pole: float = 0.1, length: float = 0.8,
                 friction: float = 0.0, dt: float = 0.05, substeps: int = 4) -> None:
        super().__init__()
        if dt <= 0.0 or substeps < 1:
            raise ValueError("CartPole: need dt > 0 and substeps ≥ 1")
        self.m_cart, self.m_pole = float(m_cart), float(m_pole)
        self.length, self.friction = float(length), float(friction)
        self.dt, self.substeps = float(dt), int(substeps)

        x = cs.SX.sym("x", self.nx)
        u = cs.SX.sym("u", self.nu)
        xdot = cartpole_dynamics(x, u, self.m_cart, self.m_pole, self.length, self.friction)
        self.dynamics = cs.Function("cartpole_ode", [x, u], [xdot], ["x", "u"], ["xdot"])
        """Continuous dynamics ẋ = f(x, u) as a CasADi function."""
        h = self.dt / self.substeps
        xk = x
        for _ in range(self.substeps):
            k1 = self.dynamics(xk, u)
            k2 = self.dynamics(xk + h / 2 * k1, u)
            k3 = self.dynamics(xk + h / 2 * k2, u)
            k4 = self.dynamics(xk + h * k3, u)
            xk = xk + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        self.discrete_dynamics = cs.Function("cartpole_rk4", [x, u], [xk], ["x", "u"], ["x_next"])
        """One sampling interval x⁺ = F(x, u) (RK4, ``substeps`` steps) as a CasADi function."""

        self.action_space = gym.spaces.Box(-FORCE_LIMIT, FORCE_LIMIT, (self.nu,), np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.nx,), np.float64)
        self._x = np.zeros(self.nx)

    @property
    def state(self) -> NDArray[np.float64]:
        """A copy of the current true state."""
        return self._x.copy()

    @staticmethod
    def violation(x: ArrayLike) -> float:
        """max(0, |cart position| − CART_LIMIT)."""
        return max(0.0, abs(float(np.asarray(x, dtype=np.float64)[0])) - CART_LIMIT)

    @staticmethod
    def stage_cost(x: ArrayLike, u: float) -> float:
        """xᵀQx + R u² + 100·max(0, |x₀| − CART_LIMIT)."""
        x = np.asarray(x, dtype=np.float64)
        return float(STATE_WEIGHTS @ x**2 + INPUT_WEIGHT * u**2
                     + CART_VIOLATION_WEIGHT * CartPole.violation(x))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float64], dict[str, Any]]:
        """Uniform initial state in ±INIT_HALF_WIDTH, or ``options["state"]`` if given."""
        super().reset(seed=seed)
        state = None if options is None else options.get("state")
        if state is None:
            self._x = self.np_random.uniform(-INIT_HALF_WIDTH, INIT_HALF_WIDTH)
        else:
            self._x = as_vector("CartPole", "a state", state, self.nx)
        return self._x.copy(), {}

    def step(
        self, action: ArrayLike
    ) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        """Apply the clipped force for ``dt`` seconds."""
        u = float(np.clip(as_vector("CartPole", "an action", action, self.nu)[0],
                          -FORCE_LIMIT, FORCE_LIMIT))
        x = self._x
        cost = self.stage_cost(x, u)
        violation = self.violation(x)
        x_next = np.asarray(self.discrete_dynamics(x, u), dtype=np.float64).reshape(self.nx)
        self._x = x_next
        terminated = bool(abs(x_next[1]) > FALL_ANGLE)
        info = {"cost": cost, "violation": violation, "force": u}
        return x_next.copy(), -cost, terminated, False, info
