"""Tests of the plant environments in rlmpc.toolkit.envs."""

from __future__ import annotations

import warnings

import casadi as cs
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlmpc.toolkit.envs import CartPole, GymPlant, LtiGrosZanon, Plant
from rlmpc.toolkit.envs.gym_plant import pendulum_plant
from rlmpc.toolkit.problems.cartpole import CART_LIMIT, FORCE_LIMIT, GRAVITY, cartpole_dynamics
from rlmpc.toolkit.problems.lti import A_TRUE, B_TRUE

# check_env warnings that are consequences of the specified spaces, not contract violations
BENIGN_WARNINGS = (
    "minimum value is -infinity",
    "maximum value is infinity",
    "we recommend using a symmetric and normalized space",
    "Not able to test alternative render modes",
)


def _check_env_strict(env: gym.Env, **kwargs: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, **kwargs)
    bad = [str(w.message) for w in caught
           if not any(benign in str(w.message) for benign in BENIGN_WARNINGS)]
    assert not bad, bad


# ----------------------------------------------------------------------------- common


@pytest.mark.parametrize("make", [LtiGrosZanon, lambda: LtiGrosZanon(noise=False), CartPole,
                                  lambda: CartPole(friction=0.5)])
def test_check_env(make) -> None:
    _check_env_strict(make().unwrapped)


