"""Baking θ into the problem (for export) leaves the MPC's answers unchanged."""

from __future__ import annotations

import numpy as np

from rlmpc.toolkit import MPC
from rlmpc.toolkit.problem import fix_theta
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc


def test_fixed_theta_problem_gives_the_same_solution() -> None:
    for fns, s in ((lti_mpc().build(), np.array([0.1, 0.1])),
                   (cartpole_mpc().build(), np.array([0.1, 0.05, 0.0, 0.0]))):
        theta = fns.theta.default() * 1.05
        baked = fix_theta(fns, theta)
        assert baked.ntheta == 0 and baked.problem_hash != fns.problem_hash
        a, b = MPC(fns, theta=theta).value(s), MPC(baked).value(s)
        assert a.value == b.value
        np.testing.assert_array_equal(a.u0, b.u0)
        np.testing.assert_array_equal(a.x, b.x)
