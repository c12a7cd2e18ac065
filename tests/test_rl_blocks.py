"""Building blocks of the RL layer: schedules, exploration, optimisers, replay buffer."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import scipy.optimize

from rlmpc.toolkit.rl.exploration import (
    EpsilonGreedy,
    Gaussian,
    NoExploration,
    OrnsteinUhlenbeck,
    exploration_from_config,
)
from rlmpc.toolkit.rl.optimizers import (
    Adam,
    GradientDescent,
    NewtonMethod,
    Optimizer,
    RMSprop,
    make_positive_definite,
    optimizer_from_config,
    solve_box_qp,
)
from rlmpc.toolkit.rl.replay import ReplayBuffer
from rlmpc.toolkit.rl.schedules import (
    Constant,
    ExponentialDecay,
    LinearDecay,
    StepDecay,
    schedule_from_config,
)


def json_round_trip(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint file gives back (strict JSON: no NaN/inf)."""
    out: dict[str, Any] = json.loads(json.dumps(state, allow_nan=False))
    return out


# ---------------------------------------------------------------- schedules


def test_schedule_values() -> None:
    assert Constant(0.3)(0) == Constant(0.3)(1000) == 0.3
    exp = ExponentialDecay(1.0, 0.5, minimum=0.1)
    assert [exp(k) for k in range(5)] == [1.0, 0.5, 0.25, 0.125, 0.1]
    lin = LinearDecay(1.0, 0.0, steps=4)
    assert [lin(k) for k in (0, 1, 2, 4, 5, 100)] == [1.0, 0.75, 0.5, 0.0, 0.0, 0.0]
    step = StepDecay(2.0, 0.5, every=3)
    assert [step(k) for k in range(7)] == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="k: expected a non-negative integer"):
        exp(-1)


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (0.25, Constant(0.25)),
        (3, Constant(3.0)),
        ({"type": "constant", "value": 2}, Constant(2.0)),
        ({"type": "exponential", "initial": 1, "rate": 0.9}, ExponentialDecay(1.0, 0.9, 0.0)),
        ({"type": "linear", "initial": 1, "final": 0.1, "steps": 10}, LinearDecay(1.0, 0.1, 10)),
        ({"type": "step", "initial": 1, "factor": 0.1, "every": 100}, StepDecay(1.0, 0.1, 100)),
    ],
)
def test_schedule_from_config(cfg: Any, expected: Any) -> None:
    sched = schedule_from_config(cfg, "x")
    assert sched == expected
    assert schedule_from_config(sched.to_config(), "x") == sched


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"type": "cosine"}, "agent.lr.type: expected one of ['constant'"),
        ({"initial": 1.0}, "agent.lr.type: expected one of"),
        ({"type": "exponential", "initial": 1.0}, "agent.lr: missing key(s) ['rate']"),
        ({"type": "constant", "value": 1, "rate": 2}, "agent.lr: unknown key(s) ['rate']"),
        ({"type": "exponential", "initial": 1.0, "rate": 1.5}, "agent.lr.rate: expected a number in (0, 1]"),
        ({"type": "exponential", "initial": "1", "rate": 0.5}, "agent.lr.initial: expected a finite number"),
        ({"type": "linear", "initial": 1, "final": 0, "steps": 2.5}, "agent.lr.steps: expected an integer"),
        ({"type": "step", "initial": 1, "factor": 0, "every": 2}, "agent.lr.factor: expected a positive"),
        ("0.1", "agent.lr: expected a number or a schedule dict"),
        (True, "agent.lr: expected a number or a schedule dict"),
        (float("inf"), "agent.lr: expected a finite number"),
    ],
)
def test_schedule_config_errors(cfg: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        schedule_from_config(cfg, "agent.lr")


# ---------------------------------------------------------------- exploration


def test_epsilon_greedy_frequency_and_box() -> None:
    n, eps = 4000, 0.3
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    expl = EpsilonGreedy(eps, low, high)
    rng = np.random.default_rng(0)
    action = np.array([5.0, 5.0])  # outside the box: replaced iff changed
    out = np.array([expl.perturb(action, rng, k) for k in range(n)])
    replaced = (out != action).any(axis=1)
    sigma = np.sqrt(n * eps * (1 - eps))
    assert abs(replaced.sum() - n * eps) < 4 * sigma
    samples = out[replaced]
    assert (samples >= low).all() and (samples <= high).all()
    np.testing.assert_allclose(samples.mean(axis=0), (low + high) / 2, atol=0.05)
    assert np.array_equal(out[~replaced], np.broadcast_to(action, out[~replaced].shape))


def test_epsilon_greedy_schedule_and_validation() -> None:
    expl = EpsilonGreedy(LinearDecay(1.0, 0.0, 10), [-1.0], [1.0])
    rng = np.random.default_rng(1)
    assert expl.perturb([5.0], rng, 0)[0] != 5.0  # ε(0) = 1: always replaced
    assert all(expl.perturb([5.0], rng, k)[0] == 5.0 for k in range(10, 200))  # ε = 0 afterwards
    with pytest.raises(ValueError, match="epsilon: expected a probability"):
        EpsilonGreedy(1.5, [-1.0], [1.0]).perturb([0.0], rng, 0)
    with pytest.raises(ValueError, match="low: expected finite numbers"):
        EpsilonGreedy(0.1, [-np.inf], [1.0])
    with pytest.raises(ValueError, match="high: expected high >= low"):
        EpsilonGreedy(0.1, [1.0], [0.0])
    with pytest.raises(ValueError, match="action: expected 1 entries"):
        expl.perturb([0.0, 0.0], rng, 0)


def test_gaussian_statistics() -> None:
    expl = Gaussian(ExponentialDecay(0.5, 1.0), scale=[1.0, 2.0])
    rng = np.random.default_rng(2)
    action = np.array([0.3, -1.0])
    out = np.array([expl.perturb(action, rng, k) for k in range(20000)])
    np.testing.assert_allclose(out.mean(axis=0), action, atol=0.03)
    np.testing.assert_allclose(out.std(axis=0), [0.5, 1.0], rtol=0.03)
    # the input is not modified, and zero std leaves the action unchanged
    assert np.array_equal(action, [0.3, -1.0])
    assert np.array_equal(Gaussian(0.0).perturb(action, rng, 0), action)


def test_ou_mean_reversion_and_reset() -> None:
    theta, dt = 0.2, 0.5
    ou = OrnsteinUhlenbeck(0.0, theta=theta, dt=dt)
    rng = np.random.default_rng(3)
    ou.load_state_dict({"type": "ou", "noise": [4.0, -2.0]})
    for k in range(10):
        out = ou.perturb(np.zeros(2), rng, k)
    np.testing.assert_allclose(out, np.array([4.0, -2.0]) * (1 - theta * dt) ** 10, rtol=1e-12)
    ou.reset()
    assert ou.noise is None
    assert np.array_equal(ou.perturb([1.0, 1.0], rng, 0), [1.0, 1.0])  # restarts from zero noise

    # with noise: zero mean, stationary variance σ² dt / (1 − (1 − θ dt)²), correlated in time
    sigma = 0.3
    ou = OrnsteinUhlenbeck(sigma, theta=theta, dt=dt, scale=[2.0])
    xs = np.array([ou.perturb([0.0], rng, k)[0] for k in range(40000)])[1000:] / 2.0
    a = 1 - theta * dt
    assert abs(xs.mean()) < 0.1
    np.testing.assert_allclose(xs.var(), sigma**2 * dt / (1 - a**2), rtol=0.1)
    np.testing.assert_allclose(np.corrcoef(xs[:-1], xs[1:])[0, 1], a, atol=0.03)


@pytest.mark.parametrize(
    "make",
    [
        lambda: NoExploration(),
        lambda: EpsilonGreedy(0.5, [-1.0, -1.0], [1.0, 1.0]),
        lambda: Gaussian(0.2, scale=[1.0, 3.0]),
        lambda: OrnsteinUhlenbeck(ExponentialDecay(0.3, 0.99)),
    ],
)
def test_exploration_determinism_and_state_round_trip(make: Any) -> None:
    action = np.array([0.1, -0.2])

    def run(expl: Any, rng: np.random.Generator, ks: range) -> np.ndarray:
        return np.array([expl.perturb(action, rng, k) for k in ks])

    a, b = make(), make()
    first, second = run(a, np.random.default_rng(7), range(20)), run(b, np.random.default_rng(7), range(20))
    assert np.array_equal(first, second)

    # checkpoint mid-run (exploration state + generator state) and resume in fresh objects
    expl, rng = make(), np.random.default_rng(11)
    run(expl, rng, range(15))
    state = json_round_trip(expl.state_dict())
    rng_state = json_round_trip(rng.bit_generator.state)
    expected = run(expl, rng, range(15, 30))
    resumed, rng2 = make(), np.random.default_rng()
    resumed.load_state_dict(state)
    rng2.bit_generator.state = rng_state
    assert np.array_equal(run(resumed, rng2, range(15, 30)), expected)
    if isinstance(expl, NoExploration):
        assert np.array_equal(expected, np.broadcast_to(action, expected.shape))
    else:
        assert not np.array_equal(expected[0], expected[1])


def test_exploration_from_config() -> None:
    low, high = np.array([-1.0, -2.0]), np.array([1.0, 2.0])
    assert isinstance(exploration_from_config(None, low, high), NoExploration)
    assert isinstance(exploration_from_config({"type": "none"}, low, high), NoExploration)
    eg = exploration_from_config({"type": "epsilon_greedy", "epsilon": 0.1}, low, high)
    assert isinstance(eg, EpsilonGreedy) and np.array_equal(eg.high, high)
    eg = exploration_from_config(
        {"type": "epsilon_greedy", "epsilon": {"type": "exponential", "initial": 0.5, "rate": 0.9},
         "low": -0.5, "high": [0.5, 0.7]},
        [-np.inf, -np.inf], [np.inf, np.inf],
    )
    assert isinstance(eg, EpsilonGreedy)
    assert np.array_equal(eg.low, [-0.5, -0.5]) and eg.epsilon == ExponentialDecay(0.5, 0.9)
    g = exploration_from_config({"type": "gaussian", "std": 0.1, "scale": [1.0, 2.0]}, low, high)
    assert isinstance(g, Gaussian) and np.array_equal(g.scale, [1.0, 2.0])  # type: ignore[arg-type]
    ou = exploration_from_config({"type": "ou", "sigma": 0.2, "theta": 0.3, "dt": 0.1}, low, high)
    assert isinstance(ou, OrnsteinUhlenbeck) and (ou.theta, ou.dt) == (0.3, 0.1)


@pytest.mark.parametrize(
    "cfg, low, message",
    [
        ({"type": "boltzmann"}, -1.0, "agent.exploration.type: expected one of"),
        ("gaussian", -1.0, "agent.exploration: expected a dict"),
        ({"type": "gaussian"}, -1.0, "agent.exploration: missing key(s) ['std']"),
        ({"type": "gaussian", "std": 0.1, "sigma": 1}, -1.0, "agent.exploration: unknown key(s) ['sigma']"),
        ({"type": "gaussian", "std": {"type": "exponential"}}, -1.0, "agent.exploration.std: missing key"),
        ({"type": "gaussian", "std": 0.1, "scale": [1, 2, 3]}, -1.0, "agent.exploration.scale: expected"),
        ({"type": "gaussian", "std": 0.1, "scale": -1}, -1.0, "agent.exploration.scale: expected non-neg"),
        ({"type": "epsilon_greedy", "epsilon": 0.1}, -np.inf, "agent.exploration.low: expected finite"),
        ({"type": "epsilon_greedy", "epsilon": 0.1, "low": 2.0}, -1.0, "agent.exploration.high: expected"),
        ({"type": "ou", "sigma": 0.1, "theta": 2.0}, -1.0, "agent.exploration.theta: expected theta·dt"),
        ({"type": "ou", "sigma": 0.1, "dt": 0}, -1.0, "agent.exploration.dt: expected a positive"),
    ],
)
def test_exploration_config_errors(cfg: Any, low: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        exploration_from_config(cfg, [low, low], [1.0, 1.0])


def test_exploration_state_type_mismatch() -> None:
    with pytest.raises(ValueError, match=r"state_dict\.type: expected 'ou', got 'gaussian'"):
        OrnsteinUhlenbeck(0.1).load_state_dict(Gaussian(0.1).state_dict())


# ---------------------------------------------------------------- optimisers

Q = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])
THETA_STAR = np.array([1.0, -2.0, 0.5])
UNBOUNDED = (np.full(3, -np.inf), np.full(3, np.inf))


