# %% [markdown]
# # Tutorial 4: export and the host check
#
# `rlmpc export` turns a θ file (written by `rlmpc train`) into a self-describing C bundle for a
# target: `linux-x86_64` / `linux-aarch64` (acados' generated C with θ baked in) or `cortex-m4`
# (a malloc-free C99 solver on DAQP, no libacados). `--check` compiles the bundle on this machine
# and compares it with the workstation MPC, ending with PASS or FAIL (exit code 1).
#
# The commands are run from Python here; in a shell they are the same without `rlmpc(...)`.

# %%
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import rlmpc as rlmpc_package

work = Path(tempfile.mkdtemp(prefix="rlmpc-tutorial4-"))


def rlmpc(*args: str) -> None:
    """`rlmpc ARGS…` in the tutorial's folder; show its output, stop on failure."""
    print("$ rlmpc", " ".join(args))
    done = subprocess.run([sys.executable, "-m", "rlmpc", *args], capture_output=True, text=True, cwd=work)
    print(done.stdout[-4000:], done.stderr[-2000:])
    done.check_returncode()


example = Path(rlmpc_package.__file__).parent / "examples" / "lti_qlearning.toml"
rlmpc("train", str(example), "--steps", "300", "--out", "train", "--quiet")

# %% [markdown]
# ## Bare metal: `--target cortex-m4`
#
# The check compiles the solver for the host in float64 and float32, compares u0 with acados on
# reference states and closed loops, and reports the Cortex-M4F footprint (flash, RAM).

# %%
rlmpc("export", "--theta", "train/theta.json", "--target", "cortex-m4", "--out", "mcu", "--check")

# %% [markdown]
# ## Embedded Linux: `--target linux-x86_64`
#
# The acados bundle's test program is built against the installed acados and must reproduce the
# workstation's u0 and predictions bit for bit (`linux-aarch64` does the same under qemu-aarch64).

# %%
rlmpc("export", "--theta", "train/theta.json", "--target", "linux-x86_64", "--out", "x86", "--check")
print(sorted(p.name for p in (work / "x86").iterdir()))

# %% [markdown]
# ## What the bundle carries
#
# `manifest.json` names the problem, θ (values and hash), dimensions, versions and the sha256 of
# every file; `test_vectors.json` holds reference states with the workstation's u0 and predicted
# trajectories at the same θ, which every board reproduces (Tutorial 5). Below: those
# predictions, and u0 against the initial position.

# %%
manifest = json.loads((work / "mcu/manifest.json").read_text())
vectors = json.loads((work / "mcu/test_vectors.json").read_text())["vectors"]
print("θ hash:", manifest["theta"]["hash"][:16], "| footprint:", manifest["footprint"]["flash"], "B flash,",
      manifest["footprint"]["ram"], "B RAM")
fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
for v in vectors:
    xs = np.array(v["x"])
    ax[0].plot(xs[:, 0], xs[:, 1], lw=0.8)
    ax[0].plot(xs[0, 0], xs[0, 1], "k.", ms=4)
ax[0].set_xlabel("x₁")
ax[0].set_ylabel("x₂")
ax[0].set_title(f"predicted trajectories of the {len(vectors)} reference states")
x0 = np.array([v["x0"][0] for v in vectors])
u0 = np.array([v["u0"][0] for v in vectors])
ax[1].plot(x0, u0, "o")
ax[1].axhline(-1.0, color="grey", ls=":")
ax[1].axhline(1.0, color="grey", ls=":", label="input bounds")
ax[1].set_xlabel("x₁ at the start")
ax[1].set_ylabel("u₀")
ax[1].set_title("reference u₀ (workstation MPC at the exported θ)")
ax[1].legend()
fig.tight_layout()
display(fig)
plt.close(fig)
