"""Benchmark of HIL: closed-loop steps per second over the emulated serial links.

Exports the LTI problem (default θ, or ``--theta``) for the Cortex-M4F and as the acados
bundle for linux-aarch64, builds the firmware for each emulated board, and runs ``rlmpc hil``
closed loops of ``--steps`` steps, printing the steps per second over the link alone (device
round trips) and for the whole loop (plus the workstation's plant step and reference solve).
Goal: ≥ 300 closed-loop steps/s over the QEMU TCP link (mps2-an386, stm32f405); the
linux-aarch64 controller (acados under qemu-aarch64 on a pty) is shown for comparison.

    .venv/bin/python bench/hil.py [--steps 300] [--theta THETA.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlmpc.codegen.bundle import export_bundle  # noqa: E402
from rlmpc.codegen.firmware import build_firmware  # noqa: E402
from rlmpc.codegen.mcu_export import export_mcu  # noqa: E402
from rlmpc.hil.cli import parse_hil_args, run_command  # noqa: E402
from rlmpc.toolkit.problems import lti_mpc  # noqa: E402
from rlmpc.toolkit.theta_file import save_theta, theta_document  # noqa: E402

GOAL = 300.0
BOARDS = ("mps2-an386", "stm32f405", "linux-aarch64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--theta", default=None, help="θ file of the LTI problem (default θ if absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlmpc-bench-hil-") as tmp:
        work = Path(tmp)
        theta = Path(args.theta) if args.theta else work / "theta.json"
        if args.theta is None:
            fns = lti_mpc().build()
            save_theta(theta, theta_document("lti", {}, fns, fns.theta.default()))
        bundles = {"mcu": export_mcu(theta, work / "bundle"),
                   "acados": export_bundle(theta, "linux-aarch64", work / "bundle-aarch64")}
        for board in BOARDS:
            bundle = bundles["acados" if board == "linux-aarch64" else "mcu"]
            elf = build_firmware(bundle, board, work / f"fw-{board}")
            out = work / f"hil-{board}"
            ns = parse_hil_args([str(bundle), "--target", board, "--program", str(elf),
                                 "--steps", str(args.steps), "--seed", "3", "--out", str(out)])
            code = run_command(ns)
            metrics = json.loads((out / "hil.json").read_text())["metrics"]
            link = metrics["link_steps_per_second"]
            loop = metrics["loop_steps_per_second"]
            verdict = "meets" if link >= GOAL else "MISSES"
            if board == "linux-aarch64":
                verdict = "not a QEMU TCP link; compare with"
            print(f"{board}: {link:.0f} steps/s over the link ({verdict} the goal of {GOAL:.0f}), "
                  f"{loop:.0f} steps/s for the whole loop; verdict exit code {code}")


if __name__ == "__main__":
    main()