def quadratic_grad(theta: np.ndarray) -> np.ndarray:
    return Q @ (theta - THETA_STAR)


@pytest.mark.parametrize(
    "opt, iters, tol",
    [
        (GradientDescent(0.3, *UNBOUNDED), 200, 1e-8),
        (Adam(ExponentialDecay(0.1, 0.995, minimum=1e-4), *UNBOUNDED), 2000, 1e-3),
        (RMSprop(ExponentialDecay(0.05, 0.995, minimum=1e-4), *UNBOUNDED), 2000, 1e-3),
    ],
)
def test_first_order_minimise_quadratic(opt: Optimizer, iters: int, tol: float) -> None:
    theta = np.zeros(3)
    for _ in range(iters):
        theta = opt.step(theta, quadratic_grad(theta))
    assert opt.k == iters
    np.testing.assert_allclose(theta, THETA_STAR, atol=tol)


def test_first_steps_of_adam_and_rmsprop() -> None:
    g = np.array([1e-3, -5.0, 200.0])
    # bias correction: Adam's first step is lr·sign(g) whatever the gradient's magnitude
    np.testing.assert_allclose(Adam(0.1, *UNBOUNDED).step(np.zeros(3), g), -0.1 * np.sign(g), rtol=1e-4)
    adam = Adam(0.1, *UNBOUNDED, beta1=0.5, beta2=0.5)
    theta = adam.step(np.zeros(3), g)
    m, v = 0.5 * 0.5 * g + 0.5 * 2 * g, 0.5 * 0.5 * g**2 + 0.5 * (2 * g) ** 2
    expected = theta - 0.1 * (m / 0.75) / (np.sqrt(v / 0.75) + 1e-8)
    np.testing.assert_allclose(adam.step(theta, 2 * g), expected, rtol=1e-12)
    # RMSprop: v = (1 − decay) g² after one step
    np.testing.assert_allclose(
        RMSprop(0.1, *UNBOUNDED, decay=0.9).step(np.zeros(3), g), -0.1 * np.sign(g) / np.sqrt(0.1), rtol=1e-4
    )


