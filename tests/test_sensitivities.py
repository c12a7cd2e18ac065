"""∇θV, ∇θQ, ∇θπ and the Hessian of Q against finite differences (re-solving acados)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIONS, STATES, problem_name
from finite_differences import central_difference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rlmpc.toolkit import MPC, MpcSolution


def solve_at(mpc: MPC, theta: np.ndarray, s: np.ndarray, a: np.ndarray | None) -> MpcSolution:
    mpc.theta = theta
    sol = mpc.value(s) if a is None else mpc.q_value(s, a)
    assert sol.success, sol.message
    return sol


def assert_close(analytic: np.ndarray, fd: np.ndarray, rel: float = 1e-4) -> None:
    scale = max(1.0, float(np.abs(fd).max()))
    np.testing.assert_allclose(analytic, fd, rtol=rel, atol=rel * scale)


def regular(mpc: MPC, sol: MpcSolution, margin: float = 1e-5) -> bool:
    """Strict complementarity and LICQ with a margin, so that finite differences do not
    cross a change of the active set."""
    return mpc.sensitivities.regularity(sol, tol=margin).regular


@pytest.fixture
def restore_theta(problem: MPC):  # type: ignore[no-untyped-def]
    theta = problem.theta
    yield problem
    problem.theta = theta


def test_lagrangian_is_stationary_at_acados_solution(problem: MPC) -> None:
    """Checks the multiplier sign/ordering conventions documented in rlmpc.toolkit.sensitivities."""
    for s in STATES[problem_name(problem)]:
        for sol in (problem.value(s), problem.q_value(s, ACTIONS[problem_name(problem)][0])):
            residual = problem.sensitivities.stationarity(sol)
            assert np.abs(residual).max() < 1e-6


@pytest.mark.usefixtures("restore_theta")
def test_grad_theta_v_and_q_match_finite_differences(problem: MPC) -> None:
    theta0 = problem.theta
    for s in STATES[problem_name(problem)]:
        for a in (None, ACTIONS[problem_name(problem)][0]):
            sol = solve_at(problem, theta0, s, a)
            grad = problem.sensitivities.grad_theta(sol)
            fd = central_difference(lambda th, s=s, a=a: solve_at(problem, th, s, a).value,
                                    theta0)
            assert_close(grad, fd)


def test_sparse_policy_jacobian_equals_the_dense_kkt_solve(problem: MPC) -> None:
    """The structured (sparse LU) ∇θπ against the dense KKT solve, incl. active input/state and soft
    constraints: to 1e-8, and the multipliers' derivatives too."""
    sens, checked_active = problem.sensitivities, 0
    for s in STATES[problem_name(problem)]:
        sol = problem.value(s)
        dense, sparse = sens.kkt_sensitivity(sol), sens.kkt_sensitivity_sparse(sol)
        for a, b in ((dense.dw, sparse.dw), (dense.dmu, sparse.dmu), (dense.dlam_active, sparse.dlam_active)):
            np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-8 * max(1.0, float(np.abs(a).max(initial=0))))
        np.testing.assert_array_equal(dense.active, sparse.active)
        checked_active += int(dense.active.size > 0)
        for method in ("auto", "sparse"):
            np.testing.assert_allclose(sens.policy_jacobian(sol, method=method),
                                       sens.policy_jacobian(sol, method="dense"), rtol=1e-8, atol=1e-10)
    assert checked_active >= 2


