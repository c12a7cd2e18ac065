"""∇θπ by the Riccati-type backward pass (rlmpc.toolkit.riccati_sensitivity) against the dense KKT
solve (to 1e-8) and central finite differences of acados' solution, on problems whose active sets
exercise each part of the pass: input bounds, soft state constraints (free and zero slacks), hard
state constraints that must be projected onto earlier inputs, a nonlinear model, a nonlinear
constraint on two inputs, and a 12-state/4-input MPC."""

from __future__ import annotations

import casadi as cs
import numpy as np
import pytest
from conftest import STATES
from finite_differences import central_difference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rlmpc.toolkit.sensitivities as sens_module
from rlmpc.toolkit import MPC, MpcSolution, SolverOptions
from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems.quadrotor import quadrotor_hover_mpc
from rlmpc.toolkit.riccati_sensitivity import RiccatiNotApplicableError


def double_integrator_hard(horizon: int = 20) -> ParametricMPC:
    """Euler double integrator driven towards a hard position bound p ≤ p_max (θ): on the bound the
    position at stage k depends on the input two stages earlier, so active rows are pure-state rows
    that the pass must hand down over two stages.  A soft speed limit and input bounds as well."""
    mpc = ParametricMPC("ric_di_hard", nx=2, nu=1, horizon=horizon, discount=0.95)
    x, u = mpc.x, mpc.u
    q = mpc.learnable("q", [1.0, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", 0.1, lb=1e-3, ub=1e3)
    p_max = mpc.learnable("p_max", 1.0, lb=0.5, ub=2.0)
    p_ref = mpc.learnable("p_ref", 2.0, lb=-3.0, ub=3.0)
    dt = 0.1
    mpc.discrete_dynamics(cs.vertcat(x[0] + dt * x[1], x[1] + dt * u[0]), dt=dt)
    mpc.input_bounds(-1.0, 1.0)
    mpc.state_constraint("p_max", x[0] - p_max, ub=0.0)
    mpc.state_constraint("speed", x[1], lb=-0.6, ub=0.6, soft=True, linear_penalty=1.0, quadratic_penalty=10.0)
    mpc.stage_cost(q[0] * (x[0] - p_ref) ** 2 + q[1] * x[1] ** 2 + r * u[0] ** 2)
    mpc.terminal_cost(5.0 * (q[0] * (x[0] - p_ref) ** 2 + q[1] * x[1] ** 2))
    return mpc


def planar_drag(horizon: int = 15) -> ParametricMPC:
    """A point mass in the plane with cubic drag (nonlinear dynamics, c in θ), two inputs under the
    nonlinear hard constraint |u|² ≤ u_max² (u_max in θ): it saturates on the way to a far target."""
    mpc = ParametricMPC("ric_planar_drag", nx=4, nu=2, horizon=horizon, discount=0.97)
    x, u = mpc.x, mpc.u
    c = mpc.learnable("c", 0.3, lb=0.0, ub=2.0)
    q = mpc.learnable("q", [1.0, 1.0, 0.1, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", 0.05, lb=1e-3, ub=1e3)
    u_max = mpc.learnable("u_max", 1.0, lb=0.2, ub=5.0)
    target = mpc.fixed("target", [3.0, 1.0])
    dt = 0.1
    p, v = x[0:2], x[2:4]
    mpc.discrete_dynamics(cs.vertcat(p + dt * v, v + dt * (u - c * v * cs.sumsqr(v))), dt=dt)
    mpc.path_constraint("thrust", cs.sumsqr(u) - u_max**2, ub=0.0)
    mpc.state_constraint("speed", cs.sumsqr(v), ub=1.0, soft=True, linear_penalty=1.0, quadratic_penalty=5.0)
    mpc.stage_cost(cs.dot(q, cs.vertcat(p - target, v) ** 2) + r * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * cs.dot(q, cs.vertcat(p - target, v) ** 2))
    return mpc


@pytest.fixture(scope="module")
def di_hard() -> MPC:
    return MPC(double_integrator_hard(), SolverOptions(tol=1e-9))


@pytest.fixture(scope="module")
def drag() -> MPC:
    return MPC(planar_drag(), SolverOptions(tol=1e-9, max_iter=200, hessian="EXACT", regularization="PROJECT"))


@pytest.fixture(scope="module")
def quadrotor() -> MPC:
    return MPC(quadrotor_hover_mpc(horizon=10), SolverOptions(tol=1e-9))


Row = tuple[str, int, int]  # (kind, index, stage) of an inequality row of the transcription


def active_rows(mpc: MPC, sol: MpcSolution, tol: float = 1e-5) -> set[Row]:
    """The active inequality rows."""
    _, lam = mpc.sensitivities.inequalities(sol)
    rows = mpc.sensitivities.transcriptions[False].ineq_rows
    return {(rows[i].kind, rows[i].index, rows[i].stage) for i in np.flatnonzero(lam > tol)}


def check(mpc: MPC, states: list[np.ndarray], fd: bool = True) -> list[set[Row]]:
    """At each state: the Riccati ∇θπ equals the dense KKT solve to 1e-8 and (``fd``) central
    differences of acados' u_0 to 1e-4 (where the solution is regular); the active rows met."""
    sens, theta0, seen = mpc.sensitivities, mpc.theta, []
    try:
        for s in states:
            mpc.theta = theta0
            sol = mpc.value(s)
            assert sol.success, sol.message
            ric = sens.policy_jacobian(sol, method="riccati")
            dense = sens.policy_jacobian(sol, method="dense")
            scale = max(1.0, float(np.abs(dense).max()))
            np.testing.assert_allclose(ric, dense, rtol=1e-8, atol=1e-8 * scale)
            # the default: the backward pass above DENSE_MAX variables, the small reduced system below
            np.testing.assert_allclose(sens.policy_jacobian(sol), dense, rtol=1e-8, atol=1e-8 * scale)
            big = sens.transcriptions[False].nw > sens_module.DENSE_MAX
            assert sens.last_pi_method == ("riccati" if big else "sparse")
            seen.append(active_rows(mpc, sol))
            if fd:
                assert sens.regularity(sol, tol=1e-5).regular, s

                def u0(th: np.ndarray, s: np.ndarray = s) -> np.ndarray:
                    mpc.theta = th
                    other = mpc.value(s)
                    assert other.success, other.message
                    return other.u0

                np.testing.assert_allclose(ric, central_difference(u0, theta0), rtol=1e-4, atol=1e-4 * scale)
    finally:
        mpc.theta = theta0
    return seen


def test_lti_input_bounds_and_soft_state_constraints(lti: MPC) -> None:
    seen = check(lti, STATES["lti"])
    kinds = {r[0] for s in seen for r in s}
    assert kinds & {"lbu", "ubu"} and kinds & {"lh", "uh"}  # input bounds; a soft bound, slack free


def test_hard_state_constraint_projected_onto_earlier_inputs(di_hard: MPC) -> None:
    states = [np.array([0.0, 0.45]), np.array([0.3, 0.6]), np.array([0.6, 0.0]), np.array([-0.5, 0.23])]
    seen = check(di_hard, states)
    # the hard bound (h row 0) is active at stages ≥ 2 (pure-state rows handed down) at some states
    assert sum(any(r[:2] == ("uh", 0) and r[2] >= 2 for r in rows) for rows in seen) >= 2
    assert any(r[0] == "ubu" for rows in seen for r in rows)


def test_nonlinear_cartpole(cartpole: MPC) -> None:
    seen = check(cartpole, STATES["cartpole"])
    assert sum(any(r[0] not in ("lsl", "lsu") for r in rows) for rows in seen) >= 2


def test_two_inputs_with_a_nonlinear_constraint(drag: MPC) -> None:
    states = [np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, -0.5, 0.3, 0.2]), np.array([2.9, 1.0, 0.0, 0.0])]
    seen = check(drag, states)
    assert any(r[:2] == ("uh", 1) for rows in seen for r in rows)  # |u|² ≤ u_max² (h row 1) active


def test_twelve_states_four_inputs(quadrotor: MPC) -> None:
    rng = np.random.default_rng(3)
    states = [np.concatenate([rng.uniform(-2.6, 2.6, 3), rng.uniform(-1.0, 1.0, 3), rng.uniform(-0.1, 0.1, 6)])
              for _ in range(3)]
    seen = check(quadrotor, states[:1]) + check(quadrotor, states[1:], fd=False)
    kinds = {r[0] for s in seen for r in s}
    assert kinds & {"lbu", "ubu"} and kinds & {"lh", "uh"}


def test_auto_falls_back_where_licq_fails(di_hard: MPC, monkeypatch: pytest.MonkeyPatch) -> None:
    """From (0, 0.5) the saturated u_0 = 1 puts v_1 exactly on the soft speed bound with its slack at
    zero: the input bound at stage 0 and the speed row at stage 1 are both active on the same
    direction (LICQ fails).  The pass says so (method="riccati" raises), and "auto" takes the reduced
    KKT solve, equal to the dense one, counting the reason."""
    sens = di_hard.sensitivities
    sol = di_hard.value(np.array([0.0, 0.5]))
    assert sol.success
    with pytest.raises(RiccatiNotApplicableError, match="LICQ"):
        sens.policy_jacobian(sol, method="riccati")
    before = sum(sens.pi_fallbacks.values())
    monkeypatch.setattr(sens_module, "DENSE_MAX", 0)  # (a small problem: "auto" would not try the pass)
    auto = sens.policy_jacobian(sol)
    assert sens.last_pi_method == "sparse"
    assert sum(sens.pi_fallbacks.values()) == before + 1
    np.testing.assert_allclose(auto, sens.policy_jacobian(sol, method="dense"), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["lti", "cartpole", "di_hard", "drag", "quadrotor"])
def test_full_hessian_of_q_by_the_backward_and_forward_pass(name: str, request: pytest.FixtureRequest) -> None:
    """d²Q/dθ² (``hessian_theta(full=True)``) by the Riccati pass plus a forward pass for dw equals the
    sparse KKT path with multiplier derivatives (to 1e-8; d²V too), and (problems with a hard or
    nonlinear constraint) central differences of ∇θQ."""
    mpc: MPC = request.getfixturevalue(name)
    sens, theta0 = mpc.sensitivities, mpc.theta
    states = {"lti": STATES["lti"][:2], "cartpole": STATES["cartpole"][:2],
              "di_hard": [np.array([0.3, 0.6]), np.array([-0.5, 0.23])],
              "drag": [np.array([1.0, -0.5, 0.3, 0.2])],
              "quadrotor": [np.array([2.5, -2.4, 1.0, 0.5, -0.5, 0.2, 0, 0, 0, 0, 0, 0])]}[name]
    try:
        for s in states:
            u0 = mpc.value(s).u0
            # (drag: |u_0| = u_max, so a step along u_0 leaves the feasible set; shrink it instead)
            a = 0.9 * u0 if name == "drag" else np.clip(u0 + 0.05, mpc.fns.u_lb, mpc.fns.u_ub)
            q = mpc.q_value(s, a)
            assert q.success, q.message
            v = mpc.value(s)  # (and of V)
            np.testing.assert_allclose(sens.hessian_theta(v, full=True, method="riccati"),
                                       sens.hessian_theta(v, full=True, method="sparse"), rtol=1e-8,
                                       atol=1e-8 * max(1.0, float(np.abs(sens.hessian_theta(v, True, "sparse")).max())))
            ric = sens.hessian_theta(q, full=True, method="riccati")
            ref = sens.hessian_theta(q, full=True, method="sparse")
            scale = max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(ric, ref, rtol=1e-8, atol=1e-8 * scale)
            if name in ("di_hard", "drag"):
                assert sens.regularity(q, tol=1e-5).regular

                def grad(th: np.ndarray, s: np.ndarray = s, a: np.ndarray = a) -> np.ndarray:
                    mpc.theta = th
                    other = mpc.q_value(s, a)
                    assert other.success, other.message
                    return sens.grad_theta(other)

                fd = central_difference(grad, theta0)
                np.testing.assert_allclose(ric, 0.5 * (fd + fd.T), rtol=1e-3, atol=1e-3 * scale)
                mpc.theta = theta0
    finally:
        mpc.theta = theta0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_points_hard_state_constraint(di_hard: MPC, data: st.DataObject) -> None:
    """Random states and θ of the hard-bound problem: wherever the solution is regular (margin 1e-3)
    the pass applies and equals the dense KKT solve to 1e-8; where it raises, LICQ indeed fails."""
    nominal, lb, ub = di_hard.theta, di_hard.fns.theta.lower(), di_hard.fns.theta.upper()
    di_hard.reset()
    try:
        factors = np.array(data.draw(st.lists(st.floats(-0.3, 0.3), min_size=nominal.size, max_size=nominal.size)))
        di_hard.theta = np.clip(nominal * (1 + factors), lb, ub)
        p_max = di_hard.theta[3]
        s = np.array([data.draw(st.floats(-1.0, 0.95)) * p_max, data.draw(st.floats(-0.6, 0.6))])
        assume(s[0] + 0.5 * s[1] * abs(s[1]) / 1.0 < p_max - 0.05)  # it can stop before the bound
        sol = di_hard.value(s)
        assume(sol.success)
        sens = di_hard.sensitivities
        dense = sens.policy_jacobian(sol, method="dense")
        try:
            ric = sens.policy_jacobian(sol, method="riccati")
        except RiccatiNotApplicableError:
            assert not sens.regularity(sol, tol=sens_module.ACTIVE_TOL).licq
            return
        assume(sens.regularity(sol, tol=1e-3).regular)
        np.testing.assert_allclose(ric, dense, rtol=1e-8, atol=1e-8 * max(1.0, float(np.abs(dense).max())))
    finally:
        di_hard.theta = nominal
