"""Your own problem and plant, registered by a module named in RLMPC_PLUGINS, through the CLI:
train, export with its check, and HIL on the host."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rlmpc.cli import main
from rlmpc.toolkit.registry import ENVS, PROBLEMS, load_plugins

PLUGIN = textwrap.dedent('''
    """A double integrator with a learnable input weight, and its plant."""
    import casadi as cs
    import gymnasium as gym
    import numpy as np

    from rlmpc.toolkit.problem import ParametricMPC
    from rlmpc.toolkit.registry import register_plant, register_problem


    def double_integrator(horizon: int = 10) -> ParametricMPC:
        mpc = ParametricMPC("my_double_integrator", nx=2, nu=1, horizon=horizon, discount=0.95)
        x, u = mpc.x, mpc.u
        r = mpc.learnable("r", 0.5, lb=0.01, ub=10.0)
        mpc.discrete_dynamics(cs.vertcat(x[0] + 0.1 * x[1], x[1] + 0.1 * u[0]), dt=0.1)
        mpc.input_bounds(-1.0, 1.0)
        mpc.stage_cost(x[0] ** 2 + 0.1 * x[1] ** 2 + r * u[0] ** 2)
        mpc.terminal_cost(10 * (x[0] ** 2 + x[1] ** 2))
        return mpc


    class DoubleIntegratorPlant(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (2,))
        action_space = gym.spaces.Box(-1.0, 1.0, (1,))

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = self.np_random.uniform(-1, 1, 2) if not options else np.asarray(options["state"], float)
            return self.x.copy(), {"state": self.x.copy()}

        def step(self, u):
            u = float(np.clip(u[0], -1, 1))
            cost = self.x[0] ** 2 + 0.1 * self.x[1] ** 2 + 1.0 * u ** 2
            self.x = np.array([self.x[0] + 0.1 * self.x[1], self.x[1] + 0.1 * u])
            return self.x.copy(), -cost, False, False, {"cost": cost, "state": self.x.copy()}


    register_problem("my_double_integrator", double_integrator)
    register_plant("MyDoubleIntegrator", DoubleIntegratorPlant)
''')


def test_own_problem_and_plant_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLMPC_PLUGINS", "my_plugin")
    monkeypatch.setattr("sys.path", ["", *__import__("sys").path])
    config = tmp_path / "c.toml"
    config.write_text('steps = 50\n[env]\nname = "MyDoubleIntegrator"\n'
                      '[mpc]\nproblem = "my_double_integrator"\n[agent]\ntype = "lstd_q"\norder = 1\n'
                      'optimizer = { type = "sgd", learning_rate = 1e-3 }\n')
    try:
        assert main(["train", str(config), "--out", "run", "--quiet"]) == 0
        assert main(["export", "--theta", "run/theta.json", "--target", "cortex-m4", "--out", "mcu",
                     "--check"]) == 0
        assert capsys.readouterr().out.rstrip().endswith("PASS")
        assert main(["hil", "mcu", "--target", "host", "--steps", "30", "--out", "hil"]) == 0
        assert "plant: MyDoubleIntegrator" in capsys.readouterr().out
    finally:
        PROBLEMS.pop("my_double_integrator", None)
        ENVS.pop("MyDoubleIntegrator", None)


def test_a_plugin_that_cannot_be_imported_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="RLMPC_PLUGINS: cannot import 'no_such_plugin'"):
        load_plugins("no_such_plugin")
    monkeypatch.setenv("RLMPC_PLUGINS", "no_such_plugin")
    assert main(["doctor"]) == 2
    assert "RLMPC_PLUGINS: cannot import 'no_such_plugin'" in capsys.readouterr().err
