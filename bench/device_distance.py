#!/usr/bin/env python3
"""Where does ‖u_device − π_θ(s)‖∞ come from?  A training run through a device, every step logged, then
the largest distances explained against an independent reference.

Runs ``rlmpc train CONFIG --device BOARD --out OUT`` with every device step logged (θ, s, the device's
u, the workstation's u0) into ``OUT/device_log.npz``; then for the ``--worst`` steps with the largest
distances prints the distance of the workstation and of the device to IPOPT (tol 1e-12, the same
problem as one CasADi NLP, :mod:`rlmpc.toolkit.nlp`) and cond(H) of the condensed QP with the
export's prestabilising gain K and with K recomputed for that θ (linear problems).  Issue #16:

    .venv/bin/python bench/device_distance.py examples/lti_qlearning.toml --device mps2-an386 --out /tmp/dd
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlmpc.hil import device_training  # noqa: E402


def run_logged(config: str, device: str, out: Path) -> dict[str, np.ndarray]:
    from rlmpc.cli import main

    rows: list[tuple[Any, ...]] = []
    original = device_training.DeviceInTheLoop.action

    def action(self: device_training.DeviceInTheLoop, sol: Any) -> Any:
        u = original(self, sol)
        rows.append((np.array(sol.theta), np.array(sol.s), np.array(u), np.array(sol.u0)))
        return u

    device_training.DeviceInTheLoop.action = action  # type: ignore[method-assign]
    try:
        main(["train", config, "--device", device, "--out", str(out), "--quiet"])
    finally:
        device_training.DeviceInTheLoop.action = original  # type: ignore[method-assign]
    log = {k: np.array([r[i] for r in rows]) for i, k in enumerate(("theta", "s", "u_device", "u_ws"))}
    np.savez_compressed(out / "device_log.npz", theta=log["theta"], s=log["s"], u_device=log["u_device"],
                        u_ws=log["u_ws"])
    return log


def explain(config: str, log: dict[str, np.ndarray], worst: int) -> None:
    from rlmpc.codegen.mcu.condense import condense
    from rlmpc.codegen.mcu.linearise import linearise
    from rlmpc.toolkit.nlp import solve_with_ipopt, transcribe
    from rlmpc.toolkit.rl.config import load_config
    from rlmpc.toolkit.rl.training import Trainer

    with tempfile.TemporaryDirectory() as tmp:  # (the trainer only for the configuration's MPC and θ0)
        trainer = Trainer(load_config(Path(config), output=Path(tmp) / "unused"), progress_bar=False)
        fns, theta0 = trainer.mpc.fns, np.asarray(trainer.theta0, dtype=float)
    p = np.zeros(fns.np)
    tr = transcribe(fns, False)
    d = np.max(np.abs(log["u_device"] - log["u_ws"]), axis=1)
    print(f"{d.size} steps, {(d > 1e-4).sum()} above 1e-4, max {d.max():.2e}, median {np.median(d):.2e}")
    k0 = condense(linearise(fns, theta0, p)).K
    print(f"{'step':>6} {'distance':>9} {'|ws-ipopt|':>11} {'|dev-ipopt|':>12} {'cond H (K0)':>12} "
          f"{'cond H (K(θ))':>14}")
    for i in sorted(np.argsort(-d)[:worst]):
        th, s = log["theta"][i], log["s"][i]
        ref = solve_with_ipopt(tr, s, th, p)
        ocp = linearise(fns, th, p)
        print(f"{i:6d} {d[i]:9.2e} {np.abs(log['u_ws'][i] - ref.u0).max():11.1e} "
              f"{np.abs(log['u_device'][i] - ref.u0).max():12.1e} {condense(ocp, K=k0).cond_h:12.1f} "
              f"{condense(ocp).cond_h:14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--device", default="mps2-an386")
    parser.add_argument("--out", required=True)
    parser.add_argument("--worst", type=int, default=12)
    args = parser.parse_args()
    out = Path(args.out)
    log = run_logged(args.config, args.device, out)
    explain(args.config, log, args.worst)


if __name__ == "__main__":
    main()
