"""An MPC for gymnasium's Pendulum-v1, with learnable mass, length and cost weights."""

from __future__ import annotations

import casadi as cs

from rlmpc.toolkit.problem import ParametricMPC

GRAVITY = 10.0  # Pendulum-v1's g
DT = 0.05
MAX_TORQUE = 2.0
MAX_SPEED = 8.0


def pendulum_mpc(horizon: int = 30, discount: float = 0.99) -> ParametricMPC:
    """State (angle from upright, angular rate); the model is Pendulum-v1's semi-implicit
    Euler step (without its speed clipping, which becomes a soft constraint).  The cost
    uses 2(1 − cos θ) ≈ θ² so that angles need no wrapping."""
    mpc = ParametricMPC("pendulum", nx=2, nu=1, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    mass = mpc.learnable("mass", 1.3, lb=0.2, ub=5.0)  # the true Pendulum-v1 mass is 1.0
    length = mpc.learnable("length", 1.0, lb=0.2, ub=5.0)
    w_angle = mpc.learnable("w_angle", 1.0, lb=1e-3, ub=1e2)
    w_rate = mpc.learnable("w_rate", 0.1, lb=1e-4, ub=1e2)
    w_torque = mpc.learnable("w_torque", 0.001, lb=1e-5, ub=1e1)

    rate = x[1] + (3 * GRAVITY / (2 * length) * cs.sin(x[0]) + 3.0 / (mass * length**2) * u[0]) * DT
    mpc.discrete_dynamics(cs.vertcat(x[0] + rate * DT, rate), dt=DT)
    mpc.input_bounds(-MAX_TORQUE, MAX_TORQUE)
    mpc.state_constraint("speed", x[1], lb=-MAX_SPEED, ub=MAX_SPEED, soft=True,
                         linear_penalty=10.0, quadratic_penalty=10.0)
    angle_cost = 2.0 * (1.0 - cs.cos(x[0]))
    mpc.stage_cost(w_angle * angle_cost + w_rate * x[1] ** 2 + w_torque * u[0] ** 2)
    mpc.terminal_cost(10.0 * (w_angle * angle_cost + w_rate * x[1] ** 2))
    return mpc
