"""A cart-pole balanced on an incline: holding it needs a mass-dependent force.

On a track inclined by ``slope`` (rad, rising towards +x) the upright equilibrium is the
pole vertical in the world, angle θ = −slope from the track normal, held by the force
F_eq = (m_cart + m_pole)·g·sin(slope).  A wrong pole mass in the model therefore gives a
wrong feed-forward force and, without integral action, a steady-state offset: the model
error costs on every step, not only during transients (as on the level track of
:mod:`rlmpc.toolkit.problems.cartpole`, where a 30 % pole-mass error changes the closed-loop
cost by < 1 %).

The stage cost is the one of the plant :class:`rlmpc.toolkit.envs.cartpole_incline.CartPoleIncline`
written around the *model's* equilibrium: qᵀ(x − x_eq)² + r (u − F_eq)² with
x_eq = (0, −slope, 0, 0), plus the soft cart-position constraint |x₀| ≤ 1 m with the same
exact penalty 100·|violation| as the plant.
"""

from __future__ import annotations

from typing import Any

import casadi as cs
import numpy as np

from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems.cartpole import CART_LIMIT, FORCE_LIMIT, GRAVITY

DEFAULT_SLOPE = 0.12
"""Default track inclination [rad] (6.9°)."""


def incline_dynamics(x: Any, u: Any, m_cart: Any, m_pole: Any, length: Any,
                     slope: Any, friction: Any = 0.0) -> Any:
    """ẋ of a point-mass pole on a cart on an inclined track.

    State (cart position along the track, pole angle from the track normal, cart
    velocity, angular rate), the same conventions as
    :func:`rlmpc.toolkit.problems.cartpole.cartpole_dynamics`, which this reduces to for
    ``slope = 0``.  From the Lagrangian with gravity tilted by ``slope``:
    (M+m)ẍ − m l cosθ θ̈ + m l sinθ θ̇² = F − (M+m) g sin(slope),
    l θ̈ = cosθ ẍ + g sin(θ + slope).
    """
    v, omega = x[2], x[3]
    sin, cos = cs.sin(x[1]), cs.cos(x[1])
    tilt = cs.sin(x[1] + slope)
    force = u[0] - friction * v - (m_cart + m_pole) * GRAVITY * np.sin(slope)
    den = m_cart + m_pole * sin * sin
    acc = (force - m_pole * length * sin * omega**2 + m_pole * GRAVITY * cos * tilt) / den
    alpha = (cos * acc + GRAVITY * tilt) / length
    return cs.vertcat(v, omega, acc, alpha)


def equilibrium_force(m_cart: Any, m_pole: Any, slope: float) -> Any:
    """The force that holds the cart-pole at rest on the incline: (M+m)·g·sin(slope)."""
    return (m_cart + m_pole) * GRAVITY * np.sin(slope)


LEARNABLE = ("V0", "m_cart", "m_pole", "length", "q", "r")


def cartpole_incline_mpc(horizon: int = 20, dt: float = 0.05, discount: float = 0.99,
                         slope: float = DEFAULT_SLOPE, m_cart: float = 1.0,
                         m_pole: float = 0.5, length: float = 0.8,
                         learn: list[str] | tuple[str, ...] = LEARNABLE) -> ParametricMPC:
    """Balance the pole on the incline at cart position 0; |F| ≤ 5 N, soft |x₀| ≤ 1 m.

    ``m_cart``, ``m_pole``, ``length`` are the initial values of the model parameters (the
    designer's belief); q and r start at the plant's cost weights.  ``learn`` names the
    parameters that are learnable (θ); the others are constants at their initial value.
    ``V0`` is a learnable constant cost (it shifts V and Q alike, not the policy).
    """
    if not -0.5 <= slope <= 0.5:
        raise ValueError(f"cartpole_incline: slope must lie in [-0.5, 0.5] rad, got {slope}")
    if isinstance(learn, str):
        raise ValueError(f"cartpole_incline: learn: expected a list of names, e.g. [{learn!r}], "
                         f"got the string {learn!r}")
    unknown = sorted(set(learn) - set(LEARNABLE))
    if unknown or not learn:
        raise ValueError(f"cartpole_incline: learn: expected a non-empty subset of "
                         f"{list(LEARNABLE)}, got {list(learn)}")
    mpc = ParametricMPC("cartpole_incline", nx=4, nu=1, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u

    def param(name: str, init: Any, lb: float, ub: float) -> Any:
        if name in learn:
            return mpc.learnable(name, init, lb=lb, ub=ub)
        return cs.DM(init)

    if "V0" in learn:  # a learnable constant in V and Q (Gros & Zanon): no effect on π
        mpc.initial_cost(mpc.learnable("V0", 0.0, lb=-1e3, ub=1e3))
    mc = param("m_cart", m_cart, 0.1, 10.0)
    mp = param("m_pole", m_pole, 0.01, 5.0)
    ln = param("length", length, 0.1, 3.0)
    q = param("q", [1.0, 5.0, 0.1, 0.1], 1e-3, 1e3)
    r = param("r", 0.1, 1e-3, 1e2)

    mpc.continuous_dynamics(incline_dynamics(x, u, mc, mp, ln, slope), dt=dt,
                            integrator="rk4", steps=1)
    err = x - cs.DM([0.0, -slope, 0.0, 0.0])
    du = u[0] - equilibrium_force(mc, mp, slope)
    mpc.stage_cost(cs.sum1(q * err**2) + r * du**2)
    mpc.terminal_cost(10.0 * cs.sum1(q * err**2))
    mpc.input_bounds(-FORCE_LIMIT, FORCE_LIMIT)
    mpc.state_constraint("cart_position", x[0], lb=-CART_LIMIT, ub=CART_LIMIT, soft=True,
                         linear_penalty=100.0, quadratic_penalty=100.0)
    return mpc
