"""The workstation's solves: one-sided soft rows merged in pairs (the same problem, half the
slacks), and no "success" for a QP that stopped at its iteration limit."""

from __future__ import annotations

import numpy as np
import pytest

from rlmpc.toolkit.mpc import MPC, UNVERIFIED
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problems.lti import lti_mpc
from rlmpc.toolkit.soft_pairs import find_pairs

# states where the soft bounds bind: x1 below its lower bound, x1 above its upper bound, x2 far
# from its (learned) band, and an interior state
STATES = [np.array([-0.3, 0.2]), np.array([1.2, 0.4]), np.array([0.5, -0.9]), np.array([0.2, 0.1])]


@pytest.fixture(scope="module")
def theta() -> np.ndarray:
    th = lti_mpc().build().theta
    # bounds moved by θ (the merged rows' upper bounds follow θ at run time) and a model offset
    return th.flatten({"x_lb": [0.1, -0.2], "x_ub": [-0.15, 0.3], "b": [0.02, -0.01]})


@pytest.fixture(scope="module")
def pair_of_solvers() -> tuple[MPC, MPC]:
    fns = lti_mpc().build()
    return (MPC(fns, SolverOptions(hpipm_mode="BALANCE", merge_soft_pairs=False)),
            MPC(fns, SolverOptions(hpipm_mode="BALANCE")))


def test_lti_pairs_are_found() -> None:
    pairs = find_pairs(lti_mpc().build())
    assert (pairs.lower, pairs.upper) == ((0, 1), (2, 3))  # x_lower[i] with x_upper[i]
    assert pairs.offset is not None
    offset = np.asarray(pairs.offset(lti_mpc().build().theta.default(), np.zeros(0))).ravel()
    assert np.allclose(offset, [2.0, 2.0])  # (X_UB + x_ub) - (X_LB + x_lb), θ0: x_ub = (1, 0), x_lb = 0


def test_merged_solver_solves_the_same_problem(pair_of_solvers: tuple[MPC, MPC],
                                               theta: np.ndarray) -> None:
    plain, merged = pair_of_solvers
    raw = merged._instance("V").layout
    assert int(raw.sizes[5, 2]) == 2 and int(plain._instance("V").layout.sizes[5, 2]) == 4  # slacks
    for th in (plain.fns.theta.default(), theta):
        plain.theta = merged.theta = th
        for s in STATES:
            for a in (None, np.array([0.4])):
                sp = plain.value(s) if a is None else plain.q_value(s, a)
                sm = merged.value(s) if a is None else merged.q_value(s, a)
                assert sp.success and sm.success
                assert np.allclose(sm.u0, sp.u0, atol=1e-7) and abs(sm.value - sp.value) < 1e-7
                assert sm.layout.total == sp.layout.total  # the problem's own layout
                gp, hp = plain.sensitivities.grad_and_hessian_theta(sp)
                gm, hm = merged.sensitivities.grad_and_hessian_theta(sm)
                assert np.allclose(gm, gp, rtol=1e-6, atol=1e-6) and np.allclose(hm, hp, atol=1e-6)
                if a is None:
                    assert np.allclose(merged.sensitivities.policy_jacobian(sm),
                                       plain.sensitivities.policy_jacobian(sp), atol=1e-6)


def test_a_solution_warm_starts_the_merged_solver(pair_of_solvers: tuple[MPC, MPC]) -> None:
    _, merged = pair_of_solvers
    sol = merged.value(STATES[0])
    merged.reset()
    merged.load_warm_start_state({"V": sol.iterate})  # the problem's layout, compressed back
    assert np.array_equal(merged._instance("V").get_iterate(),
                          merged._expansion.compress(sol.iterate))  # type: ignore[union-attr]
    assert np.allclose(merged.value(STATES[0]).u0, sol.u0, atol=1e-9)


@pytest.mark.parametrize("fallback", ["ROBUST", "none"])
def test_a_qp_at_its_iteration_limit_is_not_a_success(fallback: str, theta: np.ndarray) -> None:
    # SQP_RTI reports success when its QP stops at the QP iteration limit: with 3 iterations
    # every QP here does; acados' own status is 0 for all of them
    fns = lti_mpc().build()
    capped = MPC(fns, SolverOptions(hpipm_mode="SPEED", qp_max_iter=3, fallback_hpipm_mode=fallback),
                 theta=theta)
    exact = MPC(fns, SolverOptions(hpipm_mode="BALANCE"), theta=theta)
    for s in STATES[:3]:
        sol = capped.value(s)
        if fallback == "none":
            assert sol.status == UNVERIFIED and not sol.success
        else:
            assert sol.success and np.allclose(sol.u0, exact.value(s).u0, atol=1e-7)
    assert capped.verification.unverified == 3
    assert capped.verification.resolved == (3 if fallback == "ROBUST" else 0)


