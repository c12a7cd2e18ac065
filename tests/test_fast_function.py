"""FastFunction evaluates CasADi functions through buffers with the same results."""

from __future__ import annotations

import casadi as cs
import numpy as np
import pytest

from rlmpc.toolkit.fast_function import FastFunction


def test_matches_plain_casadi_call_for_vectors_and_matrices() -> None:
    x = cs.SX.sym("x", 3)
    y = cs.SX.sym("y", 2, 2)
    f = cs.Function("f", [x, y], [cs.sin(x) * x[0], cs.jacobian(cs.sin(x) * x[1], x),
                                  y @ y.T, cs.sum1(x)])
    fast = FastFunction(f)
    rng = np.random.default_rng(1)
    for _ in range(3):
        xv, yv = rng.normal(size=3), rng.normal(size=(2, 2))
        expected = [np.asarray(o) for o in f(xv, yv)]
        got = fast(xv, yv)
        np.testing.assert_allclose(got[0], expected[0].ravel())
        np.testing.assert_allclose(got[1], expected[1])  # sparse Jacobian, densified
        np.testing.assert_allclose(got[2], expected[2])
        assert got[3].shape == (1,)


def test_rejects_wrong_argument_count_and_mx() -> None:
    x = cs.SX.sym("x")
    fast = FastFunction(cs.Function("g", [x], [x**2]))
    with pytest.raises(ValueError, match="expected 1 arguments, got 2"):
        fast(np.ones(1), np.ones(1))
    m = cs.MX.sym("m")
    with pytest.raises(ValueError, match="expected an SX function"):
        FastFunction(cs.Function("h", [m], [m**2]))