@pytest.mark.parametrize("dense_max", [10**6, "nw", 0])
def test_policy_jacobian_from_cached_reduction_plans(problem: MPC, dense_max: int | str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """∇θπ assembled from the cached plans (one per sparsity pattern and active set; dense LAPACK solve,
    or with DENSE_MAX = 0 the sparse LU) equals the dense KKT solve at every state, also when a plan is
    reused for another state with the same active set and when states with other active sets come in
    between (every state twice, the second round from the cache)."""
    import rlmpc.toolkit.sensitivities as sens_module

    sens = problem.sensitivities
    if dense_max == "nw":  # as many as the variables: reduced systems with more rows go to the sparse LU
        dense_max = int(sens.transcriptions[False].w.shape[0])
    monkeypatch.setattr(sens_module, "DENSE_MAX", dense_max)
    sens._pi_plans.clear()
    sols = [problem.value(s) for s in STATES[problem_name(problem)]]
    for _ in range(2):
        for sol in sols:
            dense = sens.policy_jacobian(sol, method="dense")
            np.testing.assert_allclose(sens.policy_jacobian(sol, method="sparse"), dense, rtol=1e-8,
                                       atol=1e-10 * max(1.0, float(np.abs(dense).max())))
    plans = list(sens._pi_plans.values())
    if dense_max == 0:  # more variables than DENSE_MAX: straight to the sparse LU, no plans
        assert not plans
    else:  # several active sets met, each planned once (None: too large, solved sparse)
        assert 2 <= len(plans) <= len(sols)
        assert dense_max != 10**6 or all(plans)
    sens._pi_plans.clear()


@pytest.mark.usefixtures("restore_theta")
def test_policy_jacobian_matches_finite_differences(problem: MPC) -> None:
    theta0 = problem.theta
    checked_active = 0
    for s in STATES[problem_name(problem)]:
        sol = solve_at(problem, theta0, s, None)
        assert regular(problem, sol), s
        jac = problem.sensitivities.policy_jacobian(sol)
        fd = central_difference(lambda th, s=s: solve_at(problem, th, s, None).u0, theta0)
        assert_close(jac, fd)
        _, lam = problem.sensitivities.inequalities(sol)
        checked_active += int(np.any(lam > 1e-5))
    assert checked_active >= 2  # cases with active input or state constraints are included


@pytest.mark.usefixtures("restore_theta")
def test_state_and_action_gradients(problem: MPC) -> None:
    s = STATES[problem_name(problem)][0]
    a = ACTIONS[problem_name(problem)][0]
    sens = problem.sensitivities
    g_s = sens.grad_state(problem.value(s))
    assert_close(g_s, central_difference(lambda x: problem.value(x).value, s))
    g_a = sens.grad_action(problem.q_value(s, a))
    assert_close(g_a, central_difference(lambda u: problem.q_value(s, u).value, a))


@pytest.mark.usefixtures("restore_theta")
def test_full_hessian_matches_finite_difference_of_gradient(problem: MPC) -> None:
    theta0 = problem.theta
    s, a = STATES[problem_name(problem)][0], ACTIONS[problem_name(problem)][0]
    sens = problem.sensitivities
    hess = sens.hessian_theta(solve_at(problem, theta0, s, a), full=True)
    fd = central_difference(lambda th: sens.grad_theta(solve_at(problem, th, s, a)), theta0)
    assert_close(hess, 0.5 * (fd + fd.T), rel=1e-3)
    approx = sens.hessian_theta(solve_at(problem, theta0, s, a), full=False)
    np.testing.assert_allclose(approx, approx.T, atol=1e-10)
    g, h = sens.grad_and_hessian_theta(solve_at(problem, theta0, s, a))
    np.testing.assert_allclose(h, approx)
    np.testing.assert_allclose(g, sens.grad_theta(solve_at(problem, theta0, s, a)))


def test_q_gradient_at_policy_action_equals_v_gradient(problem: MPC) -> None:
    s = STATES[problem_name(problem)][2]
    v = problem.value(s)
    q = problem.q_value(s, v.u0)
    assert_close(problem.sensitivities.grad_theta(q), problem.sensitivities.grad_theta(v),
                 rel=1e-5)


def _random_theta(mpc: MPC, data: st.DataObject, spread: float) -> np.ndarray:
    """θ within its bounds, at most ±spread (relative) around the nominal value."""
    nominal, lb, ub = mpc.theta, mpc.fns.theta.lower(), mpc.fns.theta.upper()
    factors = data.draw(st.lists(st.floats(-spread, spread), min_size=nominal.size,
                                 max_size=nominal.size))
    theta = nominal + np.array(factors) * np.maximum(np.abs(nominal), 0.05)
    return np.clip(theta, lb, ub)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_states_and_theta_lti(lti: MPC, data: st.DataObject) -> None:
    _check_random_point(lti, data, state_box=np.array([1.0, 1.0]), spread=0.3)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_states_and_theta_cartpole(cartpole: MPC, data: st.DataObject) -> None:
    _check_random_point(cartpole, data, state_box=np.array([0.5, 0.2, 0.3, 0.3]), spread=0.3)


def _check_random_point(mpc: MPC, data: st.DataObject, state_box: np.ndarray,
                        spread: float) -> None:
    nominal = mpc.theta
    mpc.reset()  # results must not depend on the previous example's warm start
    try:
        theta = _random_theta(mpc, data, spread)
        s = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=mpc.fns.nx,
                                        max_size=mpc.fns.nx))) * state_box
        sol = solve_at(mpc, theta, s, None)
        assume(regular(mpc, sol, margin=1e-3))
        sens = mpc.sensitivities
        fd_v = central_difference(lambda th: solve_at(mpc, th, s, None).value, theta)
        assert_close(sens.grad_theta(solve_at(mpc, theta, s, None)), fd_v)
        fd_pi = central_difference(lambda th: solve_at(mpc, th, s, None).u0, theta)
        at = solve_at(mpc, theta, s, None)
        assert_close(sens.policy_jacobian(at), fd_pi)
        assert_close(sens.policy_jacobian(at, method="riccati"), fd_pi)
        a = np.clip(sol.u0 + 0.1, mpc.fns.u_lb, mpc.fns.u_ub)
        q = solve_at(mpc, theta, s, a)
        assume(regular(mpc, q, margin=1e-3))
        fd_q = central_difference(lambda th: solve_at(mpc, th, s, a).value, theta)
        assert_close(sens.grad_theta(solve_at(mpc, theta, s, a)), fd_q)
    finally:
        mpc.theta = nominal
