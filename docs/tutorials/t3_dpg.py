# %% [markdown]
# # Tutorial 3: deterministic policy gradient
#
# The same LTI task, learned with the deterministic policy gradient
#
#     ∇θJ(π_θ) = E[ ∇θπ_θ(s) ∇ₐQ^π(s, a)|ₐ₌π(s) ]
#
# where ∇θπ_θ(s) comes from the MPC's KKT sensitivities and ∇ₐQ^π from a compatible critic
# fitted by LSTD on the features ∇θπ_θ(s)(a − π_θ(s))
# (`rlmpc.toolkit.rl.dpg.DeterministicPolicyGradient`, see [Theory](../theory.md)). We run the
# packaged `examples/lti_dpg.toml`, shortened to 10 episodes of 100 steps.

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

example = Path(rlmpc.__file__).parent / "examples" / "lti_dpg.toml"
out = Path(tempfile.mkdtemp(prefix="rlmpc-tutorial3-")) / "run"
config = load_config(example, output=out, overrides={"episodes": 10, "evaluation.episodes": 3})
print("agent:", config.agent.type, "| exploration:", config.agent.exploration, "| episodes:", config.episodes)
trainer = Trainer(config, progress_bar=False)
summary = trainer.run()
get_ipython().run_line_magic("matplotlib", "inline")  # (the run's plot writer selected Agg)
print(f"greedy closed-loop cost: {summary['greedy_cost_initial']:.2f} → {summary['greedy_cost_final']:.2f}")
assert summary["greedy_cost_final"] < summary["greedy_cost_initial"]  # learning must help
print("policy updates:", summary["updates"])

# %% [markdown]
# ## Cost per episode and θ
#
# DPG updates θ once per episode (after the critic is fitted on that episode's data).

# %%
hist = trainer.history
theta = np.array(hist.theta)
labels = trainer.mpc.fns.theta.labels()
fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ax[0].plot(np.arange(1, len(hist.episode_cost) + 1), hist.episode_cost, "o-")
ax[0].set_xlabel("episode")
ax[0].set_title("cost per episode (with exploration)")
for i, label in enumerate(labels):
    ax[1].plot(theta[:, i] - theta[0, i], label=label)
ax[1].set_xlabel("step")
ax[1].set_title("θ − θ₀")
ax[1].legend(fontsize=6, ncol=2)
fig.tight_layout()
display(fig)
plt.close(fig)