def test_check_env_pendulum_plant() -> None:
    plant = pendulum_plant()
    # Pendulum's alternative render modes need pygame: skip only the render check
    _check_env_strict(plant.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env", [LtiGrosZanon(), CartPole(), pendulum_plant()])
def test_plant_protocol(env) -> None:
    env.reset(seed=0)
    assert isinstance(env, Plant)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert info["cost"] == pytest.approx(-float(reward))
    assert env.state.dtype == np.float64 and env.state.ndim == 1


@pytest.mark.parametrize("env", [LtiGrosZanon(), CartPole()])
def test_float64_shapes(env) -> None:
    obs, info = env.reset(seed=1)
    assert isinstance(info, dict)
    assert obs.dtype == np.float64 and obs.shape == (env.nx,)
    obs, reward, terminated, truncated, info = env.step(np.zeros(1))
    assert obs.dtype == np.float64 and obs.shape == (env.nx,)
    assert isinstance(reward, float) and isinstance(info, dict)
    assert truncated is False and isinstance(terminated, bool)
    np.testing.assert_array_equal(obs, env.state)


# ----------------------------------------------------------------------------- LTI


def _rollout(env: gym.Env, seed: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    states, costs = [obs], []
    for a in actions:
        obs, reward, terminated, _, info = env.step(np.atleast_1d(a))
        states.append(obs)
        costs.append(info["cost"])
        assert info["cost"] == -reward
        if terminated:
            break
    return np.array(states), np.array(costs)


def test_lti_determinism() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=30)
    env = LtiGrosZanon()
    s1, c1 = _rollout(env, 7, actions)
    s2, c2 = _rollout(LtiGrosZanon(), 7, actions)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(c1, c2)
    s3, _ = _rollout(env, 8, actions)
    assert not np.allclose(s1, s3)
    # the difference comes from the noise only, and only enters the first state
    s4, _ = _rollout(LtiGrosZanon(noise=False), 7, actions)
    s5, _ = _rollout(LtiGrosZanon(noise=False), 8, actions)
    np.testing.assert_array_equal(s4, s5)


def test_lti_step_and_cost_by_hand() -> None:
    env = LtiGrosZanon()
    x0, _ = env.reset(seed=3)
    np.testing.assert_array_equal(x0, [0.0, 0.15])
    x = np.array([-0.2, 0.5])  # violates x1 ≥ 0 by 0.2
    env.reset(seed=3, options={"state": x})
    a = 0.3
    x_next, reward, terminated, truncated, info = env.step(np.array([a]))
    # x⁺ = A x + B a + [e; 0], e ∈ [−0.1, 0]
    nominal = A_TRUE @ x + B_TRUE.ravel() * a
    e = x_next - nominal
    assert -0.1 <= e[0] <= 0.0 and e[0] != 0.0
    assert e[1] == pytest.approx(0.0, abs=1e-15)
    assert info["noise"] == pytest.approx(e[0], abs=1e-15)
    # A x + B a by hand: [0.9·(−0.2) + 0.35·0.5 + 0.0813·0.3, 1.1·0.5 + 0.2·0.3]
    np.testing.assert_allclose(nominal, [-0.18 + 0.175 + 0.02439, 0.55 + 0.06], atol=1e-15)
    # cost of the pre-step state: 0.5 (0.04 + 0.25 + 0.5·0.09 + 100·0.2) = 10.1675
    assert info["cost"] == pytest.approx(10.1675, abs=1e-12)
    assert reward == pytest.approx(-10.1675, abs=1e-12)
    assert info["violation"] == pytest.approx(0.2, abs=1e-15)
    assert terminated is False and truncated is False


def test_lti_upper_violation_and_options() -> None:
    env = LtiGrosZanon(x0=[0.5, 1.25], noise=False)
    x, _ = env.reset()
    np.testing.assert_array_equal(x, [0.5, 1.25])
    x_next, _, _, _, info = env.step(np.array([-1.0]))
    np.testing.assert_allclose(x_next, A_TRUE @ x + B_TRUE.ravel() * -1.0, atol=1e-15)
    assert info["violation"] == pytest.approx(0.25)
    assert info["cost"] == pytest.approx(0.5 * (0.25 + 1.5625 + 0.5 + 100 * 0.25))
    with pytest.raises(ValueError):
        env.step(np.zeros(2))
    with pytest.raises(ValueError):
        LtiGrosZanon(x0=[1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- CartPole


def _energy(env: CartPole, x: np.ndarray) -> float:
    """Total energy of the model (pole tip at (p − l sin θ, l cos θ))."""
    M, m, L = env.m_cart, env.m_pole, env.length
    _, th, v, w = x
    return float(0.5 * (M + m) * v**2 - m * L * v * w * np.cos(th) + 0.5 * m * L**2 * w**2
                 + m * GRAVITY * L * np.cos(th))


def test_cartpole_pole_falls_without_control() -> None:
    env = CartPole()
    x, _ = env.reset(options={"state": [0.0, 0.05, 0.0, 0.0]})
    angles = [x[1]]
    terminated = False
    for _ in range(100):
        x, _, terminated, truncated, _ = env.step(np.zeros(1))
        angles.append(x[1])
        assert truncated is False
        if terminated:
            break
    assert terminated, "the pole should fall within 5 s"
    assert abs(angles[-1]) > np.pi / 2
    assert np.all(np.diff(np.abs(angles)) > 0)  # |angle| grows monotonically


def test_cartpole_reproducible_energy_and_fine_rk4() -> None:
    env = CartPole(friction=0.0)
    start = np.array([0.0, 0.1, 0.0, 0.0])
    # seeded random initial state: same seed, same trajectory
    s1, c1 = _rollout(env, 0, np.zeros(15))
    s2, c2 = _rollout(CartPole(friction=0.0), 0, np.zeros(15))
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(c1, c2)

    env.reset(options={"state": start})
    traj = [start]
    for _ in range(15):
        traj.append(env.step(np.zeros(1))[0])
    env.reset(options={"state": start})
    traj2 = [start] + [env.step(np.zeros(1))[0] for _ in range(15)]
    np.testing.assert_array_equal(np.array(traj), np.array(traj2))

    # conservation of energy and horizontal momentum (no force, no friction)
    M, m, L = env.m_cart, env.m_pole, env.length
    e0 = _energy(env, start)
    for x in traj:
        assert _energy(env, x) == pytest.approx(e0, abs=1e-6)
        assert (M + m) * x[2] - m * L * x[3] * np.cos(x[1]) == pytest.approx(0.0, abs=1e-6)

    # each step agrees with a much finer RK4 built from the same dynamics
    xs, us = cs.SX.sym("x", 4), cs.SX.sym("u", 1)
    f = cs.Function("f", [xs, us], [cartpole_dynamics(xs, us, M, m, L, 0.0)])
    n_fine = 200
    h = env.dt / n_fine

    def fine_step(x: np.ndarray, u: float) -> np.ndarray:
        for _ in range(n_fine):
            k1 = np.asarray(f(x, u)).ravel()
            k2 = np.asarray(f(x + h / 2 * k1, u)).ravel()
            k3 = np.asarray(f(x + h / 2 * k2, u)).ravel()
            k4 = np.asarray(f(x + h * k3, u)).ravel()
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x

    for x, x_next in zip(traj[:-1:3], traj[1::3], strict=True):
        np.testing.assert_allclose(x_next, fine_step(x, 0.0), rtol=0, atol=1e-6)
    # also with a force applied
    env.reset(options={"state": start})
    np.testing.assert_allclose(env.step(np.array([3.0]))[0], fine_step(start, 3.0), atol=1e-6)


def test_cartpole_actions_clipped() -> None:
    env = CartPole()
    start = np.array([0.1, 0.05, 0.0, 0.0])
    results = {}
    for a in (FORCE_LIMIT, 100.0, -FORCE_LIMIT, -100.0):
        env.reset(options={"state": start})
        results[a] = env.step(np.array([a]))
    np.testing.assert_array_equal(results[100.0][0], results[FORCE_LIMIT][0])
    np.testing.assert_array_equal(results[-100.0][0], results[-FORCE_LIMIT][0])
    assert results[100.0][4]["force"] == FORCE_LIMIT
    assert results[100.0][4]["cost"] == results[FORCE_LIMIT][4]["cost"]
    assert not np.allclose(results[FORCE_LIMIT][0], results[-FORCE_LIMIT][0])


def test_cartpole_friction_changes_trajectory() -> None:
    start = np.array([0.0, 0.1, 0.5, 0.0])
    trajs = []
    for friction in (0.0, 0.5):
        env = CartPole(friction=friction)
        env.reset(options={"state": start})
        trajs.append([env.step(np.array([1.0]))[0] for _ in range(5)])
    assert not np.allclose(trajs[0], trajs[1], atol=1e-6)
    # friction opposes the velocity: the frictional cart ends up slower
    assert trajs[1][-1][2] < trajs[0][-1][2]


def test_cartpole_cost_by_hand_and_reset() -> None:
    env = CartPole()
    x = np.array([1.5, 0.1, 0.2, -0.3])  # cart 0.5 m beyond CART_LIMIT
    assert CART_LIMIT == 1.0
    env.reset(options={"state": x})
    _, reward, _, _, info = env.step(np.array([2.0]))
    # 2.25 + 5·0.01 + 0.1·0.04 + 0.1·0.09 + 0.1·4 + 100·0.5
    assert info["cost"] == pytest.approx(52.713, abs=1e-12)
    assert reward == -info["cost"]
    assert info["violation"] == pytest.approx(0.5)

    a, _ = env.reset(seed=11)
    b, _ = CartPole().reset(seed=11)
    c, _ = env.reset(seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    samples = np.array([env.reset(seed=s)[0] for s in range(50)])
    assert np.all(np.abs(samples) <= [0.2, 0.2, 0.1, 0.1])
    with pytest.raises(ValueError):
        env.reset(options={"state": [0.0, 0.0]})


# ----------------------------------------------------------------------------- GymPlant


def test_pendulum_plant_runs() -> None:
    plant = pendulum_plant(max_episode_steps=20)
    obs, info = plant.reset(seed=0)
    np.testing.assert_allclose(info["state"], plant.unwrapped.state)
    truncated = False
    steps = 0
    while not truncated:
        obs, reward, terminated, truncated, info = plant.step(plant.action_space.sample())
        steps += 1
        assert not terminated
        assert info["cost"] == -float(reward)
        th, thdot = plant.state
        np.testing.assert_allclose(obs, [np.cos(th), np.sin(th), thdot], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(info["state"], plant.state)
        assert plant.state.dtype == np.float64 and plant.state.shape == (2,)
    assert steps == 20


def test_gym_plant_default_state_is_observation() -> None:
    plant = GymPlant(LtiGrosZanon())
    with pytest.raises(AttributeError):
        _ = plant.state
    obs, _ = plant.reset(seed=0)
    np.testing.assert_array_equal(plant.state, obs)
    obs, reward, _, _, info = plant.step(np.array([0.5]))
    np.testing.assert_array_equal(info["state"], obs)
    assert info["cost"] == -reward


def test_gym_plant_rejects_discrete_actions() -> None:
    with pytest.raises(ValueError, match=r"GymPlant: expected a continuous \(Box\) action space"):
        GymPlant(gym.make("CartPole-v1"))


def test_wrong_action_and_state_shapes_are_refused() -> None:
    env = LtiGrosZanon()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"LtiGrosZanon: expected an action of shape \(1,\)"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match=r"LtiGrosZanon: expected a state of shape \(2,\)"):
        env.reset(options={"state": [1.0, 2.0, 3.0]})
    cart = CartPole()
    with pytest.raises(ValueError, match=r"CartPole: expected a state of shape \(4,\)"):
        cart.reset(options={"state": [0.0]})
