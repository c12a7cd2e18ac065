# %% [markdown]
# # Tutorial 5: firmware and HIL on an emulated board
#
# The bare-metal bundle of the LTI controller is compiled into firmware for the `mps2-an386`
# board (a Cortex-M4F), which QEMU emulates with exact instruction counts (`-icount shift=0`).
# `rlmpc hil` starts the emulator, closes the loop with the plant on the workstation over the
# serial link, runs the workstation MPC at the same θ alongside, and ends with a verdict
# (exit code 0 PASS, 1 FAIL, 2 link error). On a real board the same command takes
# `--port /dev/ttyACM0` ([how-to](../howto/real-board.md)).

# %%
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from IPython.display import Image, Markdown, display

import rlmpc as rlmpc_package

work = Path(tempfile.mkdtemp(prefix="rlmpc-tutorial5-"))


def rlmpc(*args: str) -> None:
    """Run the command line (the same as typing `rlmpc ...` in a shell) and show what it printed."""
    print("$ rlmpc", " ".join(args))
    done = subprocess.run([sys.executable, "-m", "rlmpc", *args], capture_output=True, text=True, cwd=work)
    print(done.stdout[-3000:], done.stderr[-3000:])
    done.check_returncode()


# a short training run and its bare-metal export (Tutorials 2 and 4 explain both)
example = Path(rlmpc_package.__file__).parent / "examples" / "lti_qlearning.toml"
rlmpc("train", str(example), "--steps", "300", "--out", "train", "--quiet")
rlmpc("export", "--theta", "train/theta.json", "--target", "cortex-m4", "--out", "mcu")

# %% [markdown]
# ## Build the firmware

# %%
rlmpc("build", "mcu", "--board", "mps2-an386")
print((work / "mcu/build/firmware-mps2-an386/size.txt").read_text())

# %% [markdown]
# ## Close the loop over the serial link

# %%
rlmpc("hil", "mcu", "--target", "mps2-an386", "--steps", "60", "--out", "hil")
report = json.loads((work / "hil/hil.json").read_text())
print("verdict:", report["verdict"])
assert report["verdict"] == "PASS"
display(Markdown((work / "hil/summary.md").read_text()))

# %% [markdown]
# ## The report's plots
#
# The device's states and actions against the workstation reference, the action error, and the
# cost of each control step on the device (instructions under `-icount`).

# %%
for name in ("states.png", "actions.png", "device_cost.png"):
    display(Image(filename=str(work / "hil" / name)))
