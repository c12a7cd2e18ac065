#!/usr/bin/env python3
"""The structured MCU QP path against the dense one on QEMU mps2-an386, float32 (issue 15).

Part 1, ``--hover``: the 12-state/4-input hover model (``quadrotor_hover``: soft position box,
input box) at N = 10, 20, 40, 80.  Closed loops on the model's own linear dynamics (simulated
in float32 on the MCU) from hard starts (positions ±1.5, velocities ±1), the first step of
each a cold start.  Per path: instructions per step (median, p99, max incl. the cold starts),
interior-point / active-set iterations, instructions per iteration, the solver's Cortex-M4F
flash and static RAM (export footprint), max |Δu0| against acados (tol 1e-9) at the visited
states, and the largest soft-box violation of the loops (acados' own loops from the same
starts for comparison).  The dense path is built where its condensing fits the emulator.

Part 2, ``--sweep``: the structured path on the mass chain (``mass_chain``) for
nx ∈ {4, 8, 12}, nu ∈ {1, 2, 4}, N ∈ {10, 20, 40, 80}: static RAM, instructions per
iteration (median) and the log-log slope of both against N per (nx, nu).

    .venv/bin/python bench/structured_qp.py --hover --sweep [--episodes 4] [--steps 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rlmpc.codegen.mcu.generate import generate  # noqa: E402
from rlmpc.codegen.mcu.host_check import REFERENCE_OPTIONS  # noqa: E402
from rlmpc.codegen.mcu.qemu_bench import BenchPlan, BenchRun, QemuError, build_rlmpc_bench, run_bench  # noqa: E402
from rlmpc.codegen.mcu.structured.generate import generate_structured  # noqa: E402
from rlmpc.codegen.mcu.toolchain import SolverSources, cortex_m4_footprint  # noqa: E402
from rlmpc.toolkit.mpc import MPC  # noqa: E402
from rlmpc.toolkit.parameters import FloatArray  # noqa: E402
from rlmpc.toolkit.problem import ProblemFunctions  # noqa: E402
from rlmpc.toolkit.problems.mass_chain import chain_model, mass_chain_mpc  # noqa: E402
from rlmpc.toolkit.problems.quadrotor import (  # noqa: E402
    INPUT_LIMITS,
    POSITION_LIMIT,
    hover_model,
    quadrotor_hover_mpc,
)

HORIZONS = (10, 20, 40, 80)
SWEEP_NX, SWEEP_NU = (4, 8, 12), (1, 2, 4)
DENSE_MAX_N = 40  # the dense path's condensing of the hover model beyond this: minutes, megabytes


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One solver on one problem size."""

    path: str
    N: int
    median: float
    p99: float
    max: int
    iterations_median: float
    per_iteration: float
    flash: int
    ram: int
    du0: float
    violation: float
    statuses: dict[int, int]


def hover_starts(n: int, seed: int) -> FloatArray:
    box = np.r_[[1.5] * 3, [1.0] * 3, [0.0] * 6]
    return np.random.default_rng(seed).uniform(-1, 1, (n, 12)) * box


def measure(path: str, N: int, gen: SolverSources, plan: BenchPlan, out: Path, mpc: MPC | None,
            box: Callable[[FloatArray], float], timeout: float) -> tuple[Row, BenchRun]:
    fw = build_rlmpc_bench(gen, plan, out / "fw")
    fp = cortex_m4_footprint(gen, out / "size")
    t0 = time.perf_counter()
    run = run_bench(fw, plan, timeout)
    log(f"  {path}: {plan.n_steps} steps in QEMU in {time.perf_counter() - t0:.1f} s")
    ins = run.instructions.astype(float)
    its = np.array([max(s.iterations, 1) for s in run.steps], dtype=float)
    du0 = 0.0
    if mpc is not None:
        for s in run.steps:
            mpc.reset()
            du0 = max(du0, float(np.max(np.abs(mpc.value(s.x).u0 - s.u))))
    statuses: dict[int, int] = {}
    for s in run.steps:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    return Row(path, N, float(np.median(ins)), float(np.percentile(ins, 99)),
               int(ins.max()), float(np.median(its)), float(np.median(ins / its)), fp.flash, fp.ram, du0,
               max(box(s.x) for s in run.steps), statuses), run


