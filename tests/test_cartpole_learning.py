"""Cart-pole acceptance: learning from a 30 %-wrong pole mass lowers the greedy closed-loop cost.

The task is examples/cartpole_qlearning.toml (a cart-pole balanced on an incline, where the
pole mass sets the holding force; see toolkit/problems/cartpole_incline.py).  These tests
check that the model error matters on that task, that Q-learning lowers the greedy cost
over three seeds, and that the same run without learning does not (so the test can fail).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import casadi as cs
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlmpc.toolkit.envs.cartpole_incline import CartPoleIncline
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problems.cartpole import cartpole_dynamics
from rlmpc.toolkit.problems.cartpole_incline import (
    cartpole_incline_mpc,
    equilibrium_force,
    incline_dynamics,
)
from rlmpc.toolkit.registry import make_env
from rlmpc.toolkit.rl.config import TrainConfig, load_config
from rlmpc.toolkit.rl.evaluation import greedy_cost
from rlmpc.toolkit.rl.training import Trainer

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "cartpole_qlearning.toml"
TRUE_MASS, MODEL_MASS = 0.65, 0.5


def _config(tmp_path: Path, seed: int, **changes: object) -> TrainConfig:
    cfg = load_config(CONFIG, output=tmp_path / f"run_{seed}")
    return dataclasses.replace(cfg, seed=seed, **changes)  # type: ignore[arg-type]


def test_incline_dynamics_reduce_to_level_track_and_hold_equilibrium() -> None:
    x, u = cs.SX.sym("x", 4), cs.SX.sym("u", 1)
    level = cs.Function("f", [x, u], [cartpole_dynamics(x, u, 1.0, 0.65, 0.8)])
    flat = cs.Function("g", [x, u], [incline_dynamics(x, u, 1.0, 0.65, 0.8, 0.0)])
    rng = np.random.default_rng(0)
    for _ in range(5):
        s, a = rng.normal(size=4), rng.normal(size=1)
        np.testing.assert_allclose(np.asarray(flat(s, a)), np.asarray(level(s, a)), atol=1e-12)
    slope = 0.12
    f = cs.Function("h", [x, u], [incline_dynamics(x, u, 1.0, 0.65, 0.8, slope)])
    x_eq = np.array([0.3, -slope, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(f(x_eq, equilibrium_force(1.0, 0.65, slope))), 0.0,
                               atol=1e-12)


def test_incline_plant_is_a_gymnasium_env_with_the_true_equilibrium() -> None:
    benign = ("infinity", "symmetric and normalized", "alternative render modes")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(CartPoleIncline())
    assert not [w for w in caught if not any(b in str(w.message) for b in benign)]
    env = CartPoleIncline(m_pole=TRUE_MASS, slope=0.12)
    env.reset(options={"state": env.x_eq})
    s, _, terminated, _, info = env.step([env.u_eq])
    np.testing.assert_allclose(s, env.x_eq, atol=1e-12)
    assert info["cost"] == pytest.approx(0.0, abs=1e-20) and not terminated


def test_the_pole_mass_error_matters_on_this_task() -> None:
    """Greedy cost of the MPC with the wrong vs. the true pole mass (same states)."""
    cfg = load_config(CONFIG)
    mpc = MPC(cartpole_incline_mpc(**cfg.mpc.params))
    ev = cfg.evaluation

    def cost(mass: float) -> float:
        return greedy_cost(mpc.fns, SolverOptions(), np.array([mass]),
                           lambda: make_env(cfg.env.name, cfg.env.params), ev.episodes,
                           ev.steps, ev.seed)

    wrong, true = cost(MODEL_MASS), cost(TRUE_MASS)
    assert wrong > 1.5 * true, (wrong, true)
    assert isinstance(make_env(cfg.env.name, cfg.env.params), CartPoleIncline)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_qlearning_lowers_the_greedy_cost(tmp_path: Path, seed: int) -> None:
    """The full run of examples/cartpole_qlearning.toml (30 × 100 steps) per seed."""
    summary = Trainer(_config(tmp_path, seed), progress_bar=False).run()
    assert summary["steps"] == 3000
    assert summary["mpc_failures"]["V"] + summary["mpc_failures"]["Q"] == 0
    # learned θ on the same initial states: 2.48 / 2.57 / 2.85 vs 4.44 (seeds 1, 2, 3)
    assert summary["greedy_cost_ratio"] <= 0.75, summary["greedy_cost_ratio"]
    m_pole = float(np.ravel(summary["theta_final"]["m_pole"])[0])
    assert MODEL_MASS + 0.05 < m_pole < 0.8, m_pole  # moved towards the true 0.65 kg


def test_without_learning_the_cost_does_not_drop(tmp_path: Path) -> None:
    """Control: the same set-up with learning rate 0 keeps θ and the greedy cost."""
    cfg = _config(tmp_path, 1, episodes=2)
    agent = dataclasses.replace(cfg.agent, optimizer={"type": "sgd", "learning_rate": 0.0})
    summary = Trainer(dataclasses.replace(cfg, agent=agent), progress_bar=False).run()
    assert summary["greedy_cost_ratio"] == pytest.approx(1.0)


def test_sensitivities_of_a_single_learnable_parameter() -> None:
    """θ with one entry: ∇θπ is (nu, 1) and matches central finite differences, ∂²L/∂θ² is
    (1, 1) (a Jacobian with one column must stay 2-D; it once came back 1-D and broke the
    KKT elimination)."""
    fns = cartpole_incline_mpc(m_pole=MODEL_MASS, learn=["m_pole"]).build()
    mpc = MPC(fns, SolverOptions(tol=1e-9))
    s = np.array([0.05, -0.1, 0.0, 0.0])
    sol = mpc.value(s)
    jac = mpc.sensitivities.policy_jacobian(sol)
    g, h = mpc.sensitivities.grad_and_hessian_theta(sol)
    assert jac.shape == (1, 1) and g.shape == (1,) and h.shape == (1, 1)
    assert mpc.sensitivities.hessian_theta(sol, full=True).shape == (1, 1)
    theta, eps = fns.theta.default(), 1e-5
    u = []
    for d in (eps, -eps):
        mpc.theta = theta + d
        u.append(float(mpc.value(s).u0[0]))
    assert jac[0, 0] == pytest.approx((u[0] - u[1]) / (2 * eps), rel=1e-4, abs=1e-7)
