"""A cart-pole plant on an inclined track (see :mod:`rlmpc.toolkit.problems.cartpole_incline`)."""

from __future__ import annotations

import casadi as cs
import numpy as np

from rlmpc.toolkit.envs.cartpole import INIT_HALF_WIDTH, CartPole
from rlmpc.toolkit.envs.checks import as_number
from rlmpc.toolkit.problems.cartpole_incline import DEFAULT_SLOPE, equilibrium_force, incline_dynamics


class CartPoleIncline(CartPole):
    """Cart-pole on a track inclined by ``slope`` rad (rising towards +x).

    State and input as :class:`rlmpc.toolkit.envs.cartpole.CartPole`; the pole angle is measured
    from the track normal, so the upright equilibrium is x_eq = (0, −slope, 0, 0), held by
    the force u_eq = (m_cart + m_pole)·g·sin(slope) of the *true* masses.  Stage cost
    ``Σ Q_i (x − x_eq)_i² + R (u − u_eq)² + 100·max(0, |x₀| − 1)`` (the weights of
    ``CartPole``) of the state before the step and the applied (clipped) force, as
    ``info["cost"]``; the reward is its negative.  The initial state is x_eq plus a
    uniform draw in ±``init_scale``·(0.2, 0.2, 0.1, 0.1).  Terminates when the pole is
    more than π/2 from the vertical.
    """

    name = "CartPoleIncline"

    def __init__(self, m_cart: float = 1.0, m_pole: float = 1.3, length: float = 0.8,
                 slope: float = DEFAULT_SLOPE, friction: float = 0.0, dt: float = 0.05,
                 substeps: int = 4, init_scale: float = 1.0) -> None:
        init_scale = as_number(self.name, "init_scale", init_scale, non_negative=True)
        self.slope = as_number(self.name, "slope", slope)  # before CartPole builds the dynamics with _ode
        super().__init__(m_cart, m_pole, length, friction, dt, substeps)
        self.init_scale = float(init_scale)
        self.init_half_width = self.init_scale * INIT_HALF_WIDTH
        self.x_eq = np.array([0.0, -self.slope, 0.0, 0.0])
        self.u_eq = float(equilibrium_force(self.m_cart, self.m_pole, self.slope))
        self._x = self.x_eq.copy()

    def _ode(self, x: cs.SX, u: cs.SX) -> cs.SX:
        return incline_dynamics(x, u, self.m_cart, self.m_pole, self.length, self.slope, self.friction)
