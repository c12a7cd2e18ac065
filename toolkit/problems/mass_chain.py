"""A chain of masses on springs: a linear MPC of any size (nx = 2 × masses, nu forces).

Masses (1 kg) in a line, joined to each other and the first to a wall by springs
(1 N/m) and dampers (0.1 N s/m); input j pushes mass ``j mod masses``.  Discretised
exactly (zero-order hold) at ``dt``.  Quadratic cost of the rest state, an input box
and a soft box on every position: the size sweep's and the 12-state chain's problem.
"""

from __future__ import annotations

import casadi as cs
import numpy as np
import scipy.linalg

from rlmpc.toolkit.problem import ParametricMPC

SPRING, DAMPER = 1.0, 0.1
FORCE_LIMIT = 1.0
POSITION_LIMIT = 1.5


def chain_model(nx: int, nu: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the chain, zero-order hold at ``dt``."""
    if nx < 2 or nx % 2:
        raise ValueError(f"nx: expected an even number >= 2 (positions and velocities), got {nx}")
    n = nx // 2
    lap = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    lap[-1, -1] = 1.0  # the last mass hangs free
    ac = np.block([[np.zeros((n, n)), np.eye(n)], [-SPRING * lap, -DAMPER * lap]])
    bc = np.zeros((nx, nu))
    for j in range(nu):
        bc[n + j % n, j] = 1.0
    m = scipy.linalg.expm(np.block([[ac, bc], [np.zeros((nu, nx + nu))]]) * dt)
    return m[:nx, :nx], m[:nx, nx:]


def mass_chain_mpc(nx: int = 12, nu: int = 4, horizon: int = 20, dt: float = 0.1,
                   discount: float = 1.0) -> ParametricMPC:
    """Chain MPC; θ = state and input weights (scalars)."""
    a_mat, b_mat = chain_model(nx, nu, dt)
    mpc = ParametricMPC("mass_chain", nx=nx, nu=nu, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    q = mpc.learnable("q", 1.0, lb=1e-3, ub=1e3)
    r = mpc.learnable("r", 0.1, lb=1e-4, ub=1e2)
    mpc.discrete_dynamics(cs.DM(a_mat) @ x + cs.DM(b_mat) @ u, dt=dt)
    mpc.stage_cost(q * cs.sumsqr(x) + r * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * q * cs.sumsqr(x))
    mpc.input_bounds(-FORCE_LIMIT, FORCE_LIMIT)
    mpc.state_constraint("position", x[: nx // 2], lb=-POSITION_LIMIT, ub=POSITION_LIMIT, soft=True,
                         linear_penalty=100.0, quadratic_penalty=100.0)
    return mpc
