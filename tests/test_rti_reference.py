"""The workstation reference of an RTI device (`rlmpc hil` on a real-time-iteration bundle) starts the
step after a failed one as the firmware does: from the rollout of the fallback input, iterated as a
cold start (the firmware since session 9; before, both restarted from a zero guess)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rlmpc.hil import rti_reference
from rlmpc.hil.rti_reference import FallbackInput, RtiReference
from rlmpc.toolkit.registry import make_problem


class FakeMpc:
    """Stands in for the acados MPC: scripted successes, records the guesses it is given."""

    def __init__(self, fns: Any, options: Any, theta: Any) -> None:
        self.theta = np.asarray(theta, dtype=float)
        self.p = np.zeros(fns.np)
        self.fail_next = False
        self.guesses: list[tuple[np.ndarray, np.ndarray]] = []
        self.calls = 0

    def value(self, x: np.ndarray) -> Any:
        self.calls += 1
        ok, self.fail_next = not self.fail_next, False
        return SimpleNamespace(success=ok, u0=np.zeros(1))

    def reset(self) -> None:
        pass

    def set_primal_guess(self, x: np.ndarray, u: np.ndarray) -> None:
        self.guesses.append((x.copy(), u.copy()))

    def shift_warm_start(self) -> None:
        pass


MANIFEST = {"fallback": {"gain": True, "K": [[2.0, 0.5]], "operating_point": {"x": [0.0, 0.0], "u": [0.0]}},
            "input_bounds": {"lb": [-2.0], "ub": [2.0]}}


@pytest.fixture
def reference(monkeypatch: pytest.MonkeyPatch) -> RtiReference:
    monkeypatch.setattr(rti_reference, "MPC", FakeMpc)
    fns = make_problem("pendulum", {}).build()
    return RtiReference(fns, fns.theta.default(), shifted=False, startup_iterations=3,
                        fallback=FallbackInput.from_manifest(MANIFEST))


def test_the_rollout_is_the_model_under_the_clipped_fallback_input(reference: RtiReference) -> None:
    x0 = np.array([2.5, -1.0])
    xs, us = reference.rollout(x0)
    fns = reference.fns
    assert xs.shape == (fns.horizon + 1, fns.nx) and us.shape == (fns.horizon, fns.nu)
    assert np.array_equal(xs[0], x0)
    for k in range(fns.horizon):
        u = np.clip(-np.array([[2.0, 0.5]]) @ xs[k], -2.0, 2.0)
        assert np.array_equal(us[k], u)
        step = np.asarray(fns.dynamics(xs[k], us[k], reference.theta, reference.rti.p)).ravel()
        assert np.allclose(xs[k + 1], step, rtol=0, atol=1e-14)
    assert us[0][0] == -2.0  # (clipped: -5.0 - 0.5 * -1.0 is below the bound)


def test_after_a_failed_step_the_next_starts_cold_from_the_rollout(reference: RtiReference) -> None:
    rti: Any = reference.rti
    x1, x2 = np.array([0.1, 0.0]), np.array([2.0, 1.0])
    reference.value(x1)  # start-up: cold, from zero (no guess given), 3 iterations
    assert rti.calls == 3 and not rti.guesses
    rti.fail_next = True
    reference.value(x1)  # fails
    calls = rti.calls
    reference.value(x2)  # cold again, from the rollout at x2
    assert rti.calls - calls == 3
    assert len(rti.guesses) == 1
    xs, us = reference.rollout(x2)
    assert np.array_equal(rti.guesses[0][0], xs) and np.array_equal(rti.guesses[0][1], us)
    rti.fail_next = True
    reference.value(x2)  # fails again; RESET then forgets the rollout: a zero guess, as on the device
    reference.reset()
    reference.value(x1)
    assert len(rti.guesses) == 1


def test_without_a_gain_the_fallback_input_is_zero_clipped() -> None:
    fb = FallbackInput.from_manifest({"fallback": {"gain": False}, "input_bounds": {"lb": [0.5], "ub": [2.0]}})
    assert fb.K is None and np.array_equal(fb(np.array([3.0, 1.0])), [0.5])
