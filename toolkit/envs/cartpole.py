"""A cart-pole plant with a continuous force input, integrated with RK4."""

from __future__ import annotations

from typing import Any

import casadi as cs
import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlmpc.toolkit.envs.checks import as_int, as_number, as_vector
from rlmpc.toolkit.problems.cartpole import CART_LIMIT, FORCE_LIMIT, cartpole_dynamics

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

    The continuous dynamics are `rlmpc.toolkit.problems.cartpole.cartpole_dynamics`, integrated
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
    init_half_width
        Half-widths of the uniform draw of the initial state around x_eq (default (0.2, 0.2, 0.1, 0.1)).
    """

    nx = 4
    nu = 1

    name = "CartPole"

    def __init__(self, m_cart: float = 1.0, m_pole: float = 0.1, length: float = 0.8,
                 friction: float = 0.0, dt: float = 0.05, substeps: int = 4,
                 init_half_width: ArrayLike | None = None) -> None:
        super().__init__()
        name = self.name
        self.m_cart = as_number(name, "m_cart", m_cart, positive=True)
        self.m_pole = as_number(name, "m_pole", m_pole, positive=True)
        self.length = as_number(name, "length", length, positive=True)
        self.friction = as_number(name, "friction", friction, non_negative=True)
        self.dt = as_number(name, "dt", dt, positive=True)
        self.substeps = as_int(name, "substeps", substeps)
        self.x_eq = np.zeros(self.nx)
        """The upright equilibrium the cost is measured from."""
        self.u_eq = 0.0
        """The force that holds it."""
        self.init_half_width = (INIT_HALF_WIDTH.copy() if init_half_width is None
                                else as_vector(name, "init_half_width", init_half_width, self.nx))
        if np.any(self.init_half_width < 0.0):
            raise ValueError(f"{name}: expected init_half_width ≥ 0 per state, got {init_half_width!r}")

        x = cs.SX.sym("x", self.nx)
        u = cs.SX.sym("u", self.nu)
        self.dynamics = cs.Function(f"{self.name.lower()}_ode", [x, u], [self._ode(x, u)], ["x", "u"],
                                    ["xdot"])
        """Continuous dynamics ẋ = f(x, u) as a CasADi function."""
        h = self.dt / self.substeps
        xk = x
        for _ in range(self.substeps):
            k1 = self.dynamics(xk, u)
            k2 = self.dynamics(xk + h / 2 * k1, u)
            k3 = self.dynamics(xk + h / 2 * k2, u)
            k4 = self.dynamics(xk + h * k3, u)
            xk = xk + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        self.discrete_dynamics = cs.Function(f"{self.name.lower()}_rk4", [x, u], [xk], ["x", "u"],
                                             ["x_next"])
        """One sampling interval x⁺ = F(x, u) (RK4, ``substeps`` steps) as a CasADi function."""

        self.action_space = gym.spaces.Box(-FORCE_LIMIT, FORCE_LIMIT, (self.nu,), np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.nx,), np.float64)
        self._x = np.zeros(self.nx)

    def _ode(self, x: cs.SX, u: cs.SX) -> cs.SX:
        """ẋ = f(x, u) of this plant (a subclass may change the physics)."""
        return cartpole_dynamics(x, u, self.m_cart, self.m_pole, self.length, self.friction)

    @property
    def state(self) -> NDArray[np.float64]:
        """A copy of the current true state."""
        return self._x.copy()

    @staticmethod
    def violation(x: ArrayLike) -> float:
        """max(0, |cart position| − CART_LIMIT)."""
        return max(0.0, abs(float(np.asarray(x, dtype=np.float64)[0])) - CART_LIMIT)

    def stage_cost(self, x: ArrayLike, u: float) -> float:
        """(x − x_eq)ᵀQ(x − x_eq) + R (u − u_eq)² + 100·max(0, |x₀| − CART_LIMIT)."""
        x = np.asarray(x, dtype=np.float64)
        return float(STATE_WEIGHTS @ (x - self.x_eq) ** 2 + INPUT_WEIGHT * (u - self.u_eq) ** 2
                     + CART_VIOLATION_WEIGHT * self.violation(x))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float64], dict[str, Any]]:
        """x_eq plus a uniform draw in ±init_half_width, or ``options["state"]`` if given."""
        super().reset(seed=seed)
        state = None if options is None else options.get("state")
        if state is None:
            self._x = self.x_eq + self.np_random.uniform(-self.init_half_width, self.init_half_width)
        else:
            self._x = as_vector(self.name, "a state", state, self.nx)
        return self._x.copy(), {}

    def step(
        self, action: ArrayLike
    ) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        """Apply the clipped force for ``dt`` seconds."""
        u = float(np.clip(as_vector(self.name, "an action", action, self.nu)[0],
                          -FORCE_LIMIT, FORCE_LIMIT))
        x = self._x
        cost = self.stage_cost(x, u)
        violation = self.violation(x)
        x_next = np.asarray(self.discrete_dynamics(x, u), dtype=np.float64).reshape(self.nx)
        self._x = x_next
        terminated = bool(abs(x_next[1] - self.x_eq[1]) > FALL_ANGLE)
        info = {"cost": cost, "violation": violation, "force": u}
        return x_next.copy(), -cost, terminated, False, info
