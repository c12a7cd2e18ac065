"""rlmpc_get_plan of the generated linear MCU solver against acados' predicted trajectory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.mcu.generate import generate
from rlmpc.codegen.mcu.host_check import REFERENCE_OPTIONS, HostSolver, plan_activity, random_states
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.problems import lti_mpc
from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

TOL = {"float64": 1e-6, "float32": 1e-3}


@pytest.fixture(scope="module")
def cartpole() -> ProblemFunctions:
    return linear_cartpole_mpc().build()


def _solver(fns: ProblemFunctions, out: Path, precision: str) -> Iterator[HostSolver]:
    gen = generate(fns, out / precision, precision=precision)
    with HostSolver(build_host_harness(gen, out / precision / "harness")) as solver:
        yield solver


@pytest.fixture(scope="module", params=sorted(TOL))
def solver(request: pytest.FixtureRequest, cartpole: ProblemFunctions,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, HostSolver]]:
    for s in _solver(cartpole, tmp_path_factory.mktemp("plan"), request.param):
        yield request.param, s


def _plan_errors(fns: ProblemFunctions, solver: HostSolver, states: np.ndarray,
                 reset: bool) -> tuple[float, int, int]:
    """Max |plan - acados plan| over the states; how many had active input/state constraints."""
    th = fns.theta.flatten(None)
    p = fns.params.flatten(None, check_bounds=False)
    mpc = MPC(fns, REFERENCE_OPTIONS, theta=th, p=p)
    worst, n_input, n_state = 0.0, 0, 0
    for s in states:
        mpc.reset()
        ref = mpc.value(s)
        if reset:
            solver.reset()
        assert solver.solve(s).status > 0
        x, u = solver.plan(fns.nx, fns.nu, fns.horizon)
        assert x.shape == ref.x.shape and u.shape == ref.u.shape
        assert np.array_equal(x[0], s)  # x[0] is the x0 of the solve (exact for float64 inputs)
        worst = max(worst, float(np.max(np.abs(x - ref.x))), float(np.max(np.abs(u - ref.u))))
        act = plan_activity(fns, th, p, ref.x, ref.u)
        n_input += act.input_active
        n_state += act.state_active
    return worst, n_input, n_state


@pytest.mark.parametrize("reset", [False, True], ids=["warm", "cold"])
def test_plan_matches_acados(cartpole: ProblemFunctions, solver: tuple[str, HostSolver],
                             reset: bool) -> None:
    precision, sv = solver
    states = random_states(cartpole, 16, seed=3)
    if precision == "float32":  # x[0] is then the float32 rounding of the state
        states = states.astype(np.float32).astype(float)
    worst, n_input, n_state = _plan_errors(cartpole, sv, states, reset)
    assert n_input >= 1 and n_state >= 1  # the plans exercise both kinds of constraints
    assert worst <= TOL[precision], f"{precision}: max plan error {worst:.2e}"


def test_plan_before_a_solve_after_reset_and_after_a_failure(tmp_path: Path) -> None:
    fns = lti_mpc().build()
    n_x, n_u = (fns.horizon + 1) * fns.nx, fns.horizon * fns.nu
    for sv in _solver(fns, tmp_path, "float64"):
        x, u = sv.plan(fns.nx, fns.nu, fns.horizon)
        assert x.size == n_x and u.size == n_u and not np.any(x) and not np.any(u)
        good = np.array([0.5, -0.3])
        assert sv.solve(good).status > 0
        x1, u1 = sv.plan(fns.nx, fns.nu, fns.horizon)
        assert np.array_equal(x1[0], good) and np.any(u1)
        assert sv.solve(np.array([np.nan, 0.0])).status == -100  # keeps the last plan
        x2, u2 = sv.plan(fns.nx, fns.nu, fns.horizon)
        assert np.array_equal(x1, x2) and np.array_equal(u1, u2)
        sv.reset()
        x3, u3 = sv.plan(fns.nx, fns.nu, fns.horizon)
        assert not np.any(x3) and not np.any(u3)


def test_lti_plan_matches_acados(tmp_path: Path) -> None:
    fns = lti_mpc().build()
    for sv in _solver(fns, tmp_path, "float64"):
        worst, _, _ = _plan_errors(fns, sv, random_states(fns, 8, seed=5), reset=False)
        assert worst <= TOL["float64"], f"max plan error {worst:.2e}"
