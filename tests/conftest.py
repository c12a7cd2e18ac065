"""Shared fixtures: the two reference problems, built once per session (cached on disk)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

from rlmpc.toolkit import MPC, SolverOptions
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc

# CI runs the same examples every time (a red CI then means a regression, not a new random
# draw); local runs keep exploring, and failures found there are kept in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# tight tolerances so that finite differences of the value functions are meaningful
# (1e-8 is not enough for the cart-pole: near the origin a warm-started SQP can stop before it
# moves by a finite-difference step, 2e-8 in u0)
ACCURATE_LTI = SolverOptions(tol=1e-9)
ACCURATE_CARTPOLE = SolverOptions(tol=1e-9)


@pytest.fixture(scope="session")
def lti() -> MPC:
    return MPC(lti_mpc(), ACCURATE_LTI)


@pytest.fixture(scope="session")
def cartpole() -> MPC:
    return MPC(cartpole_mpc(), ACCURATE_CARTPOLE)


@pytest.fixture(params=["lti", "cartpole"])
def problem(request: pytest.FixtureRequest) -> MPC:
    mpc: MPC = request.getfixturevalue(request.param)
    return mpc


# states where (lti) the soft state bound, the input bound, or nothing is active;
# (cart-pole) the force saturates, the cart limit is active, or nothing is active
STATES = {
    "lti": [np.array([0.0, 0.15]), np.array([0.9, 0.9]), np.array([0.5, -0.3]),
            np.array([0.05, -0.6])],
    "cartpole": [np.array([0.0, 0.05, 0.0, 0.0]), np.array([0.3, 0.25, 0.0, 0.0]),
                 np.array([0.9, 0.0, 0.5, 0.0]), np.array([-0.2, -0.1, 0.1, 0.2])],
}
ACTIONS = {"lti": [np.array([0.3]), np.array([-1.0])],
           "cartpole": [np.array([1.0]), np.array([-4.0])]}


def problem_name(mpc: MPC) -> str:
    return mpc.fns.name