def acados_violation(fns: ProblemFunctions, x0s: FloatArray, steps: int, A: FloatArray, B: FloatArray) -> float:
    mpc = MPC(fns, REFERENCE_OPTIONS)
    worst = 0.0
    for x0 in x0s:
        x = np.asarray(x0, dtype=float)
        mpc.reset()
        for _ in range(steps):
            worst = max(worst, float(np.max(np.abs(x[:3])) - POSITION_LIMIT))
            x = A @ x + B @ mpc.policy(x)
    return max(worst, 0.0)


def table_line(r: Row, ref_violation: float) -> str:
    return (f"| {r.path} | {r.N} | {r.median:,.0f} | {r.p99:,.0f} | {r.max:,} | {r.iterations_median:.0f} | "
            f"{r.per_iteration:,.0f} | {r.flash / 1024:.1f} KB | {r.ram / 1024:.1f} KB | {r.du0:.1e} | "
            f"{r.violation:.3f} ({ref_violation:.3f}) | {r.statuses} |")


def tinympc_row(fns: ProblemFunctions, N: int, plan: BenchPlan, out: Path, mpc: MPC,
                box: Callable[[FloatArray], float], args: argparse.Namespace) -> Row:
    """TinyMPC's code generation of the same model, weights and boxes (soft box made hard)."""
    import tinympc_peer

    A, B = hover_model(fns.dt)
    th = fns.theta.unflatten(fns.theta.default())
    big = 1e3
    bounds = {"x_min": np.r_[[-POSITION_LIMIT] * 3, [-big] * 9], "x_max": np.r_[[POSITION_LIMIT] * 3, [big] * 9],
              "u_min": -np.asarray(INPUT_LIMITS), "u_max": np.asarray(INPUT_LIMITS)}
    python = tinympc_peer.ensure_venv()
    gen = tinympc_peer.generate(A, B, np.diag(np.ravel(th["q"])), np.diag(np.ravel(th["r"])), N, bounds, out, python)
    heap = 4 * 16 * (12 + 4) * (N + 2) + 4 * 12 * 12 * 8 + 16 * 1024
    fw = tinympc_peer.build(gen, plan, out / "fw", heap)
    t0 = time.perf_counter()
    run = run_bench(fw, plan, args.timeout)
    log(f"  TinyMPC: {plan.n_steps} steps in QEMU in {time.perf_counter() - t0:.1f} s")
    ins = run.instructions.astype(float)
    its = np.array([max(s.iterations, 1) for s in run.steps], dtype=float)
    du0 = 0.0
    for s in run.steps:
        mpc.reset()
        du0 = max(du0, float(np.max(np.abs(mpc.value(s.x).u0 - s.u))))
    statuses: dict[int, int] = {}
    for s in run.steps:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    return Row("TinyMPC 0.0.8 (float)", N, float(np.median(ins)), float(np.percentile(ins, 99)), int(ins.max()),
               float(np.median(its)), float(np.median(ins / its)), fw.flash, fw.ram, du0,
               max(box(s.x) for s in run.steps), statuses)


