"""Configurable plants: model, noise and start distribution as parameters, strictly typed."""

from __future__ import annotations

import numpy as np
import pytest

from rlmpc.toolkit.envs import CartPole, LtiGrosZanon
from rlmpc.toolkit.envs.cartpole_incline import CartPoleIncline
from rlmpc.toolkit.registry import make_env


def test_lti_model_and_noise_per_state_are_used() -> None:
    A = [[1.0, 0.1], [0.0, 0.9]]
    env = LtiGrosZanon(A=A, B=[0.0, 0.5], noise=[[0.0, 0.0], [0.2, 0.2]], x0=[0.1, 0.2])
    x, _ = env.reset(seed=0)
    x1, *_ = env.step(np.array([1.0]))
    assert x1 == pytest.approx(np.array(A) @ x + np.array([0.0, 0.5]) + np.array([0.0, 0.2]))


def test_lti_default_noise_stream_unchanged() -> None:
    """noise = true keeps e₁ ~ U(−0.1, 0) drawn as before (one draw per step)."""
    env = LtiGrosZanon()
    env.reset(seed=3)
    e = [env.step(np.zeros(1))[4]["noise"] for _ in range(5)]
    rng = np.random.default_rng(3)
    assert e == pytest.approx([rng.uniform(-0.1, 0.0) for _ in range(5)])


def test_lti_start_distribution() -> None:
    env = LtiGrosZanon(x0=[0.5, 0.0], x0_spread=[0.1, 0.0])
    starts = np.array([env.reset(seed=s)[0] for s in range(20)])
    assert np.all(np.abs(starts[:, 0] - 0.5) <= 0.1) and np.ptp(starts[:, 0]) > 0.05
    assert np.all(starts[:, 1] == 0.0)


@pytest.mark.parametrize("params, needle", [
    ({"noise": [0.0, 0.1]}, "noise as true, false or one [low, high] pair per state"),
    ({"noise": 1}, "noise as true, false"),
    ({"noise": [[0.1, 0.0], [0.0, 0.0]]}, "low ≤ high"),
    ({"A": [[1, 0], [0, True]]}, "A of numbers"),
    ({"A": [[1, 0, 0], [0, 1, 0]]}, "A of shape (2, 2)"),
    ({"B": "0.1"}, "B of numbers"),
    ({"x0": [0.0, "1"]}, "x0" if False else "a state of numbers"),
])
def test_lti_wrong_values_refused(params: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        make_env("LtiGrosZanon", params)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_unknown_key_lists_accepted_keys() -> None:
    with pytest.raises(ValueError, match=r"no parameter 'noise_range'; accepted keys: x0, noise, A, B, x0_spread"):
        make_env("LtiGrosZanon", {"noise_range": [0.0, 0.1]})
    with pytest.raises(ValueError, match=r"accepted keys: m_cart, m_pole, length, slope, friction"):
        make_env("CartPoleIncline", {"mass": 1.0})


@pytest.mark.parametrize("params", [{"m_cart": True}, {"length": "0.8"}, {"substeps": 4.0},
                                    {"friction": -0.1}, {"init_half_width": [0.1, 0.1]}])
def test_cartpole_wrong_values_refused(params: dict) -> None:
    with pytest.raises(ValueError, match="CartPole: expected"):
        CartPole(**params)


def test_cartpole_parameters_change_the_physics() -> None:
    a, b = CartPole(), CartPole(m_pole=0.5, length=0.4, friction=0.3, init_half_width=[0, 0, 0, 0])
    start = np.array([0.0, 0.1, 0.0, 0.0])
    xa = a.reset(seed=0, options={"state": start})[0]
    xb = b.reset(seed=0, options={"state": start})[0]
    assert np.all(b.reset(seed=1)[0] == 0.0)  # zero spread: the start is x_eq
    assert not np.allclose(a.step(np.ones(1))[0], b.step(np.ones(1))[0]) and np.all(xa == xb)
    assert CartPoleIncline(slope=0.2).x_eq[1] == pytest.approx(-0.2)
