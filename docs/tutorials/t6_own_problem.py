# %% [markdown]
# # Tutorial 6: bring your own problem and plant
#
# A problem is a function that returns a `ParametricMPC`; a plant is a Gymnasium `Env`. Registered
# under names (`register_problem`, `register_plant`), they are used by configurations exactly like
# the built-in ones. For the command line, put the registrations in a module and name it in
# `RLMPC_PLUGINS`: every `rlmpc` command (and the pytest plugin) imports it first.
#
# Our example: a double integrator whose MPC is mistuned: it underestimates the input's effect
# (`gain`, a learnable model parameter, starts at 0.6; the true plant has 1.0) and weighs the input
# ten times more than the plant's cost does (`r` starts at 5.0; the plant charges 0.5 u²).

# %%
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython import get_ipython
from IPython.display import display

work = Path(tempfile.mkdtemp(prefix="rlmpc-tutorial6-"))
(work / "my_plugin.py").write_text(textwrap.dedent('''
    """A double integrator: its parametric MPC and its plant."""
    import casadi as cs
    import gymnasium as gym
    import numpy as np

    from rlmpc import ParametricMPC, register_plant, register_problem


    def double_integrator(horizon: int = 10) -> ParametricMPC:
        mpc = ParametricMPC("my_double_integrator", nx=2, nu=1, horizon=horizon, discount=0.95)
        x, u = mpc.x, mpc.u
        gain = mpc.learnable("gain", 0.6, lb=0.1, ub=3.0)
        r = mpc.learnable("r", 5.0, lb=0.01, ub=10.0)
        mpc.discrete_dynamics(cs.vertcat(x[0] + 0.1 * x[1], x[1] + 0.1 * gain * u[0]), dt=0.1)
        mpc.input_bounds(-1.0, 1.0)
        mpc.stage_cost(x[0] ** 2 + 0.1 * x[1] ** 2 + r * u[0] ** 2)
        mpc.terminal_cost(10 * (x[0] ** 2 + x[1] ** 2))
        return mpc


    class DoubleIntegratorPlant(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (2,))
        action_space = gym.spaces.Box(-1.0, 1.0, (1,))

        def __init__(self, gain: float = 1.0, noise: float = 0.01):
            self.gain, self.noise = gain, noise

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = self.np_random.uniform(-1, 1, 2) if not options else np.asarray(options["state"], float)
            return self.x.copy(), {"state": self.x.copy()}

        def step(self, u):
            u = float(np.clip(u[0], -1, 1))
            cost = self.x[0] ** 2 + 0.1 * self.x[1] ** 2 + 0.5 * u ** 2
            w = self.noise * self.np_random.standard_normal(2)
            self.x = np.array([self.x[0] + 0.1 * self.x[1], self.x[1] + 0.1 * self.gain * u]) + w
            return self.x.copy(), -cost, False, False, {"cost": cost, "state": self.x.copy()}


    register_problem("my_double_integrator", double_integrator)
    register_plant("MyDoubleIntegrator", DoubleIntegratorPlant)
'''))
(work / "my_config.toml").write_text(textwrap.dedent('''
    seed = 3
    episodes = 4
    steps = 100
    output = "runs/mine"

    [env]
    name = "MyDoubleIntegrator"
    params = { gain = 1.0 }

    [mpc]
    problem = "my_double_integrator"

    [agent]
    type = "lstd_q"
    optimizer = { type = "newton", learning_rate = 0.1 }
    exploration = { type = "gaussian", std = 0.1 }

    [evaluation]
    episodes = 3
    steps = 60
    seed = 100
'''))

# %% [markdown]
# ## In Python: import the module, and its names are registered

# %%
sys.path.insert(0, str(work))
import my_plugin  # noqa: E402, F401  (registers the problem and the plant)

from rlmpc.toolkit.rl.config import load_config  # noqa: E402
from rlmpc.toolkit.rl.training import Trainer  # noqa: E402

trainer = Trainer(load_config(work / "my_config.toml", output=work / "python_run"), progress_bar=False)
summary = trainer.run()
get_ipython().run_line_magic("matplotlib", "inline")  # (the run's plot writer selected Agg)
print("θ:", summary["theta_initial"], "→", summary["theta_final"])
print(f"greedy cost {summary['greedy_cost_initial']:.3f} → {summary['greedy_cost_final']:.3f}")
assert summary["greedy_cost_final"] < summary["greedy_cost_initial"]  # learning must help

theta = np.array(trainer.history.theta)
fig, ax = plt.subplots(figsize=(6, 3))
for i, label in enumerate(trainer.mpc.fns.theta.labels()):
    ax.plot(theta[:, i], label=label)
ax.axhline(1.0, color="C0", ls=":", label="the plant's gain")
ax.axhline(0.5, color="C1", ls=":", label="the plant's input weight")
ax.set_xlabel("step")
ax.set_title("θ of your own problem, learned on your own plant")
ax.legend()
fig.tight_layout()
display(fig)
plt.close(fig)

# %% [markdown]
# Q-learning lowers the greedy closed-loop cost; it does not identify the model: θ is whatever
# makes Q_θ fit the closed-loop costs best (here a larger gain together with a smaller input
# weight both make the controller more aggressive), which is the point of MPC-based RL
# ([Theory](../theory.md)).
#
# ## On the command line: `RLMPC_PLUGINS=my_plugin rlmpc …`
#
# The same configuration through `rlmpc train`, then a bare-metal export of the result checked on
# the host: your names work wherever the built-in ones do (also `build`, `hil`, the pytest plugin).

# %%
env = {**os.environ, "RLMPC_PLUGINS": "my_plugin", "PYTHONPATH": str(work)}
for args in (["train", "my_config.toml", "--out", "cli_run", "--quiet"],
             ["export", "--theta", "cli_run/theta.json", "--target", "cortex-m4", "--out", "mine_mcu", "--check"]):
    done = subprocess.run([sys.executable, "-m", "rlmpc", *args], cwd=work, env=env, capture_output=True, text=True)
    print("$ RLMPC_PLUGINS=my_plugin rlmpc", " ".join(args))
    print(done.stdout[-1500:], done.stderr[-1500:])
    done.check_returncode()