def hover(args: argparse.Namespace, work: Path) -> list[str]:
    rows: list[Row] = []
    lines = ["| path | N | instr./step median | p99 | max (incl. cold) | iterations median | instr./iteration |"
             " flash | RAM | max \\|Δu0\\| vs acados | max soft-box violation (acados) | statuses |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def box(x: FloatArray) -> float:
        return max(float(np.max(np.abs(x[:3])) - POSITION_LIMIT), 0.0)

    for N in args.horizons:
        fns = quadrotor_hover_mpc(horizon=N).build()
        A, B = hover_model(fns.dt)
        x0s = hover_starts(args.episodes, args.seed)
        plan = BenchPlan.closed_loop(x0s, args.steps, A, B)
        mpc = MPC(fns, REFERENCE_OPTIONS)
        ref_violation = acados_violation(fns, x0s, args.steps, A, B)
        log(f"hover N={N}: structured")
        gen = generate_structured(fns, work / f"s{N}", precision="float32", max_iter=args.max_iter)
        row, _ = measure("structured", N, gen, plan, work / f"s{N}", mpc, box, args.timeout)
        rows.append(row)
        lines.append(table_line(row, ref_violation))
        if args.tinympc:
            log(f"hover N={N}: TinyMPC")
            try:
                lines.append(table_line(tinympc_row(fns, N, plan, work / f"t{N}", mpc, box, args), ref_violation))
            except (subprocess.CalledProcessError, QemuError) as exc:
                log(f"  TinyMPC N={N}: {type(exc).__name__}: {str(exc)[:300]}")
                lines.append(f"| TinyMPC | {N} | failed: {type(exc).__name__} |" + " |" * 10)
        if N <= DENSE_MAX_N and not args.no_dense:
            log(f"hover N={N}: dense")
            try:
                dgen = generate(fns, work / f"d{N}", precision="float32")
                drow, _ = measure("dense", N, dgen, plan, work / f"d{N}", mpc, box, args.timeout)
                rows.append(drow)
                lines.append(table_line(drow, ref_violation))
            except Exception as exc:  # a failed build or run is a result here
                log(f"  dense N={N}: {type(exc).__name__}: {str(exc)[:200]}")
                lines.append(f"| dense | {N} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} |"
                             + " |" * 10)
    s = [r for r in rows if r.path == "structured"]
    if len(s) >= 2:
        n = np.log([r.N for r in s])
        ram = np.polyfit(n, np.log([r.ram for r in s]), 1)[0]
        per_it = np.polyfit(n, np.log([r.per_iteration for r in s]), 1)[0]
        lines.append(f"\nstructured, log-log slope against N: RAM {ram:.2f}, instructions per iteration {per_it:.2f}")
    return lines


def sweep(args: argparse.Namespace, work: Path) -> list[str]:
    lines = ["| nx | nu | " + " | ".join(f"N={N} RAM / instr. per iteration" for N in args.horizons)
             + " | slope RAM | slope instr./iteration |",
             "|---|---|" + "---|" * len(args.horizons) + "---|---|"]
    for nx in SWEEP_NX:
        for nu in SWEEP_NU:
            rams, per_it = [], []
            for N in args.horizons:
                fns = mass_chain_mpc(nx=nx, nu=nu, horizon=N).build()
                A, B = chain_model(nx, nu, fns.dt)
                x0s = np.random.default_rng(args.seed).uniform(-1, 1, (2, nx))
                plan = BenchPlan.closed_loop(x0s, 10, A, B)
                out = work / f"chain_{nx}_{nu}_{N}"
                gen = generate_structured(fns, out, precision="float32", max_iter=args.max_iter)
                row, _ = measure("structured", N, gen, plan, out, None, lambda x: 0.0, args.timeout)
                rams.append(row.ram)
                per_it.append(row.per_iteration)
                log(f"sweep nx={nx} nu={nu} N={N}: RAM {row.ram} B, {row.per_iteration:,.0f} instr./iteration")
            n = np.log(np.asarray(args.horizons, dtype=float))
            cells = " | ".join(f"{r / 1024:.1f} KB / {p:,.0f}" for r, p in zip(rams, per_it, strict=True))
            lines.append(f"| {nx} | {nu} | {cells} | {np.polyfit(n, np.log(rams), 1)[0]:.2f} | "
                         f"{np.polyfit(n, np.log(per_it), 1)[0]:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hover", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--horizons", type=lambda s: tuple(int(v) for v in s.split(",")), default=HORIZONS)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--no-dense", action="store_true")
    parser.add_argument("--tinympc", action="store_true", help="also TinyMPC (its own venv, build/tinympc-venv)")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: temporary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rlmpc-structured-bench-") as tmp:
        work = args.out or Path(tmp)
        out: list[str] = []
        if args.hover:
            out += ["## hover model, float32, mps2-an386", *hover(args, work / "hover")]
        if args.sweep:
            out += ["", "## size sweep (mass chain, structured path)", *sweep(args, work / "sweep")]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
