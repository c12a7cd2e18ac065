"""``rlmpc bench-target``: the device's own cost per control step over closed loops.

Every ACTION frame carries what the step cost on the device (``INFO.cost_unit``: instructions on
``mps2-an386`` under ``-icount shift=0``, core cycles on ``stm32f405``, microseconds on the
POSIX boards).  This command closes ``--episodes`` loops of ``--steps`` steps around the plant
(as ``rlmpc hil`` does, seeds ``seed, seed+1, …``; ``--starts FILE``: one loop from each state of
a CSV or ``.npy`` file, one state per row) and prints the distribution: all steps, the
start-up steps (the first after RESET, which may iterate more) and the steady ones, with the
steps over an optional ``--budget``.  Writes ``bench_target.json`` and a histogram
``bench_target.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.hil.cli import (
    MAX_STEPS,
    add_device_arguments,
    add_plant_arguments,
    check_device_arguments,
    connected_device,
    reference_and_plant,
)
from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder

PERCENTILES = (50, 90, 99)
OUTPUTS = ("bench_target.json", "bench_target.png", "serial.log", "firmware")


@dataclass(frozen=True)
class CostSummary:
    """Distribution of the per-step cost of a set of steps."""

    count: int
    minimum: float
    median: float
    p90: float
    p99: float
    maximum: float
    mean: float

    @classmethod
    def of(cls, values: np.ndarray) -> CostSummary | None:
        if values.size == 0:
            return None
        p50, p90, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
        return cls(int(values.size), float(values.min()), p50, p90, p99, float(values.max()),
                   float(values.mean()))

    def line(self, label: str) -> str:
        return (f"  {label:<16} n={self.count:<5} min {self.minimum:>10,.0f}  median {self.median:>10,.0f}  "
                f"p90 {self.p90:>10,.0f}  p99 {self.p99:>10,.0f}  max {self.maximum:>10,.0f}")


def summarize(costs: np.ndarray, startup: np.ndarray, budget: float | None) -> dict[str, Any]:
    """The summaries of all, start-up and steady steps, and the steps over ``budget``."""
    out: dict[str, Any] = {}
    for key, values in (("all", costs), ("startup", costs[startup]), ("steady", costs[~startup])):
        s = CostSummary.of(values)
        out[key] = None if s is None else s.__dict__
    out["budget"] = budget
    out["over_budget"] = None if budget is None else int(np.sum(costs > budget))
    return out


def _histogram(costs: np.ndarray, startup: np.ndarray, unit: str, path: Path, title: str,
               budget: float | None = None) -> None:
    from rlmpc.toolkit import figures

    fig, ax = figures.subplots(figsize=(7, 3.5))
    bins: list[float] | int = (np.linspace(costs.min(), costs.max(), 40).tolist()
                               if costs.max() > costs.min() else 10)
    ax.hist([costs[~startup], costs[startup]], bins=bins, stacked=True,
            label=["steady steps", "start-up steps"], color=["tab:blue", "tab:orange"])
    if budget is not None:
        ax.axvline(budget, color="k", ls="--", lw=1.2, label=f"budget {budget:,.0f}")
    ax.set_xlabel(f"cost per control step [{unit}]")
    ax.set_ylabel("steps")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def load_starts(path: str | Path, nx: int) -> np.ndarray:
    """Initial states from a CSV (comma-separated, ``#`` comments) or ``.npy`` file, one per row;
    one-line ValueError naming the file otherwise."""
    src = Path(path)
    try:
        if src.suffix == ".npy":
            arr = np.load(src, allow_pickle=False)
        else:
            arr = np.loadtxt(src, delimiter=",", ndmin=2, comments="#")
    except (OSError, ValueError) as exc:
        raise ValueError(f"--starts {src}: cannot read ({exc})") from None
    arr = np.asarray(arr, dtype=float)
    if arr.ndim == 1 and arr.size == nx:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != nx or arr.shape[0] < 1:
        raise ValueError(f"--starts {src}: expected rows of {nx} numbers (one state per row), got shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"--starts {src}: expected finite numbers")
    return arr


def run_bench_target(args: argparse.Namespace) -> int:
    from rlmpc.codegen.firmware import Bundle
    from rlmpc.codegen.mcu.toolchain import ToolchainError
    from rlmpc.hil.runner import run_hil
    from rlmpc.hil.transport import TransportError

    if args.starts is not None and args.episodes is not None:
        print("rlmpc bench-target: error: --episodes: not with --starts (one loop per state of the file)",
              file=sys.stderr)
        return 2
    args.episodes = 5 if args.episodes is None else args.episodes
    if args.episodes < 1 or args.steps < 1:
        print("rlmpc bench-target: error: --episodes and --steps: expected >= 1", file=sys.stderr)
        return 2
    if args.episodes * args.steps > MAX_STEPS:
        print(f"rlmpc bench-target: error: --episodes × --steps: expected at most {MAX_STEPS} steps in all, "
              f"got {args.episodes * args.steps}", file=sys.stderr)
        return 2
    if args.seed < 0:
        print(f"rlmpc bench-target: error: --seed: expected >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if args.budget is not None and not args.budget > 0:
        print(f"rlmpc bench-target: error: --budget: expected a positive per-step cost, got {args.budget:g}",
              file=sys.stderr)
        return 2
    check_device_arguments(args)
    bundle = Bundle.load(args.bundle, allow_modified=args.allow_modified)
    starts = None if args.starts is None else load_starts(args.starts, int(bundle.manifest["dims"]["nx"]))
    if starts is not None:
        args.episodes = starts.shape[0]
    reference, plant = reference_and_plant(bundle.manifest, args.plant, args.plant_params)
    out = claim_output_folder(args.out, "bench-target", OUTPUTS)
    costs: list[np.ndarray] = []
    startup: list[np.ndarray] = []
    errors: list[float] = []
    lost = ran = 0
    aborted: str | None = None
    interrupted = False
    log: list[tuple[float, str, bytes]] = []
    try:
        with connected_device(args, bundle.directory, out / "firmware") as device:
            board, unit = device.info().board_name, device.cost_unit.name.lower()
            from tqdm import tqdm

            for e in tqdm(range(args.episodes), desc="closed loops", unit="loop", file=sys.stderr):
                run = run_hil(device, plant, reference, args.steps, args.seed + e, manifest=bundle.manifest,
                              x0=None if starts is None else starts[e])
                ok = ~run.lost
                lost += int(run.lost.sum())
                ran += run.steps
                first = np.zeros(run.steps, dtype=bool)
                first[:1] = True
                costs.append(run.device_cost[ok].astype(float))
                startup.append(first[ok])
                if ok.any():
                    errors.append(float(np.max(run.action_error[ok])))
                log = run.serial_log
                if run.aborted is not None:
                    aborted, interrupted = f"closed loop {e + 1}: {run.aborted}", run.interrupted
                    break
    except (TransportError, ToolchainError) as exc:
        print(f"rlmpc bench-target: error: {exc}", file=sys.stderr)
        return 2
    (out / "serial.log").write_text("".join(f"{t:.6f} {d} {b.hex()}\n" for t, d, b in log), encoding="ascii")
    c, s = np.concatenate(costs), np.concatenate(startup)
    summary = summarize(c, s, args.budget)
    doc = {"format": "rlmpc-bench-target/1", "board": board, "unit": unit, "episodes": args.episodes,
           "steps": args.steps, "seed": args.seed, "steps_run": ran, "aborted": aborted, "lost_steps": lost,
           **({"starts": starts.tolist()} if starts is not None else {}),
           "max_action_error": max(errors) if errors else None, "summary": summary,
           "costs": c.tolist(), "startup": s.tolist()}
    (out / "bench_target.json").write_text(json.dumps(doc, indent=1) + "\n")
    if aborted is not None or c.size == 0:
        complete_output_folder(out, "bench-target")
        what = "interrupted" if interrupted else "error"
        print(f"rlmpc bench-target: {what}: {aborted or 'no step was answered'}; {ran} of "
              f"{args.episodes * args.steps} steps ran, partial results: {out / 'bench_target.json'}, "
              f"serial log: {out / 'serial.log'}", file=sys.stderr)
        return 130 if interrupted else 2
    title = f"{board}: {bundle.manifest['problem']['name']}, {args.episodes} × {args.steps} steps"
    _histogram(c, s, unit, out / "bench_target.png", title, args.budget)
    print(f"bench-target {board}: {unit} per control step, {args.episodes} closed loops × {args.steps} "
          f"steps (seeds {args.seed}…{args.seed + args.episodes - 1}"
          + (f"; from the states of {args.starts})" if starts is not None else ")"))
    for key, label in (("all", "all steps"), ("startup", "start-up steps"), ("steady", "steady steps")):
        if summary[key] is not None:
            print(CostSummary(**summary[key]).line(label))
    if args.budget is not None:
        print(f"  over the budget of {args.budget:,.0f}: {summary['over_budget']} steps")
    print(f"  lost steps {lost}; max |u_dev - u_ref| {doc['max_action_error']:.3g}")
    print(f"written: {out / 'bench_target.json'}, {out / 'bench_target.png'}")
    complete_output_folder(out, "bench-target")
    return 0


def add_bench_target_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-target", help="distribution of the device's cost per control step "
                       "(instructions / cycles / µs) over closed loops")
    p.add_argument("bundle", help="bundle folder (its manifest.json gives problem and θ)")
    add_device_arguments(p)
    p.add_argument("--episodes", type=int, default=None, help="closed loops (default 5)")
    p.add_argument("--starts", default=None, help="initial states, one per row (CSV or .npy): one closed loop "
                   "from each (instead of --episodes from the plant's resets)")
    p.add_argument("--steps", type=int, default=100, help="steps per loop (default 100)")
    p.add_argument("--seed", type=int, default=0, help="plant seed of the first loop (default 0)")
    add_plant_arguments(p)
    p.add_argument("--budget", type=float, default=None, help="count the steps above this cost")
    p.add_argument("--allow-modified", action="store_true",
                   help="with --target: build a bundle whose files differ from its manifest (recorded)")
    p.add_argument("--out", default="runs/bench-target", help="output folder (default runs/bench-target)")
    p.set_defaults(func=run_bench_target)


__all__ = ["CostSummary", "add_bench_target_command", "run_bench_target", "summarize"]
