"""The cart-pole MPC linearised upright: a linear test problem for the MCU solver.

Same cost, bounds and soft cart limit as :func:`rlmpc.toolkit.problems.cartpole_mpc`,
with the RK4-discretised dynamics replaced by their Jacobians at the upright
equilibrium (x = 0, u = 0) for the nominal masses and length (computed with
CasADi from the nonlinear model; no hand-written model).
"""

from __future__ import annotations

import casadi as cs
import numpy as np

from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems.cartpole import CART_LIMIT, FORCE_LIMIT, cartpole_mpc


def upright_linearisation(horizon: int = 20, dt: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the discretised nonlinear cart-pole at the origin, nominal θ."""
    fns = cartpole_mpc(horizon=horizon, dt=dt).build()
    x, u = fns.dynamics.sx_in(0), fns.dynamics.sx_in(1)
    th, p = fns.theta.sym(), fns.params.sym()
    x_next = fns.dynamics(x, u, th, p)
    jac = cs.Function("upright_jacobians", [x, u, th, p], [cs.jacobian(x_next, x), cs.jacobian(x_next, u)])
    a, b = jac(np.zeros(fns.nx), np.zeros(fns.nu), fns.theta.default(), fns.params.default())
    return np.asarray(a), np.asarray(b)


def linear_cartpole_mpc(horizon: int = 20, dt: float = 0.05, discount: float = 0.99) -> ParametricMPC:
    """Linear cart-pole MPC; θ = cost weights (q, r) as in the nonlinear problem."""
    a_mat, b_mat = upright_linearisation(horizon, dt)
    mpc = ParametricMPC("linear_cartpole", nx=4, nu=1, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    q = mpc.learnable("q", [1.0, 5.0, 0.1, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", 0.1, lb=1e-3, ub=1e2)
    mpc.discrete_dynamics(cs.DM(a_mat) @ x + cs.DM(b_mat) @ u, dt=dt)
    mpc.stage_cost(cs.sum1(q * x**2) + r * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * cs.sum1(q * x**2))
    mpc.input_bounds(-FORCE_LIMIT, FORCE_LIMIT)
    mpc.state_constraint("cart_position", x[0], lb=-CART_LIMIT, ub=CART_LIMIT, soft=True,
                         linear_penalty=100.0, quadratic_penalty=100.0)
    return mpc
