"""A nonlinear cart-pole MPC with learnable model (masses, length) and cost weights."""

from __future__ import annotations

from typing import Any

import casadi as cs
import numpy as np

from rlmpc.toolkit.problem import ParametricMPC

GRAVITY = 9.81
FORCE_LIMIT = 5.0
CART_LIMIT = 1.0


def cartpole_dynamics(x: cs.SX, u: cs.SX, m_cart: Any, m_pole: Any, length: Any,
                      friction: Any = 0.0) -> cs.SX:
    """ẋ for state (cart position, pole angle from upright, cart velocity, angular rate)."""
    v, omega = x[2], x[3]
    sin, cos = cs.sin(x[1]), cs.cos(x[1])
    force = u[0] - friction * v
    den = m_cart + m_pole - m_pole * cos * cos
    acc = (-m_pole * length * sin * omega**2 + m_pole * GRAVITY * cos * sin + force) / den
    alpha = (-m_pole * length * cos * sin * omega**2 + force * cos
             + (m_cart + m_pole) * GRAVITY * sin) / (length * den)
    return cs.vertcat(v, omega, acc, alpha)


def cartpole_mpc(horizon: int = 20, dt: float = 0.05, discount: float = 0.99) -> ParametricMPC:
    """Stabilise the pole upright; |F| ≤ 5 N, soft |cart position| ≤ 1 m."""
    mpc = ParametricMPC("cartpole", nx=4, nu=1, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    m_cart = mpc.learnable("m_cart", 1.0, lb=0.1, ub=10.0)
    m_pole = mpc.learnable("m_pole", 0.1, lb=0.01, ub=2.0)
    length = mpc.learnable("length", 0.8, lb=0.1, ub=3.0)
    q = mpc.learnable("q", [1.0, 5.0, 0.1, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", 0.1, lb=1e-3, ub=1e2)
    x_ref = mpc.fixed("x_ref", np.zeros(4))

    mpc.continuous_dynamics(cartpole_dynamics(x, u, m_cart, m_pole, length), dt=dt,
                            integrator="rk4", steps=1)
    err = x - x_ref
    mpc.stage_cost(cs.sum1(q * err**2) + r * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * cs.sum1(q * err**2))
    mpc.input_bounds(-FORCE_LIMIT, FORCE_LIMIT)
    mpc.state_constraint("cart_position", x[0], lb=-CART_LIMIT, ub=CART_LIMIT, soft=True,
                         linear_penalty=100.0, quadratic_penalty=100.0)
    return mpc
