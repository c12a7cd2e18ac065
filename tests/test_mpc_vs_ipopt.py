"""V, Q and π from acados agree with IPOPT on the same NLP (one definition, two solvers)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIONS, STATES, problem_name

from rlmpc.toolkit import MPC
from rlmpc.toolkit.nlp import solve_with_ipopt, transcribe


def test_value_and_policy_match_ipopt(problem: MPC) -> None:
    tr = transcribe(problem.fns, fix_u0=False)
    for s in STATES[problem_name(problem)]:
        sol = problem.value(s)
        ref = solve_with_ipopt(tr, s, problem.theta, problem.p)
        assert sol.success and ref.success, (sol.message, s)
        assert sol.value == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
        np.testing.assert_allclose(sol.u0, ref.u0, atol=1e-5)
        np.testing.assert_allclose(problem.policy(s), ref.u0, atol=1e-5)


def test_q_value_matches_ipopt(problem: MPC) -> None:
    tr = transcribe(problem.fns, fix_u0=True)
    for s in STATES[problem_name(problem)]:
        for a in ACTIONS[problem_name(problem)]:
            sol = problem.q_value(s, a)
            ref = solve_with_ipopt(tr, s, problem.theta, problem.p, a=a)
            assert sol.success and ref.success
            assert sol.value == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
            np.testing.assert_allclose(sol.u0, a, atol=1e-9)


def test_q_at_policy_action_equals_v(problem: MPC) -> None:
    for s in STATES[problem_name(problem)]:
        v = problem.value(s)
        q = problem.q_value(s, v.u0)
        assert q.value == pytest.approx(v.value, rel=1e-7, abs=1e-9)
        lb, ub = problem.fns.u_lb, problem.fns.u_ub
        step = np.where(v.u0 + 0.2 <= ub, 0.2, -0.2)  # a different action within the bounds
        other = problem.q_value(s, np.clip(v.u0 + step, lb, ub))
        assert other.value > v.value


def test_reference_problems_exercise_active_constraints(lti: MPC, cartpole: MPC) -> None:
    """The test states really hit the input bounds and the soft state bounds."""
    sol = lti.value(STATES["lti"][1])
    assert abs(sol.u0[0]) == pytest.approx(1.0)  # input bound active
    sol = lti.value(STATES["lti"][3])
    assert max(np.abs(sol.stage("sl", k)).max() + np.abs(sol.stage("su", k)).max()
               for k in range(1, 11)) > 1e-3  # slack in use: state bound violated softly
    sol = cartpole.value(STATES["cartpole"][1])
    assert abs(sol.u0[0]) == pytest.approx(5.0)


def test_predicted_trajectory_follows_the_model(problem: MPC) -> None:
    sol = problem.value(STATES[problem_name(problem)][0])
    x, u = sol.x, sol.u
    np.testing.assert_allclose(x[0], STATES[problem_name(problem)][0], atol=1e-12)
    for k in range(problem.fns.horizon):
        nxt = np.asarray(problem.fns.dynamics(x[k], u[k], problem.theta, problem.p)).ravel()
        np.testing.assert_allclose(x[k + 1], nxt, atol=1e-7)