def test_the_new_options_are_checked() -> None:
    assert SolverOptions(fallback_hpipm_mode="none").fallback_hpipm_mode is None  # (TOML has no null)
    with pytest.raises(ValueError, match="fallback_hpipm_mode: 'FAST' is not supported"):
        SolverOptions(fallback_hpipm_mode="FAST")
    with pytest.raises(ValueError, match="merge_soft_pairs: expected true or false, got 1"):
        SolverOptions(merge_soft_pairs=1)  # type: ignore[arg-type]


def test_qp_mu0_reaches_hpipm_and_keeps_the_solutions(theta: np.ndarray) -> None:
    # HPIPM's initial barrier parameter: fewer QP iterations on the LTI problem, the same
    # solutions and sensitivities within the QP tolerance, and the fallback solver untouched
    fns = lti_mpc().build()
    default = MPC(fns, SolverOptions(hpipm_mode="SPEED", qp_max_iter=30), theta=theta)
    tuned = MPC(fns, SolverOptions(hpipm_mode="SPEED", qp_max_iter=30, qp_mu0=100.0), theta=theta)
    rng = np.random.default_rng(3)
    iters = {id(default): 0, id(tuned): 0}
    for s in rng.uniform([-0.3, -1.0], [1.3, 1.0], size=(40, 2)):
        for a in (None, np.array([rng.uniform(-1.0, 1.0)])):
            sols = []
            for mpc in (default, tuned):
                sol = mpc.value(s) if a is None else mpc.q_value(s, a)
                assert sol.success
                iters[id(mpc)] += int(mpc._instance("V" if a is None else "Q").detailed_stats()["qp_iter"])
                sols.append(sol)
            d, t = sols
            assert np.allclose(t.u0, d.u0, atol=1e-6) and abs(t.value - d.value) < 1e-6
            assert np.allclose(tuned.sensitivities.grad_theta(t), default.sensitivities.grad_theta(d),
                               atol=1e-5)
    assert iters[id(tuned)] < 0.85 * iters[id(default)], iters


def test_q_and_value_solves_as_q_value_then_value(theta: np.ndarray) -> None:
    # the Q-learning step's pair of solves in one call: the same solutions, fallbacks included
    fns = lti_mpc().build()
    opts = SolverOptions(hpipm_mode="SPEED", qp_max_iter=4)  # (some QPs stop at the limit: solved again)
    pair, apart = MPC(fns, opts, theta=theta), MPC(fns, opts, theta=theta)
    rng = np.random.default_rng(5)
    for s, a, s_next in zip(rng.uniform(-1.0, 1.0, (30, 2)), rng.uniform(-1.0, 1.0, (30, 1)),
                            rng.uniform(-1.0, 1.0, (30, 2)), strict=True):
        q, v = pair.q_and_value(s, a, s_next)
        q2, v2 = apart.q_value(s, a), apart.value(s_next)
        for x, y in ((q, q2), (v, v2)):
            assert x.status == y.status and x.value == y.value and np.array_equal(x.iterate, y.iterate)
        assert q.a is not None and v.a is None and np.array_equal(v.s, s_next)
    assert pair.verification == apart.verification and pair.verification.resolved > 0


def test_the_solves_iterate_is_acados_own(theta: np.ndarray) -> None:
    # solve_full reads the iterate straight from acados' vectors; acados' ocp_nlp_out_get path
    # (rlmpc_get_iterate) must see the same numbers, stage by stage and field by field; and a solve
    # without its cost (the DPG step's) reports the cost when asked for it
    for merge in (True, False):
        mpc = MPC(lti_mpc().build(), SolverOptions(merge_soft_pairs=merge), theta=theta)
        for s in STATES:
            for kind, a in (("V", None), ("Q", np.array([0.3]))):
                sol = mpc.value(s) if a is None else mpc.q_value(s, a)
                inst = mpc._instance(kind)
                raw = inst._iterate.copy()
                assert np.array_equal(raw, inst.get_iterate()) and np.any(raw != 0.0)
                inst._load(s, *((mpc._lbu, mpc._ubu) if a is None else (a, a)))
                inst._lib.rlmpc_solve_policy(inst._handle, inst._p_x0, inst._p_lbu0, inst._p_ubu0,
                                             inst._p_stats, inst._p_iterate, inst._trap_fd)
                assert np.isnan(inst._stats[3])
                stats, _ = inst._result()
                assert abs(stats.cost - sol.value) <= 1e-9 * abs(sol.value)  # (solved again: warm)
