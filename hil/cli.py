"""``rlmpc hil``: close the loop through a firmware, judge it and write the report.

Either ``--url`` (a running firmware: ``/dev/ttyACM0``, a pty, ``socket://host:port``,
``rfc2217://…``) or ``--program`` with ``--board`` (start the emulator / host program, stop it
afterwards).  The reference policy is the workstation MPC of the bundle's manifest at its θ.
Exit code 0 on PASS, 1 on FAIL, 2 on a usage or link error.

Hooked into ``toolkit/cli.py`` with :func:`add_hil_command`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PLANTS = {"lti": "LtiGrosZanon", "cartpole": "CartPole", "pendulum": "Pendulum-v1"}


def add_hil_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hil = sub.add_parser("hil", help="hardware-in-the-loop run of a controller firmware against the plant")
    hil.add_argument("bundle", help="bare-metal bundle folder (its manifest.json gives problem and θ)")
    where = hil.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="serial port of a running firmware (pyserial URL or device path)")
    where.add_argument("--program", help="firmware build to start (controller.elf or host controller)")
    hil.add_argument("--board", choices=["host", "mps2-an386", "stm32f405"],
                     help="board of --program")
    hil.add_argument("--steps", type=int, default=100, help="closed-loop steps (default 100)")
    hil.add_argument("--seed", type=int, default=0, help="plant seed (default 0)")
    hil.add_argument("--plant", default=None, help="plant name (default: by the bundle's problem)")
    hil.add_argument("--thresholds", default=None, help="JSON file with verdict thresholds")
    hil.add_argument("--cost-budget", type=float, default=None,
                     help="per-step device cost limit (instructions / cycles / µs)")
    hil.add_argument("--out", default="runs/hil", help="report folder (default runs/hil)")
    hil.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    import contextlib

    import numpy as np

    from codegen.firmware import Bundle, start_emulator
    from hil.report import write_report
    from hil.runner import run_hil
    from hil.transport import Device, TransportError, open_link
    from hil.verdict import Thresholds, evaluate
    from toolkit import MPC, SolverOptions
    from toolkit.registry import make_env, make_problem

    if args.program and not args.board:
        print("rlmpc hil: error: --program needs --board", file=sys.stderr)
        return 2
    bundle = Bundle.load(args.bundle)
    manifest: dict[str, Any] = bundle.manifest
    th = Thresholds.load(args.thresholds) if args.thresholds else Thresholds()
    if args.cost_budget is not None:
        th = Thresholds(**{**th.__dict__, "cost_budget": args.cost_budget})
    name = manifest["problem"]["name"]
    fns = make_problem(name, manifest["problem"].get("params", {})).build()
    reference = MPC(fns, SolverOptions(tol=1e-9), theta=np.array(manifest["theta"]["flat"]))
    plant = make_env(args.plant or PLANTS[name], {})
    with contextlib.ExitStack() as stack:
        url = args.url
        emu = None
        if args.program:
            emu = stack.enter_context(start_emulator(args.program, args.board))
            url = emu.serial_url
        try:
            port = open_link(url)
        except TransportError as exc:
            print(f"rlmpc hil: error: {exc}", file=sys.stderr)
            return 2
        stack.callback(port.close)
        if emu is not None:
            stack.callback(emu.stop, port)  # EXIT frame first, then signals
        try:
            device = Device(port)
            device.connect()
            run = run_hil(device, plant, reference, args.steps, args.seed, manifest=manifest)
        except TransportError as exc:
            print(f"rlmpc hil: error: {exc}", file=sys.stderr)
            return 2
    verdict = evaluate(run, th)
    paths = write_report(run, verdict, Path(args.out))
    m = json.loads(paths["json"].read_text())["metrics"]
    def g(key: str, spec: str) -> str:
        return "–" if m.get(key) is None else format(m[key], spec)

    print(f"HIL {run.board}: {verdict.label}  max|Δu| {g('max_action_error', '.3g')}  "
          f"cost ratio {g('cost_ratio', '.6f')}  {g('link_steps_per_second', '.0f')} steps/s over the link")
    for reason in verdict.reasons:
        print(f"  {reason}")
    print(f"report: {paths['markdown']}")
    return 0 if verdict.passed else 1


__all__ = ["add_hil_command", "run_command"]
