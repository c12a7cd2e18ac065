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

The ADMM path (time-invariant QPs, cached Riccati gains) gets its rows next to them (iteration
cap ``--admm-cap``).

Part 2, ``--budget``: the ADMM path on the hover model at N = 20 with its iteration cap set so
that no step can exceed ``--budget`` instructions (default 200k; the cap follows from the
measured cost of a fixed part and of one iteration), closed loops from hard starts: closed-loop
cost against acados' converged closed loop, steps over the budget, non-finite inputs, soft-box
violation against acados' own; the dense path's instructions from the same starts for comparison
(DAQP has no iteration cap that keeps its answer usable: reported as measured).

Part 3, ``--sweep``: the structured path (``--sweep-method ipm|admm``) on the mass chain
(``mass_chain``) for nx ∈ {4, 8, 12}, nu ∈ {1, 2, 4}, N ∈ {10, 20, 40, 80}: static RAM,
instructions per iteration (median) and the log-log slope of both against N per (nx, nu).

    .venv/bin/python bench/structured_qp.py --hover --budget --sweep [--episodes 4] [--steps 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rlmpc.codegen.mcu.generate import generate  # noqa: E402
from rlmpc.codegen.mcu.host_check import REFERENCE_OPTIONS, closed_loop_cost  # noqa: E402
from rlmpc.codegen.mcu.qemu_bench import BenchPlan, BenchRun, QemuError, build_rlmpc_bench, run_bench  # noqa: E402
from rlmpc.codegen.mcu.structured.admm import generate_admm  # noqa: E402
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
        log(f"hover N={N}: ADMM")
        agen = generate_admm(fns, work / f"a{N}", precision="float32", max_iter=args.admm_cap)
        arow, _ = measure(f"ADMM (cap {args.admm_cap})", N, agen, plan, work / f"a{N}", mpc, box, args.timeout)
        rows.append(arow)
        lines.append(table_line(arow, ref_violation))
        if not args.skip_ipm:
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
    for name in ("structured", f"ADMM (cap {args.admm_cap})"):
        s = [r for r in rows if r.path == name]
        if len(s) >= 2:
            n = np.log([r.N for r in s])
            ram = np.polyfit(n, np.log([r.ram for r in s]), 1)[0]
            per_it = np.polyfit(n, np.log([r.per_iteration for r in s]), 1)[0]
            lines.append(f"\n{name}, log-log slope against N: RAM {ram:.2f}, instructions per iteration {per_it:.2f}")
    return lines


def _episode_costs(fns: ProblemFunctions, run: BenchRun, x0s: FloatArray, steps: int) -> list[float]:
    """Closed-loop cost of each episode of a QEMU run (its inputs replayed on the model in float64)."""
    th, pv = fns.theta.default(), fns.params.flatten(None, check_bounds=False)
    costs = []
    for e, x0 in enumerate(x0s):
        us = iter([s.u for s in run.steps if s.episode == e])

        def replay(x: FloatArray, us: Iterator[FloatArray] = us) -> FloatArray:
            return next(us)

        costs.append(closed_loop_cost(fns, th, pv, replay, x0, steps))
    return costs


def budget(args: argparse.Namespace, work: Path) -> list[str]:
    """ADMM with its cap from the instruction budget, closed loops at N = 20 (module docstring)."""
    N = 20
    fns = quadrotor_hover_mpc(horizon=N).build()
    A, B = hover_model(fns.dt)
    x0s = hover_starts(args.episodes, args.seed + 1)
    plan = BenchPlan.closed_loop(x0s, args.budget_steps, A, B)
    th, pv = fns.theta.default(), fns.params.flatten(None, check_bounds=False)
    mpc = MPC(fns, REFERENCE_OPTIONS)
    ref = []
    for x0 in x0s:
        mpc.reset()
        ref.append(closed_loop_cost(fns, th, pv, mpc.policy, x0, args.budget_steps))
    ref_violation = acados_violation(fns, x0s, args.budget_steps, A, B)

    def box(x: FloatArray) -> float:
        return max(float(np.max(np.abs(x[:3])) - POSITION_LIMIT), 0.0)

    settings: dict[str, float] = {"check_every": args.check_every, "tol_prim": args.budget_tol,
                                  "tol_dual": args.budget_tol}
    if args.budget_rho is not None:
        settings["rho"] = args.budget_rho
    # the cost of a fixed part and of one iteration, from two capped runs (every step hits the cap)
    probe = BenchPlan.closed_loop(x0s[:1], 5, A, B)
    top = []
    for cap in (2, 6):
        gen = generate_admm(fns, work / f"probe{cap}", precision="float32", max_iter=cap,
                            settings={**settings, "tol_prim": 0.0, "tol_dual": 0.0})
        _, run = measure("probe", N, gen, probe, work / f"probe{cap}", None, box, args.timeout)
        top.append(int(run.instructions.max()))
    per_it = (top[1] - top[0]) / 4
    fixed = top[0] - 2 * per_it
    cap = int((args.budget * 0.98 - fixed) // per_it)
    log(f"budget {args.budget:,}: fixed part {fixed:,.0f}, {per_it:,.0f} per iteration -> cap {cap}")
    lines = [f"budget {args.budget:,} instructions: fixed part {fixed:,.0f} + {per_it:,.0f} per ADMM iteration "
             f"(measured, cap 2 and 6) -> iteration cap {cap}; N = {N}, {args.episodes} closed loops of "
             f"{args.budget_steps} steps from hard starts",
             "| path | instr./step median | p99 | max | steps over budget | non-finite u | iterations median |"
             " closed-loop cost / acados (worst) | max soft-box violation (acados) | statuses |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    gen = generate_admm(fns, work / "admm_budget", precision="float32", max_iter=cap, settings=settings)
    label = (f"ADMM (cap {cap}, check every {args.check_every}, tol {args.budget_tol:g}"
             + (f", rho {args.budget_rho:g})" if args.budget_rho is not None else ")"))
    paths: list[tuple[str, SolverSources]] = [(label, gen)]
    if not args.no_dense:
        paths.append(("dense (DAQP, uncapped)", generate(fns, work / "dense_budget", precision="float32")))
    for name, g in paths:
        row, run = measure(name, N, g, plan, work / name.split()[0], None, box, args.timeout)
        ins = run.instructions
        ratios = np.asarray(_episode_costs(fns, run, x0s, args.budget_steps)) / np.asarray(ref)
        finite = sum(not np.all(np.isfinite(s.u)) for s in run.steps)
        over = int(np.sum(ins > args.budget))
        lines.append(f"| {name} | {row.median:,.0f} | {row.p99:,.0f} | {row.max:,} | {over} | "
                     f"{finite} | {row.iterations_median:.0f} | {ratios.max():.4f} (mean {ratios.mean():.4f}) | "
                     f"{row.violation:.3f} ({ref_violation:.3f}) | {row.statuses} |")
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
                gen: SolverSources
                if args.sweep_method == "admm":  # (ρ fixed: RAM and work per iteration do not depend on it)
                    gen = generate_admm(fns, out, precision="float32", max_iter=20,
                                        settings={"rho": 3.0, "tol_prim": 0.0, "tol_dual": 0.0})
                else:
                    gen = generate_structured(fns, out, precision="float32", max_iter=args.max_iter)
                row, _ = measure(args.sweep_method, N, gen, plan, out, None, lambda x: 0.0, args.timeout)
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
    parser.add_argument("--skip-ipm", action="store_true", help="no interior-point rows (slow in QEMU)")
    parser.add_argument("--admm-cap", type=int, default=500, help="ADMM iteration cap of the hover table")
    parser.add_argument("--budget", type=int, nargs="?", const=200_000, default=None,
                        help="budget mode with this many instructions per step (default 200k)")
    parser.add_argument("--budget-steps", type=int, default=100)
    parser.add_argument("--check-every", type=int, default=1, help="budget mode: ADMM residual check period")
    parser.add_argument("--budget-tol", type=float, default=1e-5, help="budget mode: ADMM residual tolerance")
    parser.add_argument("--budget-rho", type=float, default=None, help="budget mode: ADMM rho (default: measured)")
    parser.add_argument("--sweep-method", choices=["ipm", "admm"], default="admm")
    parser.add_argument("--tinympc", action="store_true", help="also TinyMPC (its own venv, build/tinympc-venv)")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: temporary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rlmpc-structured-bench-") as tmp:
        work = args.out or Path(tmp)
        out: list[str] = []
        if args.hover:
            out += ["## hover model, float32, mps2-an386", *hover(args, work / "hover")]
        if args.budget is not None:
            out += ["", "## budget mode (hover, N = 20, float32, mps2-an386)", *budget(args, work / "budget")]
        if args.sweep:
            out += ["", f"## size sweep (mass chain, {args.sweep_method})", *sweep(args, work / "sweep")]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
