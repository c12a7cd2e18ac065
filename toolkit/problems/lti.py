"""The linear MPC of Gros & Zanon (2020), as in the `mpcrl` Q-learning example."""

from __future__ import annotations

import casadi as cs
import numpy as np
import scipy.linalg

from rlmpc.toolkit.problem import ParametricMPC

# the true plant (see rlmpc.toolkit.envs.lti) and the MPC's deliberately wrong initial model
A_TRUE = np.array([[0.9, 0.35], [0.0, 1.1]])
B_TRUE = np.array([[0.0813], [0.2]])
A_INIT = np.array([[1.0, 0.25], [0.0, 1.0]])
B_INIT = np.array([[0.0312], [0.25]])
X_LB = np.array([0.0, -1.0])
X_UB = np.array([1.0, 1.0])
U_BOUND = 1.0
VIOLATION_WEIGHT = 100.0


def dlqr_cost(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solution P of the discrete algebraic Riccati equation."""
    return np.asarray(scipy.linalg.solve_discrete_are(a, b, q, r))


def lti_mpc(horizon: int = 10, discount: float = 0.9) -> ParametricMPC:
    """θ = (V0, x_lb, x_ub, b, f, A, B); soft state bounds with learnable back-offs."""
    mpc = ParametricMPC("lti", nx=2, nu=1, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    v0 = mpc.learnable("V0", 0.0, lb=-1e3, ub=1e3)
    x_lb = mpc.learnable("x_lb", [0.0, 0.0], lb=-1.0, ub=1.0)
    x_ub = mpc.learnable("x_ub", [1.0, 0.0], lb=-1.0, ub=2.0)
    b = mpc.learnable("b", [0.0, 0.0], lb=-1.0, ub=1.0)
    f = mpc.learnable("f", [0.0, 0.0, 0.0], lb=-10.0, ub=10.0)
    a_mat = mpc.learnable("A", A_INIT, lb=-2.0, ub=2.0)
    b_mat = mpc.learnable("B", B_INIT, lb=-2.0, ub=2.0)

    mpc.discrete_dynamics(a_mat @ x + b_mat @ u + b)
    mpc.input_bounds(-U_BOUND, U_BOUND)
    mpc.state_constraint("x_lower", x - (X_LB + x_lb), lb=0.0, soft=True,
                         linear_penalty=0.5 * VIOLATION_WEIGHT)
    mpc.state_constraint("x_upper", x - (X_UB + x_ub), ub=0.0, soft=True,
                         linear_penalty=0.5 * VIOLATION_WEIGHT)

    terminal = dlqr_cost(A_INIT, B_INIT, 0.5 * np.eye(2), 0.25 * np.eye(1))
    mpc.initial_cost(v0)
    mpc.stage_cost(0.5 * (cs.sumsqr(x) + 0.5 * cs.sumsqr(u)))
    mpc.stage_cost(cs.dot(f, cs.vertcat(x, u)), discounted=False)
    mpc.terminal_cost(cs.bilin(terminal, x, x))
    return mpc


def lti_tracking_mpc(horizon: int = 10, discount: float = 0.9) -> ParametricMPC:
    """The LTI MPC tracking a reference position given at run time: p = r (the first state's
    set-point); θ as in :func:`lti_mpc` but without the linear cost term."""
    mpc = ParametricMPC("lti_tracking", nx=2, nu=1, horizon=horizon, discount=discount)
    x, u = mpc.x, mpc.u
    r = mpc.fixed("r", 0.5)
    x_lb = mpc.learnable("x_lb", [0.0, 0.0], lb=-1.0, ub=1.0)
    x_ub = mpc.learnable("x_ub", [1.0, 0.0], lb=-1.0, ub=2.0)
    b = mpc.learnable("b", [0.0, 0.0], lb=-1.0, ub=1.0)
    a_mat = mpc.learnable("A", A_INIT, lb=-2.0, ub=2.0)
    b_mat = mpc.learnable("B", B_INIT, lb=-2.0, ub=2.0)
    mpc.discrete_dynamics(a_mat @ x + b_mat @ u + b)
    mpc.input_bounds(-U_BOUND, U_BOUND)
    mpc.state_constraint("x_lower", x - (X_LB + x_lb), lb=0.0, soft=True,
                         linear_penalty=0.5 * VIOLATION_WEIGHT)
    mpc.state_constraint("x_upper", x - (X_UB + x_ub), ub=0.0, soft=True,
                         linear_penalty=0.5 * VIOLATION_WEIGHT)
    err = x - cs.vertcat(r, 0.0)
    terminal = dlqr_cost(A_INIT, B_INIT, 0.5 * np.eye(2), 0.25 * np.eye(1))
    mpc.stage_cost(0.5 * (cs.sumsqr(err) + 0.5 * cs.sumsqr(u)))
    mpc.terminal_cost(cs.bilin(terminal, err, err))
    return mpc
