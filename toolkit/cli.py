"""The ``rlmpc`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _doctor(_: argparse.Namespace) -> int:
    from toolkit.acados_runtime import REPAIR_HINT, check_installation

    results = check_installation()
    for r in results:
        print(f"[{'ok' if r.ok else 'FAIL'}] {r.name}: {r.detail}")
    if all(r.ok for r in results):
        return 0
    print(f"\nThe acados/CasADi installation is broken; {REPAIR_HINT}", file=sys.stderr)
    return 1


def _demo(args: argparse.Namespace) -> int:
    from toolkit.demo_core import run_core_demo

    run_core_demo(Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlmpc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check the acados and CasADi installation")
    doctor.set_defaults(func=_doctor)
    demo = sub.add_parser("demo", help="the MPC core on a cart-pole: V, Q, π, sensitivities")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:
        print(f"rlmpc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
