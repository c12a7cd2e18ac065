#!/usr/bin/env python3
"""The RTI solver's warm start: the last plan shifted by one stage, or as it is (issue #4 item 3).

Closed loops of the host float32 build of the generated RTI solver (rlmpc.codegen.mcu.generate_rti,
``warm_start="shifted"`` (default) and ``"plan"``; and shifted with two Gauss-Newton iterations
a step, the firmware's ``--sqp-iterations 2``) on the nonlinear cart-pole, from two sets of start
states: those of bench/mcu_solver.py (three strata: loops that keep, cross and never reach the
cart limit) and those of the host check (rlmpc.codegen.mcu.rti_check: uniform in a smaller box).
Each loop starts as the firmware does (STARTUP_ITERATIONS iterations at the first state).
Side by side in the same run: acados SQP_RTI (which reuses its last iterate unshifted; and with
its iterate shifted by one stage before each step, the generated solver's default) and the
converged Gauss-Newton SQP from the same starts.

    .venv/bin/python bench/rti_warm_start.py [--episodes 40] [--steps 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mcu_solver import BOUNDED, Acados, select_starts  # noqa: E402

from rlmpc.codegen.mcu.generate_rti import STARTUP_ITERATIONS, WARM_STARTS, generate_rti  # noqa: E402
from rlmpc.codegen.mcu.host_check import CLOSED_LOOP_SCALE, closed_loop_cost, random_states  # noqa: E402
from rlmpc.codegen.mcu.rti_check import RTI_OPTIONS, SQP_OPTIONS, RtiHostSolver  # noqa: E402
from rlmpc.codegen.mcu.toolchain import build_host_harness  # noqa: E402
from rlmpc.toolkit.mpc import MPC  # noqa: E402
from rlmpc.toolkit.parameters import FloatArray  # noqa: E402
from rlmpc.toolkit.problem import ProblemFunctions  # noqa: E402
from rlmpc.toolkit.problems import cartpole_mpc  # noqa: E402

LOSS = 1.01  # a loop whose cost exceeds the converged SQP's by more than 1 %


@dataclass
class Loops:
    """One controller's closed loops from every start."""

    cost: list[float]
    left: list[bool]  # the loop left |x| ≤ BOUNDED (the pole fell)
    qp_iterations: int = 0  # after the first step of each loop


def run_rti(exe: Path, fns: ProblemFunctions, theta: FloatArray, p: FloatArray, x0s: FloatArray,
            steps: int, per_step: int = 1) -> Loops:
    """Closed loops of the RTI harness, ``per_step`` Gauss-Newton iterations a step (firmware:
    ``rlmpc build --sqp-iterations``)."""
    out = Loops([], [])
    with RtiHostSolver(exe) as solver:
        for x0 in x0s:
            solver.reset()
            seen: list[FloatArray] = []

            def policy(x: FloatArray, seen: list[FloatArray] = seen) -> FloatArray:
                if not seen:
                    res = solver.solve_startup(x, STARTUP_ITERATIONS, fns.nx, fns.nu, fns.horizon)
                else:
                    res = solver.solve(x)
                    out.qp_iterations += res.iterations
                    for _ in range(per_step - 1):
                        if res.status <= 0:
                            break
                        solver.set_guess(*solver.plan(fns.nx, fns.nu, fns.horizon))
                        res = solver.solve(x)
                        out.qp_iterations += res.iterations
                seen.append(np.asarray(x))
                return res.u0

            out.cost.append(closed_loop_cost(fns, theta, p, policy, x0, steps))
            out.left.append(bool(np.max(np.abs(seen)) > BOUNDED))
    return out


def run_acados(mpc: MPC, fns: ProblemFunctions, theta: FloatArray, p: FloatArray, x0s: FloatArray,
               steps: int, startup: int = 1, shift: bool = False) -> Loops:
    """acados' closed loops; ``startup``: solves at the first state (an RTI's start-up);
    ``shift``: every later solve starts from the last plan shifted by one stage."""
    out = Loops([], [])
    for x0 in x0s:
        mpc.reset()
        seen: list[FloatArray] = []

        def policy(x: FloatArray, seen: list[FloatArray] = seen) -> FloatArray:
            for _ in range(startup - 1 if not seen else 0):
                mpc.value(x)
            if seen and shift:
                mpc.shift_warm_start()
            seen.append(np.asarray(x))
            return mpc.policy(x)

        out.cost.append(closed_loop_cost(fns, theta, p, policy, x0, steps))
        out.left.append(bool(np.max(np.abs(seen)) > BOUNDED))
    return out


