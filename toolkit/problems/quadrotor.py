"""A 12-state/4-input quadrotor linearised at hover: the test problem of the structured MCU path.

States (position p, velocity v, roll/pitch/yaw angles η, body rates ω), inputs (collective
acceleration about hover, angular accelerations), all about hover; small-angle dynamics
ṗ = v, v̇ = (g η_pitch, −g η_roll, a_z), η̇ = ω, ω̇ = α, discretised exactly (zero-order hold)
at ``dt``.  Quadratic tracking cost of the origin, a soft position box and an input box.
"""

from __future__ import annotations

import casadi as cs
import numpy as np
import scipy.linalg

from rlmpc.toolkit.problem import ParametricMPC

GRAVITY = 9.81
POSITION_LIMIT = 2.0  # soft box on each position coordinate
INPUT_LIMITS = (2.0, 3.0, 3.0, 1.0)  # |a_z| (m/s²), |α| (rad/s²): hard starts saturate them


def hover_model(dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the hover linearisation, zero-order hold at ``dt``."""
    ac, bc = np.zeros((12, 12)), np.zeros((12, 4))
    ac[0:3, 3:6] = np.eye(3)
    ac[3, 7], ac[4, 6] = GRAVITY, -GRAVITY
    ac[6:9, 9:12] = np.eye(3)
    bc[5, 0] = 1.0
    bc[9:12, 1:4] = np.eye(3)
    m = scipy.linalg.expm(np.block([[ac, bc], [np.zeros((4, 16))]]) * dt)
    return m[:12, :12], m[:12, 12:]


def quadrotor_hover_mpc(horizon: int = 20, dt: float = 0.02, discount: float = 1.0) -> ParametricMPC:
    """Hover MPC; θ = diagonal state and input weights."""
    a_mat, b_mat = hover_model(dt)
    mpc = ParametricMPC("quadrotor_hover", nx=12, nu=4, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    q = mpc.learnable("q", [10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", [0.1, 0.01, 0.01, 0.01], lb=1e-4, ub=1e2)
    mpc.discrete_dynamics(cs.DM(a_mat) @ x + cs.DM(b_mat) @ u, dt=dt)
    mpc.stage_cost(cs.sum1(q * x**2) + cs.sum1(r * u**2))
    mpc.terminal_cost(10.0 * cs.sum1(q * x**2))
    lim = np.asarray(INPUT_LIMITS)
    mpc.input_bounds(-lim, lim)
    mpc.state_constraint("position", x[0:3], lb=-POSITION_LIMIT, ub=POSITION_LIMIT, soft=True,
                         linear_penalty=100.0, quadratic_penalty=100.0)
    return mpc