def test_gradient_descent_uses_schedule_and_bounds() -> None:
    opt = GradientDescent(StepDecay(1.0, 0.5, every=1), [-1.0, 0.0], [1.0, 10.0])
    theta = opt.step([0.0, 5.0], [-0.25, 1.0])  # lr(0) = 1
    assert np.array_equal(theta, [0.25, 4.0])
    theta = opt.step(theta, [-0.5, 1.0])  # lr(1) = 0.5
    assert np.array_equal(theta, [0.5, 3.5])
    theta = opt.step(theta, [-100.0, 100.0])  # lr(2) = 0.25: both clipped to the bounds
    assert np.array_equal(theta, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"theta: expected values within \[lb, ub\]"):
        opt.step([2.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="grad: expected finite numbers"):
        opt.step([0.0, 0.0], [np.nan, 0.0])
    with pytest.raises(ValueError, match="learning_rate: expected a non-negative value"):
        GradientDescent(-0.1, [0.0], [1.0]).step([0.5], [1.0])


def test_newton_one_step_without_bounds() -> None:
    theta0 = np.array([4.0, 1.0, -3.0])
    exact = NewtonMethod(1.0, *UNBOUNDED, damping=0.0).step(theta0, quadratic_grad(theta0), Q)
    np.testing.assert_allclose(exact, THETA_STAR, rtol=0, atol=1e-12)
    damped = NewtonMethod(1.0, *UNBOUNDED).step(theta0, quadratic_grad(theta0), Q)
    np.testing.assert_allclose(damped, THETA_STAR, rtol=0, atol=1e-5)
    half = NewtonMethod(0.5, *UNBOUNDED, damping=0.0).step(theta0, quadratic_grad(theta0), Q)
    np.testing.assert_allclose(half, (theta0 + THETA_STAR) / 2, atol=1e-12)
    with pytest.raises(ValueError, match="hessian: the Newton method needs a Hessian"):
        NewtonMethod(1.0, *UNBOUNDED).step(theta0, quadratic_grad(theta0))
    with pytest.raises(ValueError, match=r"hessian: expected shape \(3, 3\)"):
        NewtonMethod(1.0, *UNBOUNDED).step(theta0, quadratic_grad(theta0), np.eye(2))


def test_make_positive_definite() -> None:
    H = np.array([[1.0, 3.0, 0.0], [1.0, -2.0, 0.0], [0.0, 0.0, 5.0]])  # non-symmetric, indefinite
    Hpd = make_positive_definite(H, 1e-3)
    assert np.array_equal(Hpd, Hpd.T)
    eig = np.linalg.eigvalsh(Hpd)
    assert eig.min() == pytest.approx(1e-3, abs=1e-9)
    np.testing.assert_allclose(Hpd - (H + H.T) / 2, (Hpd[0, 0] - 1.0) * np.eye(3))
    assert np.array_equal(make_positive_definite(Q, 0.0), Q)  # already positive definite: unchanged
    assert np.linalg.eigvalsh(make_positive_definite(np.zeros((2, 2)), 0.0)).min() > 0


def assert_box_qp_kkt(H: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, d: np.ndarray) -> None:
    """KKT conditions of min ½dᵀHd + cᵀd s.t. lo <= d <= hi: r = Hd + c is 0 / >= 0 / <= 0."""
    tol = 1e-9 * (1 + np.abs(H).max() + np.abs(c).max())
    assert (d >= lo).all() and (d <= hi).all()
    r = H @ d + c
    at_lo, at_hi = np.isclose(d, lo, rtol=0, atol=1e-12), np.isclose(d, hi, rtol=0, atol=1e-12)
    free = ~at_lo & ~at_hi
    assert np.abs(r[free]).max(initial=0) < tol
    assert (r[at_lo & ~at_hi] > -tol).all()
    assert (r[at_hi & ~at_lo] < tol).all()


def brute_force_box_qp(H: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Enumerate active sets (each variable free, at lo or at hi); return the feasible KKT point."""
    n = c.size
    for pattern in itertools.product((0, 1, 2), repeat=n):
        d = np.where(np.array(pattern) == 1, lo, np.where(np.array(pattern) == 2, hi, 0.0))
        if not np.isfinite(d).all():
            continue
        free = np.array(pattern) == 0
        if free.any():
            d[free] = np.linalg.solve(H[np.ix_(free, free)], -(c[free] + H[np.ix_(free, ~free)] @ d[~free]))
        r = H @ d + c
        feasible = (d >= lo - 1e-12).all() and (d <= hi + 1e-12).all()
        pattern_arr = np.array(pattern)
        if feasible and (r[pattern_arr == 1] >= -1e-10).all() and (r[pattern_arr == 2] <= 1e-10).all():
            return d
    raise AssertionError("no KKT point")


def test_newton_box_qp_against_scipy_with_active_bound() -> None:
    g = np.array([-6.0, 4.0, -2.0])
    theta = np.array([0.0, 0.0, 0.0])
    lb, ub = np.array([-1.0, -1.0, -5.0]), np.array([1.0, 5.0, 5.0])
    opt = NewtonMethod(1.0, lb, ub, damping=0.0)
    unconstrained = -np.linalg.solve(Q, g)
    assert unconstrained[0] > ub[0] + 0.1  # the upper bound of θ_0 becomes active
    new = opt.step(theta, g, Q)
    assert (new >= lb).all() and (new <= ub).all()
    assert new[0] == ub[0]
    assert_box_qp_kkt(Q, g, lb - theta, ub - theta, new - theta)
    res = scipy.optimize.minimize(
        lambda d: 0.5 * d @ Q @ d + g @ d, np.zeros(3), jac=lambda d: Q @ d + g,
        bounds=list(zip(lb - theta, ub - theta, strict=True)), method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    np.testing.assert_allclose(new - theta, res.x, atol=1e-6)
    np.testing.assert_allclose(new - theta, brute_force_box_qp(Q, g, lb - theta, ub - theta), atol=1e-12)


def test_box_qp_random_against_brute_force() -> None:
    rng = np.random.default_rng(5)
    n_active = 0
    for trial in range(60):
        n = 5
        A = rng.standard_normal((n, n)) * 10 ** rng.uniform(-1.5, 1.5, n)  # badly scaled
        H = A @ A.T + 1e-3 * np.eye(n)
        c = 3 * rng.standard_normal(n)
        lo, hi = -rng.uniform(0, 2, n), rng.uniform(0, 2, n)
        lo[trial % n] = -np.inf  # an unbounded side
        if trial % 5 == 0:
            lo[(trial + 1) % n] = hi[(trial + 1) % n] = 0.3  # a fixed variable
        d = solve_box_qp(H, c, lo, hi)
        ref = brute_force_box_qp(H, c, lo, hi)
        assert 0.5 * d @ H @ d + c @ d <= 0.5 * ref @ H @ ref + c @ ref + 1e-10
        np.testing.assert_allclose(d, ref, atol=1e-7)
        assert_box_qp_kkt(H, c, lo, hi, d)
        n_active += int(np.isclose(d, lo).sum() + np.isclose(d, hi).sum() >= 3)
    assert n_active > 20  # the test exercises several active bounds at once


@pytest.mark.parametrize("cls", [GradientDescent, Adam, RMSprop, NewtonMethod])
def test_max_relative_step(cls: type[Optimizer]) -> None:
    lb, ub = np.array([-10.0, -10.0, 0.0]), np.array([10.0, 10.0, 0.5])
    opt = cls(1.0, lb, ub, max_relative_step=0.2, relative_floor=0.5)
    theta = np.array([4.0, 0.01, 0.45])
    grad = np.array([100.0, -100.0, -100.0])
    for _ in range(3):
        new = opt.step(theta, grad, 0.01 * np.eye(3))
        limit = 0.2 * np.maximum(np.abs(theta), 0.5)
        assert (np.abs(new - theta) <= limit * (1 + 1e-12)).all()
        assert (new >= lb).all() and (new <= ub).all()
        theta = new
    if cls in (GradientDescent, NewtonMethod):  # the first step hits the limits exactly
        opt = cls(1.0, lb, ub, max_relative_step=0.2, relative_floor=0.5)
        np.testing.assert_allclose(opt.step([4.0, 0.01, 0.45], grad, 0.01 * np.eye(3)), [3.2, 0.11, 0.5])


@pytest.mark.parametrize(
    "make",
    [
        lambda: Adam(ExponentialDecay(0.1, 0.9), *UNBOUNDED, max_relative_step=0.5),
        lambda: RMSprop(0.05, *UNBOUNDED),
        lambda: NewtonMethod(LinearDecay(1.0, 0.1, 8), *UNBOUNDED),
    ],
)
def test_optimizer_state_round_trip(make: Any) -> None:
    def run(opt: Optimizer, theta: np.ndarray, n: int) -> list[np.ndarray]:
        out = []
        for _ in range(n):
            theta = opt.step(theta, quadratic_grad(theta), Q)
            out.append(theta)
        return out

    opt = make()
    theta = run(opt, np.zeros(3), 5)[-1]
    state = json_round_trip(opt.state_dict())
    expected = run(opt, theta, 5)
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.k == 5
    got = run(resumed, theta, 5)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    fresh = run(make(), theta, 5)  # without the state the continuation differs
    assert not np.array_equal(fresh[0], expected[0])


def test_optimizer_state_errors() -> None:
    adam = Adam(0.1, *UNBOUNDED)
    with pytest.raises(ValueError, match=r"state_dict\.type: expected 'adam', got 'rmsprop'"):
        adam.load_state_dict(RMSprop(0.1, *UNBOUNDED).state_dict())
    with pytest.raises(ValueError, match=r"state_dict\.m: expected 3 entries"):
        adam.load_state_dict({"type": "adam", "k": 1, "m": [0.0], "v": [0.0, 0.0, 0.0]})


def test_optimizer_from_config() -> None:
    lb, ub = [-1.0, 0.0], [1.0, np.inf]
    opt = optimizer_from_config(
        {"type": "adam", "learning_rate": {"type": "step", "initial": 0.1, "factor": 0.5, "every": 10},
         "max_relative_step": 0.3, "beta2": 0.99},
        lb, ub,
    )
    assert isinstance(opt, Adam)
    assert (opt.lr, opt.max_relative_step, opt.beta1, opt.beta2) == (StepDecay(0.1, 0.5, 10), 0.3, 0.9, 0.99)
    assert np.array_equal(opt.ub, [1.0, np.inf])
    newton = optimizer_from_config({"type": "newton", "learning_rate": 1, "damping": 0.0}, lb, ub)
    assert isinstance(newton, NewtonMethod) and newton.damping == 0.0
    assert isinstance(optimizer_from_config({"type": "sgd", "learning_rate": 0.1}, lb, ub), GradientDescent)
    rms = optimizer_from_config({"type": "rmsprop", "learning_rate": 0.1, "decay": 0.5}, lb, ub)
    assert isinstance(rms, RMSprop) and rms.decay == 0.5


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"type": "lbfgs", "learning_rate": 0.1}, "agent.optimizer.type: expected one of ['sgd'"),
        ({"type": "sgd"}, "agent.optimizer: missing key(s) ['learning_rate']"),
        ({"type": "sgd", "learning_rate": 0.1, "beta1": 0.9}, "agent.optimizer: unknown key(s) ['beta1']"),
        ({"type": "adam", "learning_rate": "fast"}, "agent.optimizer.learning_rate: expected a number"),
        ({"type": "adam", "learning_rate": {"type": "linear", "initial": 1, "final": 0, "steps": 0}},
         "agent.optimizer.learning_rate.steps: expected an integer >= 1"),
        ({"type": "adam", "learning_rate": 0.1, "beta1": 1.0},
         "agent.optimizer.beta1: expected a number in [0, 1)"),
        ({"type": "rmsprop", "learning_rate": 0.1, "eps": 0}, "agent.optimizer.eps: expected a positive"),
        ({"type": "newton", "learning_rate": 0.1, "damping": -1}, "agent.optimizer.damping: expected a non"),
        ({"type": "sgd", "learning_rate": 0.1, "max_relative_step": -0.5},
         "agent.optimizer.max_relative_step: expected a positive"),
        ({"type": "sgd", "learning_rate": 0.1, "relative_floor": None},
         "agent.optimizer.relative_floor: expected a finite number"),
    ],
)
def test_optimizer_config_errors(cfg: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        optimizer_from_config(cfg, [0.0], [1.0])


def test_optimizer_bound_errors() -> None:
    with pytest.raises(ValueError, match="ub: expected lb <= ub"):
        GradientDescent(0.1, [1.0], [0.0])
    with pytest.raises(ValueError, match="ub: expected 1 entries"):
        optimizer_from_config({"type": "sgd", "learning_rate": 0.1}, [0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="lb: expected numbers"):
        GradientDescent(0.1, [np.nan], [1.0])


# ---------------------------------------------------------------- replay buffer


def test_replay_sampling() -> None:
    buf = ReplayBuffer(capacity=10, sample_size=5, include_latest=2)
    assert len(buf) == 0 and buf.sample(np.random.default_rng(0)) == []
    for i in range(3):
        buf.append(i)
    assert sorted(buf.sample(np.random.default_rng(0))) == [0, 1, 2]  # fewer than sample_size
    for i in range(3, 20):
        buf.append(i)
    assert len(buf) == 10 and buf.total_added == 20
    seen: set[int] = set()
    for seed in range(50):
        batch = buf.sample(np.random.default_rng(seed))
        assert batch[:2] == [18, 19] and len(batch) == 5
        assert len(set(batch)) == 5 and all(10 <= x <= 17 for x in batch[2:])
        seen.update(batch[2:])
    assert seen == set(range(10, 18))
    assert buf.sample(np.random.default_rng(3)) == buf.sample(np.random.default_rng(3))
    assert ReplayBuffer(5, 2, 2).sample(np.random.default_rng(0)) == []


@pytest.mark.parametrize(("capacity", "sample_size", "include_latest", "items"),
                         [(1, 1, 0, 1), (3, 2, 1, 2), (5, 1, 0, 3)])
def test_replay_sample_matches_the_generators_choice(capacity: int, sample_size: int, include_latest: int,
                                                     items: int) -> None:
    """Each sample is the latest items plus ``rng.choice`` of the older ones, and the generator ends in
    the same state (also on the shortcut for one older item, where ``choice`` draws nothing)."""
    buf = ReplayBuffer(capacity, sample_size, include_latest)
    for i in range(items):
        buf.append({"i": i})
    rng, ref_rng = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(3):
        got = buf.sample(rng)
        older, latest = list(range(items - include_latest)), list(range(items - include_latest, items))
        drawn = ref_rng.choice(len(older), size=min(sample_size - include_latest, len(older)), replace=False)
        assert [g["i"] for g in got] == latest + [older[j] for j in drawn]
        assert rng.bit_generator.state == ref_rng.bit_generator.state


def test_replay_state_round_trip() -> None:
    buf = ReplayBuffer(capacity=6, sample_size=3, include_latest=1)
    rng = np.random.default_rng(4)
    for i in range(8):
        buf.append({"s": rng.standard_normal(2), "a": np.array([i], dtype=np.int64), "r": float(i),
                    "info": (np.float32(0.5), [1.0, 2.0]), "done": i == 7})
    state = json_round_trip(buf.state_dict())
    loaded = ReplayBuffer(capacity=6, sample_size=3, include_latest=1)
    loaded.load_state_dict(state)
    assert len(loaded) == 6 and loaded.total_added == 8
    before, after = buf.sample(np.random.default_rng(9)), loaded.sample(np.random.default_rng(9))
    for a, b in zip(before, after, strict=True):
        assert isinstance(b["s"], np.ndarray) and b["s"].dtype == np.float64
        assert np.array_equal(a["s"], b["s"]) and b["a"].dtype == np.int64 and np.array_equal(a["a"], b["a"])
        assert (b["r"], b["done"], b["info"]) == (a["r"], a["done"], [0.5, [1.0, 2.0]])
    smaller = ReplayBuffer(capacity=2, sample_size=1)
    smaller.load_state_dict(state)
    assert [item["r"] for item in smaller.sample(np.random.default_rng(0))] in ([6.0], [7.0])
    assert len(smaller) == 2


def test_replay_errors() -> None:
    with pytest.raises(ValueError, match="include_latest: expected at most sample_size"):
        ReplayBuffer(10, 2, 3)
    with pytest.raises(ValueError, match="sample_size: expected at most capacity"):
        ReplayBuffer(2, 3, 0)
    with pytest.raises(ValueError, match="capacity: expected an integer >= 1"):
        ReplayBuffer(0, 1, 0)
    buf = ReplayBuffer(2, 1)
    buf.append({"x": object()})
    with pytest.raises(ValueError, match=r"replay item 0\.x: cannot serialise"):
        buf.state_dict()
    with pytest.raises(ValueError, match=r"state_dict\.items: expected a list"):
        buf.load_state_dict({})