def report(title: str, n: int, steps: int, sqp: Loops, rows: dict[str, Loops]) -> None:
    ref = np.array(sqp.cost)
    rti_ref = np.array(rows["acados SQP_RTI"].cost)
    shifted_ref = np.array(rows["acados SQP_RTI, shifted warm start"].cost)
    print(f"{title}: {n} closed loops of {steps} steps; cost relative to the converged SQP's "
          f"(which leaves |x| <= {BOUNDED:g} in {sum(sqp.left)} loops)")
    for name, loops in rows.items():
        ratio = np.array(loops.cost) / ref
        vs_rti = np.array(loops.cost) / rti_ref
        vs_shifted = np.array(loops.cost) / shifted_ref
        iters = f", QP iterations after the first steps {loops.qp_iterations}" if loops.qp_iterations else ""
        print(f"  {name}: cost / SQP median {np.median(ratio):.5f}, max {ratio.max():.4f}, "
              f"{int(np.sum(ratio > LOSS))} loops over +{(LOSS - 1) * 100:.0f} %; "
              f"cost / acados SQP_RTI max |1 - r| {np.max(np.abs(vs_rti - 1)):.1e} (shifted: "
              f"{np.max(np.abs(vs_shifted - 1)):.1e}); "
              f"leaves |x| <= {BOUNDED:g} in {sum(loops.left)} loops{iters}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rti_warm_start.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--check-loops", type=int, default=100, help="loops from the host check's starts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    fns = cartpole_mpc().build()
    theta = fns.theta.flatten(None)
    p = fns.params.flatten(None, check_bounds=False)

    def plant(x: FloatArray, u: FloatArray) -> FloatArray:
        return np.asarray(fns.dynamics(x, u, theta, p)).ravel()

    stratified, _ = select_starts(fns, Acados(fns, theta, SQP_OPTIONS), args.episodes, args.seed, args.steps,
                                  plant)
    start_sets = {
        "start states of bench/mcu_solver.py (keep / cross / never reach the cart limit)": stratified,
        "start states of the host check (rlmpc.codegen.mcu.rti_check, smaller box)":
            random_states(fns, args.check_loops, args.seed + 1, CLOSED_LOOP_SCALE),
    }
    with tempfile.TemporaryDirectory(prefix="rlmpc-rti-warm-") as tmp:
        exes = {}
        for warm in WARM_STARTS:
            gen = generate_rti(fns, Path(tmp) / warm, theta, p, "float32", warm_start=warm)
            exes[warm] = build_host_harness(gen, Path(tmp) / warm / "harness", rti=True)
        for title, starts in start_sets.items():
            x0s = starts.astype(np.float32).astype(float)
            sqp = run_acados(MPC(fns, SQP_OPTIONS, theta=theta, p=p), fns, theta, p, x0s, args.steps)
            rows = {"acados SQP_RTI": run_acados(MPC(fns, RTI_OPTIONS, theta=theta, p=p), fns, theta, p,
                                                 x0s, args.steps, STARTUP_ITERATIONS),
                    "acados SQP_RTI, shifted warm start": run_acados(
                        MPC(fns, RTI_OPTIONS, theta=theta, p=p), fns, theta, p, x0s, args.steps,
                        STARTUP_ITERATIONS, shift=True)}
            for warm, exe in exes.items():
                rows[f"rlmpc RTI float32, warm start: {warm}"] = run_rti(exe, fns, theta, p, x0s, args.steps)
            rows["rlmpc RTI float32, warm start: shifted, 2 iterations a step"] = run_rti(
                exes["shifted"], fns, theta, p, x0s, args.steps, per_step=2)
            report(title, len(x0s), args.steps, sqp, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
