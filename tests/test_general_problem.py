"""A problem that uses every feature of the definition: continuous dynamics, a fixed
parameter, hard state constraints, soft path constraints on (x, u), one-sided bounds.
Checked against IPOPT and finite differences like the reference problems."""

from __future__ import annotations

import casadi as cs
import numpy as np
import pytest

from rlmpc.toolkit import MPC, ParametricMPC, SolverOptions
from rlmpc.toolkit.nlp import solve_with_ipopt, transcribe


def general_problem() -> ParametricMPC:
    mpc = ParametricMPC("general", nx=2, nu=2, horizon=8, discount=0.95)
    x, u = mpc.x, mpc.u
    k = mpc.learnable("k", 0.8, lb=0.1, ub=2.0)
    c = mpc.learnable("c", 0.3, lb=0.0, ub=1.0)
    w = mpc.learnable("w", [1.0, 0.5], lb=0.01, ub=10.0)
    top = mpc.learnable("top", 0.9, lb=0.5, ub=2.0)
    ref = mpc.fixed("ref", [0.2, 0.0])
    mpc.continuous_dynamics(cs.vertcat(x[1], -k * cs.sin(x[0]) - c * x[1] + u[0] + 0.5 * u[1]),
                            dt=0.1, integrator="euler", steps=2)
    mpc.stage_cost(cs.dot(w, (x - ref) ** 2) + 0.1 * cs.sumsqr(u))
    mpc.terminal_cost(5.0 * cs.sumsqr(x - ref))
    mpc.input_bounds([-2.0, -np.inf], [2.0, np.inf])  # the second input is unbounded
    mpc.state_constraint("top", x[0] - top, ub=0.0)  # hard, one-sided, θ-dependent
    mpc.path_constraint("effort", u[0] + u[1] + 0.2 * x[1], lb=-1.5, ub=1.5, soft=True,
                        linear_penalty=5.0, quadratic_penalty=2.0)
    return mpc


@pytest.fixture(scope="module")
def general() -> MPC:
    return MPC(general_problem(), SolverOptions(tol=1e-9))


STATES = [np.array([0.0, 0.0]), np.array([0.7, 1.5]), np.array([-0.5, -2.0])]


def test_matches_ipopt(general: MPC) -> None:
    assert not general.fns.is_qp
    for s in STATES:
        sol = general.value(s)
        ref = solve_with_ipopt(transcribe(general.fns, False), s, general.theta, general.p)
        assert sol.success and ref.success
        assert sol.value == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
        np.testing.assert_allclose(sol.u0, ref.u0, atol=1e-5)


def test_constraints_are_active_and_sensitivities_match_fd(general: MPC) -> None:
    sens = general.sensitivities
    theta0 = general.theta
    s = STATES[1]
    sol = general.value(s)
    g, lam = sens.inequalities(sol)
    rows = sens.transcriptions[False].ineq_rows
    active = {(r.kind, r.stage) for r, m in zip(rows, lam, strict=True) if m > 1e-6}
    assert any(kind == "uh" and stage >= 1 for kind, stage in active)  # the hard state bound
    assert np.max(g) < 1e-7  # feasible
    assert np.abs(sens.stationarity(sol)).max() < 1e-6
    h = 1e-5

    def resolve(th: np.ndarray) -> tuple[float, np.ndarray]:
        general.theta = th
        out = general.value(s)
        assert out.success
        return out.value, out.u0

    fd_v, fd_pi = [], []
    for i in range(theta0.size):
        tp, tm = theta0.copy(), theta0.copy()
        tp[i] += h
        tm[i] -= h
        (vp, up), (vm, um) = resolve(tp), resolve(tm)
        fd_v.append((vp - vm) / (2 * h))
        fd_pi.append((up - um) / (2 * h))
    general.theta = theta0
    sol = general.value(s)
    np.testing.assert_allclose(sens.grad_theta(sol), fd_v, rtol=1e-4, atol=1e-5)
    if sens.regularity(sol).regular:
        np.testing.assert_allclose(sens.policy_jacobian(sol), np.array(fd_pi).T, rtol=1e-4,
                                   atol=1e-5)


def test_fixed_parameter_changes_the_solution(general: MPC) -> None:
    base = general.value(STATES[0]).u0
    general.p = {"ref": [0.5, 0.0]}
    moved = general.value(STATES[0]).u0
    general.p = {"ref": [0.2, 0.0]}
    assert np.abs(moved - base).max() > 1e-3
