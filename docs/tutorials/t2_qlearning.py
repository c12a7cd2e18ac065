# %% [markdown]
# # Tutorial 2: Q-learning on the LTI task
#
# The linear task of Gros & Zanon (2020): the MPC starts from a wrong model and a state bound that
# the noisy true plant keeps violating; second-order LSTD Q-learning tunes θ (cost offset, model
# correction, constraint back-off) from closed-loop data to reduce the temporal-difference error
#
#     δ = L(s, a) + γ V_θ(s⁺) − Q_θ(s, a)
#
# (`rlmpc.toolkit.rl.q_learning.LstdQLearning`, see [Theory](../theory.md)). The run below is the
# packaged example `examples/lti_qlearning.toml`, shortened to 1500 steps; `rlmpc train` runs the
# same configuration from the command line.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython import get_ipython
from IPython.display import display

import rlmpc
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.rl.training import Trainer

example = Path(rlmpc.__file__).parent / "examples" / "lti_qlearning.toml"
print(example.read_text())

# %%
out = Path(tempfile.mkdtemp(prefix="rlmpc-tutorial2-")) / "run"
config = load_config(example, output=out, overrides={"steps": 1500, "evaluation.episodes": 3})
trainer = Trainer(config, progress_bar=False)
summary = trainer.run()
get_ipython().run_line_magic("matplotlib", "inline")  # (the run's plot writer selected Agg)
print(f"greedy closed-loop cost: {summary['greedy_cost_initial']:.2f} (initial θ) → "
      f"{summary['greedy_cost_final']:.2f} (learned θ), ratio {summary['greedy_cost_ratio']:.2f}")
assert summary["greedy_cost_final"] < summary["greedy_cost_initial"]  # learning must help
print("MPC failures:", summary["mpc_failures"]["V"], "(V),", summary["mpc_failures"]["Q"], "(Q)")
print("written:", sorted(p.name for p in out.iterdir()))

# %% [markdown]
# ## Learning curves
#
# The step cost (a moving average), the TD error and θ over the run. The learned θ is in
# `theta.json`, the input of `rlmpc export` ([Tutorial 4](t4_export.py)).

# %%
hist = trainer.history
cost = np.array(hist.step_cost)
td = np.array(hist.td_error)
theta = np.array(hist.theta)
labels = trainer.mpc.fns.theta.labels()
window = 100
fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
ax[0].plot(np.convolve(cost, np.ones(window) / window, mode="valid"))
ax[0].set_title(f"step cost (moving average of {window})")
ax[1].semilogy(np.abs(td), lw=0.5)
ax[1].set_title("|TD error|")
for i, label in enumerate(labels):
    ax[2].plot(theta[:, i], label=label)
ax[2].set_title("θ")
ax[2].legend(fontsize=6, ncol=2)
for a in ax:
    a.set_xlabel("step")
fig.tight_layout()
display(fig)
plt.close(fig)
