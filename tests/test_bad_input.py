"""Bad input gives a ValueError naming the field, never a crash inside acados."""

from __future__ import annotations

import subprocess
import sys

import casadi as cs
import numpy as np
import pytest

from rlmpc.toolkit import MPC, ParametricMPC, SolverOptions
from rlmpc.toolkit.problems import cartpole_mpc


def small_problem() -> ParametricMPC:
    mpc = ParametricMPC("small", nx=1, nu=1, horizon=3)
    k = mpc.learnable("k", 0.5, lb=0.0, ub=1.0)
    mpc.discrete_dynamics(k * mpc.x + mpc.u)
    mpc.stage_cost(mpc.x**2 + mpc.u**2)
    return mpc


@pytest.mark.parametrize(("state", "message"), [
    ([0.0, 0.1, 0.2], "state s: expected a vector of 2 entries"),
    ([np.nan, 0.0], "state s: expected finite numbers"),
    ([np.inf, 0.0], "state s: expected finite numbers"),
])
def test_bad_states(lti: MPC, state: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lti.value(state)


def test_bad_action(lti: MPC) -> None:
    with pytest.raises(ValueError, match="action a: expected a vector of 1 entries"):
        lti.q_value([0.0, 0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="action a: expected finite"):
        lti.q_value([0.0, 0.1], [np.nan])


def test_theta_outside_bounds_and_wrong_shapes(lti: MPC) -> None:
    with pytest.raises(ValueError, match=r"theta 'x_lb\[0\]' = 5 is outside its bounds \[-1, 1\]"):
        lti.theta = {"x_lb": [5.0, 0.0]}
    with pytest.raises(ValueError, match=r"parameter 'A' value: expected a 2x2 matrix .*got shape \(3,\)"):
        lti.theta = {"A": [1.0, 2.0, 3.0]}
    # nothing is broadcast, nor read in an order the user did not write
    for wrong in ([[1.0, 0.2]], 1.0, [[1.0], [0.5]], [1.0, 0.2, 0.0, 1.0], "1.0"):
        with pytest.raises(ValueError, match=r"parameter 'A' value: expected a 2x2 matrix"):
            lti.theta = {"A": wrong}
    with pytest.raises(ValueError, match=r"parameter 'x_lb' value: expected a list of 2 numbers"):
        lti.theta = {"x_lb": -1.0}
    with pytest.raises(ValueError, match="theta: expected a vector of 16 entries"):
        lti.theta = np.zeros(3)
    with pytest.raises(ValueError, match=r"theta: unknown parameter\(s\) \['Q'\]"):
        lti.theta = {"Q": 1.0}
    with pytest.raises(ValueError, match="theta: expected finite values"):
        lti.theta = {"V0": np.nan}
    # a rejected update leaves θ unchanged
    np.testing.assert_array_equal(lti.theta, lti.fns.theta.default())


def test_definition_errors() -> None:
    mpc = ParametricMPC("p", nx=2, nu=1, horizon=5)
    with pytest.raises(ValueError, match=r"stage_cost: expected a scalar expression, got shape \(2, 1\)"):
        mpc.stage_cost(mpc.x)
    with pytest.raises(ValueError, match="dynamics: expected 2 rows, got 1"):
        mpc.discrete_dynamics(mpc.u)
    with pytest.raises(ValueError, match="integrator: expected one of"):
        mpc.continuous_dynamics(mpc.x, dt=0.1, integrator="rk45")
    with pytest.raises(ValueError, match="dt: expected a positive sampling time"):
        mpc.continuous_dynamics(mpc.x, dt=0.0)
    with pytest.raises(ValueError, match="input_bounds: lb must not exceed ub"):
        mpc.input_bounds(1.0, -1.0)
    with pytest.raises(ValueError, match="a soft constraint needs penalties"):
        mpc.state_constraint("c", mpc.x[0], lb=0.0, soft=True)
    with pytest.raises(ValueError, match="expected at least one finite bound"):
        mpc.state_constraint("c", mpc.x[0])
    with pytest.raises(ValueError, match=r"parameter 'w' value \[5.\] is outside its bounds"):
        mpc.learnable("w", 5.0, lb=0.0, ub=1.0)
    with pytest.raises(ValueError, match="declared twice"):
        mpc.learnable("a", 1.0)
        mpc.learnable("a", 1.0)
    with pytest.raises(ValueError, match="name: expected a C identifier"):
        ParametricMPC("my problem", nx=1, nu=1, horizon=2)
    with pytest.raises(ValueError, match="horizon: expected a positive integer"):
        ParametricMPC("p", nx=1, nu=1, horizon=0)
    with pytest.raises(ValueError, match="discount: expected 0 < γ <= 1"):
        ParametricMPC("p", nx=1, nu=1, horizon=2, discount=1.5)


def test_expression_with_foreign_symbols() -> None:
    mpc = small_problem()
    mpc.terminal_cost(mpc.u**2)  # the terminal cost cannot depend on u
    with pytest.raises(ValueError, match=r"terminal_cost: the expression may only depend on "
                                         r"x, θ and p; it also uses \['u'\]"):
        mpc.build()
    other = small_problem()
    stray = cs.SX.sym("stray")
    other.stage_cost(stray * other.x**2)
    with pytest.raises(ValueError, match=r"stage_cost: .* it also uses \['stray'\]"):
        other.build()


def test_missing_dynamics() -> None:
    mpc = ParametricMPC("nodyn", nx=1, nu=1, horizon=2)
    with pytest.raises(ValueError, match="dynamics: not set"):
        mpc.build()


@pytest.mark.parametrize(("options", "message"), [
    ({"qp_solver": "PARTIAL_CONDENSING_OSQP"}, "qp_solver: 'PARTIAL_CONDENSING_OSQP' is not supported"),
    ({"qp_solver": "FULL_CONDENSING_DAQP"}, "libacados would exit the process"),
    ({"nlp_solver": "IPOPT"}, "nlp_solver: 'IPOPT' is not supported"),
    ({"max_iter": 0}, "max_iter: expected a positive integer"),
    ({"tol": 1e-12}, "tol: expected a number in"),
    ({"tol": "small"}, "tol: expected a number in"),
    ({"qp_mu0": 0.0}, r"qp_mu0: expected a number in \(0, 1e12\)"),
    ({"qp_mu0": "30"}, r"qp_mu0: expected a number in \(0, 1e12\)"),
    ({"qp_mu0": True}, r"qp_mu0: expected a number in \(0, 1e12\)"),
    ({"qp_mu0": 30.0, "qp_solver": "FULL_CONDENSING_QPOASES"}, "qp_mu0: HPIPM's option"),
])
def test_unsupported_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SolverOptions(**options)  # type: ignore[arg-type]


def test_unknown_option_key() -> None:
    with pytest.raises(ValueError, match=r"mpc.solver: unknown option\(s\) \['tolerance'\]"):
        SolverOptions.from_dict({"tolerance": 1e-6}, source="mpc.solver")


def test_rejected_option_never_reaches_acados() -> None:
    """In a fresh process: the refusal is an exception, the process lives on."""
    code = (
        "from rlmpc.toolkit import MPC, SolverOptions\n"
        "from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc\n"
        "try:\n"
        "    MPC(lti_mpc(), SolverOptions(qp_solver='PARTIAL_CONDENSING_QPDUNES'))\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
        "print('still alive')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert "refused: solver option qp_solver" in out.stdout
    assert "still alive" in out.stdout


def test_solver_failure_is_reported_not_raised() -> None:
    mpc = MPC(cartpole_mpc(), SolverOptions(max_iter=1))
    sol = mpc.value([0.5, 0.3, 0.0, 0.0])
    assert not sol.success
    assert sol.message == "maximum number of iterations reached"
    assert mpc.failures == 1
    assert np.all(np.isfinite(sol.u0))
    with pytest.raises(ValueError, match=r"sensitivities: the solve failed .*no solution at this state"):
        mpc.sensitivities.grad_theta(sol)  # acados' last iterate is not a solution at s
    with pytest.raises(ValueError, match="the solve failed"):
        mpc.sensitivities.policy_jacobian(sol)
