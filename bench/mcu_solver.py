#!/usr/bin/env python3
"""Instructions per MPC step on a Cortex-M4F, emulated (QEMU mps2-an386, -icount shift=0): issue #4 item 7.

For each problem the float32 solver is generated, linked into the bare-metal benchmark
(firmware_templates/bench, board firmware_templates/boards/mps2-an386) and run in QEMU;
every solve is bracketed by the SysTick-based counter, which under ``-icount shift=0``
gives exact instruction counts (resolution 40).

* ``lti`` (N=10, default θ or ``--theta``) and ``linear_cartpole`` (N=20, |u| ≤ 5, soft
  |x1| ≤ 1): closed loops on the MPC's own linear model, simulated in float32 on the MCU.
* ``cartpole`` (nonlinear, RTI): closed loops of the host float32 build of the same RTI
  solver on the nonlinear plant, replayed state by state on the MCU.  As in the firmware, the
  first step of a loop iterates STARTUP_ITERATIONS times (SQP to convergence: no guess yet).

Initial states are drawn uniformly from the reference box of rlmpc.codegen.mcu.host_check
(cart-pole: |x1| ≤ 0.95) and kept if the acados controller's own closed loop from them
stays bounded (many starts of the cart-pole box cannot be saved with |u| ≤ 5), in three
strata by that loop (select_starts): half reach a state bound and keep it, a quarter cross it,
the rest never reach it.  The cart-limit check compares each solver's closed loop with
acados' from the same start.

u0 is compared with the host float32 build of the same solver on the same states and with
acados (tol 1e-9; for the RTI: the converged Gauss-Newton SQP, so that column is the RTI's
own error).  The first step of each loop is reported on its own; the later ones are split by
the constraints active in the acados plan (at a state bound, or past it: soft slack needed),
and the goal is checked for all steps and for the later steps whose plan keeps the limits.
On the linear cart-pole, OSQP's code generation (embedded mode 1, ``parameters='vectors'``,
float; the sparse QP of osqp_peer, from its own venv build/osqp-venv) runs the
same closed loops in the same way.

    .venv/bin/python bench/mcu_solver.py [--theta runs/lti_qlearning/theta.json] [--no-osqp]
        [--episodes 40] [--rti-warm-start plan]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from osqp_peer import ADAPTER as OSQP_ADAPTER  # noqa: E402
from osqp_peer import DEFAULT_VENV, ensure_venv, generate_osqp, sparse_qp  # noqa: E402

from rlmpc.codegen.mcu.generate import generate  # noqa: E402
from rlmpc.codegen.mcu.generate_rti import STARTUP_ITERATIONS, WARM_STARTS, generate_rti  # noqa: E402
from rlmpc.codegen.mcu.host_check import REFERENCE_OPTIONS, plan_activity, random_states  # noqa: E402
from rlmpc.codegen.mcu.linearise import LinearisedOcp, linearise  # noqa: E402
from rlmpc.codegen.mcu.qemu_bench import (  # noqa: E402
    BENCH_DIR,
    BenchPlan,
    BenchRun,
    Distribution,
    Firmware,
    Unit,
    bench_units,
    build_firmware,
    build_rlmpc_bench,
    host_replay,
    run_bench,
)
from rlmpc.codegen.mcu.rti_check import SQP_OPTIONS, RtiHostSolver  # noqa: E402
from rlmpc.codegen.mcu.toolchain import build_host_harness  # noqa: E402
from rlmpc.toolkit.mpc import MPC  # noqa: E402
from rlmpc.toolkit.options import SolverOptions  # noqa: E402
from rlmpc.toolkit.parameters import FloatArray  # noqa: E402
from rlmpc.toolkit.problem import ParametricMPC, ProblemFunctions  # noqa: E402
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc  # noqa: E402
from rlmpc.toolkit.problems.cartpole import CART_LIMIT  # noqa: E402
from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc  # noqa: E402

BUILDERS: dict[str, Callable[[], ParametricMPC]] = {
    "lti": lti_mpc, "linear_cartpole": linear_cartpole_mpc, "cartpole": cartpole_mpc}
STEPS = {"lti": 40, "linear_cartpole": 100, "cartpole": 100}
GOALS = {"linear_cartpole": 10_000, "cartpole": 100_000}  # instructions per step (issue #4)
X1_MARGIN = 0.95  # initial |x1| of the cart-pole closed loops
BOUNDED = 3.0  # max |x| of an acados closed loop that counts as bounded
X1_TOL = 1e-3  # |x1| above 1 + X1_TOL violates the cart limit (also: a plan's soft slack counts)
MAX_CANDIDATES = 25  # × episodes: how far select_starts looks for loops that touch the limit
AT_BOUND = "state constraint at its bound"
VIOLATED = "state constraint exceeded"  # the plan needs soft slack (> X1_TOL): the cart beyond its limit
KINDS = ("unconstrained", "input bound active", AT_BOUND, VIOLATED)
NULL_ADAPTER = BENCH_DIR / "bench_null.c"


def log(msg: str) -> None:
    print(f"[mcu-bench] {msg}", file=sys.stderr, flush=True)


@dataclass
class Result:
    """One solver on one problem."""

    problem: str
    solver: str
    counts: Distribution
    by_activity: dict[str, Distribution]  # later steps, by the constraints active in acados' plan
    by_start: dict[str, Distribution]  # first step of a loop (cold start) / later steps
    within_limits: Distribution  # later steps whose acados plan needs no soft slack
    over_goal: int  # steps above GOALS[problem] (0 without a goal)
    over_goal_within: int  # ... of those in within_limits
    iterations: Distribution
    failures: int  # steps with status <= 0
    u0_vs_acados: float  # max |Δu0| against acados at the same states
    u0_vs_acados_median: float
    u0_vs_host: float | None  # max |Δu0| against the host float32 build (same solver)
    flash: int  # the whole benchmark program
    ram: int
    solver_flash: int  # minus the program without a solver
    solver_ram: int
    max_abs_x1: float | None = None  # cart-pole closed loops
    x1_excess: float | None = None  # max over loops of max|x1| minus that of acados from the same start
    episodes_within: int = 0  # loops in which acados keeps |x1| <= 1
    episodes_violating: int = 0  # ... and this solver does not
    episodes_unbounded: int = 0  # loops that leave |x| <= BOUNDED (acados' never do: select_starts)
    notes: list[str] = field(default_factory=list)


Plant = Callable[[FloatArray, FloatArray], FloatArray]


class Acados:
    """acados u0 and constraint activity at given states; its own closed loops."""

    def __init__(self, fns: ProblemFunctions, theta: FloatArray, options: SolverOptions) -> None:
        self.fns, self.theta = fns, theta
        self.p = fns.params.flatten(None, check_bounds=False)
        self.mpc = MPC(fns, options, theta=theta, p=self.p)

    def step(self, x: FloatArray) -> tuple[FloatArray, str]:
        sol = self.mpc.value(np.asarray(x, dtype=float))
        act = plan_activity(self.fns, self.theta, self.p, sol.x, sol.u)
        kind = (VIOLATED if act.state_violation > X1_TOL else
                AT_BOUND if act.state_active else
                "input bound active" if act.input_active else "unconstrained")
        return sol.u0, kind

    def evaluate(self, states: FloatArray) -> tuple[FloatArray, list[str]]:
        pairs = [self.step(x) for x in states]
        return np.array([u for u, _ in pairs]), [k for _, k in pairs]

    def closed_loop(self, x0: FloatArray, steps: int, plant: Plant) -> tuple[FloatArray, list[str]]:
        """States visited by the acados controller from x0 and the activity of each step."""
        self.mpc.reset()
        x, xs, kinds = np.asarray(x0, dtype=float), [], []
        for _ in range(steps):
            u, kind = self.step(x)
            xs.append(x)
            kinds.append(kind)
            x = np.asarray(plant(x, u), dtype=float).ravel()
        return np.array(xs), kinds


def select_starts(fns: ProblemFunctions, acados: Acados, n: int, seed: int, steps: int,
                  plant: Plant) -> tuple[FloatArray, FloatArray]:
    """n initial states (uniform in host_check's box; cart-pole: |x1| ≤ 0.95) whose acados closed
    loop stays bounded (|x| ≤ BOUNDED), in three strata by that loop: n/2 that reach a state bound
    and keep it ("within"), n/4 that cross it ("outside": the soft constraint is exceeded, many
    rows are active), the rest never reach it ("free"); a short stratum is filled from the others.
    Returns the states and the largest |x1| of each acados loop.

    Uniform states that touch the cart limit without crossing it are rare (about 1 in 20 on the
    cart-pole): up to MAX_CANDIDATES·n states are tried until every quota is met.
    """
    cands = random_states(fns, MAX_CANDIDATES * n, seed)
    if fns.name in ("linear_cartpole", "cartpole"):
        cands[:, 0] = np.clip(cands[:, 0], -X1_MARGIN * CART_LIMIT, X1_MARGIN * CART_LIMIT)
    quota = {"within": n // 2, "outside": n // 4}
    quota["free"] = n - quota["within"] - quota["outside"]
    found: dict[str, list[tuple[FloatArray, float]]] = {k: [] for k in quota}
    for x0 in cands:
        if all(len(found[k]) >= q for k, q in quota.items()):
            break
        xs, kinds = acados.closed_loop(x0, steps, plant)
        if not np.max(np.abs(xs)) <= BOUNDED:
            continue
        x1 = float(np.max(np.abs(xs[:, 0])))
        stratum = ("free" if all(k in ("unconstrained", "input bound active") for k in kinds)
                   else "within" if x1 <= CART_LIMIT + X1_TOL else "outside")
        found[stratum].append((x0, x1))
    chosen = [(s, e) for s in quota for e in found[s][: quota[s]]]
    spare = [(s, e) for s in quota for e in found[s][quota[s]:]]
    chosen = (chosen + spare)[:n]
    if len(chosen) < n:
        log(f"{fns.name}: only {len(chosen)} of {len(cands)} candidate starts keep acados bounded")
    tags = [s for s, _ in chosen]
    log(f"{fns.name}: acados loops from the {len(chosen)} starts: {tags.count('within')} reach a state "
        f"bound and keep it, {tags.count('outside')} cross it, {tags.count('free')} never reach it")
    return np.array([e[0] for _, e in chosen]), np.array([e[1] for _, e in chosen])


def cart_limit_check(res: Result, run: BenchRun, ref_x1: FloatArray) -> None:
    """Per episode: |x1| of the solver's closed loop against acados' from the same start."""
    ep = np.array([s.episode for s in run.steps])
    x1 = np.array([np.max(np.abs(run.x[ep == e, 0])) for e in range(ref_x1.size)])
    res.max_abs_x1 = float(x1.max())
    res.x1_excess = float(np.max(x1 - ref_x1))
    inside = ref_x1 <= CART_LIMIT + X1_TOL
    res.episodes_within = int(inside.sum())
    res.episodes_violating = int(np.sum(inside & (x1 > CART_LIMIT + X1_TOL)))
    res.episodes_unbounded = sum(bool(np.max(np.abs(run.x[ep == e])) > BOUNDED) for e in range(ref_x1.size))


def baseline(plan: BenchPlan, out: Path) -> Firmware:
    """The benchmark program without a solver (sizes to subtract)."""
    units = bench_units(plan, out, Unit(()), NULL_ADAPTER)
    return build_firmware(units, out)


def summarise(problem: str, solver: str, run: BenchRun, acados: Acados, fw: Firmware, base: Firmware,
              host_u: FloatArray | None) -> Result:
    ref_u, kinds = acados.evaluate(run.x)
    counts = run.instructions
    first = np.array([s.step == 0 for s in run.steps])
    by = {k: Distribution.of(counts[[i for i, kk in enumerate(kinds) if kk == k and not first[i]]])
          for k in KINDS}  # (the later steps: the first ones are reported on their own)
    goal = GOALS.get(problem, np.iinfo(np.int64).max)
    kept = np.array([k != VIOLATED for k in kinds])
    return Result(
        problem=problem, solver=solver, counts=Distribution.of(counts), by_activity=by,
        by_start={"first step (cold start; RTI: start-up)": Distribution.of(counts[first]),
                  "later steps (warm start)": Distribution.of(counts[~first])},
        within_limits=Distribution.of(counts[~first & kept]),
        over_goal=int(np.sum(counts > goal)), over_goal_within=int(np.sum(counts[~first & kept] > goal)),
        iterations=Distribution.of([s.iterations for s in run.steps]),
        failures=sum(s.status <= 0 for s in run.steps),
        u0_vs_acados=float(np.max(np.abs(run.u - ref_u))),
        u0_vs_acados_median=float(np.median(np.max(np.abs(run.u - ref_u), axis=1))),
        u0_vs_host=None if host_u is None else float(np.max(np.abs(run.u - host_u))),
        flash=fw.flash, ram=fw.ram, solver_flash=fw.flash - base.flash, solver_ram=fw.ram - base.ram)


def bench_linear(name: str, fns: ProblemFunctions, theta: FloatArray, args: argparse.Namespace,
                 out: Path) -> list[Result]:
    ocp = linearise(fns, theta)
    st = ocp.stages[0]
    steps = args.steps or STEPS[name]
    acados = Acados(fns, theta, REFERENCE_OPTIONS)

    def plant(x: FloatArray, u: FloatArray) -> FloatArray:
        return np.asarray(st.A @ x + st.B @ u + st.c)

    x0s, ref_x1 = select_starts(fns, acados, args.episodes, args.seed, steps, plant)
    plan = BenchPlan.closed_loop(x0s, steps, st.A, st.B, st.c)
    base = baseline(plan, out / "baseline")
    log(f"{name}: generating and building the rlmpc solver")
    gen = generate(fns, out / "rlmpc", theta, precision="float32")
    fw = build_rlmpc_bench(gen, plan, out / "rlmpc-fw")
    t0 = time.perf_counter()
    run = run_bench(fw, plan, args.timeout)
    log(f"{name}: {plan.n_steps} steps in QEMU in {time.perf_counter() - t0:.1f} s")
    host_u = host_replay(build_host_harness(gen, out / "host" / "harness"), run)
    res = summarise(name, "rlmpc (DAQP, condensed)", run, acados, fw, base, host_u)
    results = [res]
    if name != "linear_cartpole":
        return results
    cart_limit_check(res, run, ref_x1)
    if args.osqp:
        results.append(bench_osqp(ocp, plan, acados, x0s, ref_x1, base, args, out / "osqp"))
    return results


def bench_osqp(ocp: LinearisedOcp, plan: BenchPlan, acados: Acados, x0s: FloatArray, ref_x1: FloatArray,
               base: Firmware, args: argparse.Namespace, out: Path) -> Result:
    qp = sparse_qp(ocp)
    python = ensure_venv(args.osqp_venv)
    settings = json.loads(args.osqp_settings)
    log(f"osqp: code generation (n={qp.n}, m={qp.m}, settings {settings or 'defaults'})")
    code = generate_osqp(qp, out, python, x0s[:4], settings)
    check_ref, _ = acados.evaluate(x0s[:4])
    same_qp = float(np.max(np.abs(code.check_u0 - check_ref)))
    units = bench_units(plan, out / "fw", code.unit, OSQP_ADAPTER)
    fw = build_firmware(units, out / "fw")
    t0 = time.perf_counter()
    run = run_bench(fw, plan, args.timeout)
    log(f"osqp: {plan.n_steps} steps in QEMU in {time.perf_counter() - t0:.1f} s")
    res = summarise("linear_cartpole", f"OSQP {code.version} codegen (mode 1, float)", run, acados, fw,
                    base, None)
    cart_limit_check(res, run, ref_x1)
    res.notes.append(f"QP: n={qp.n}, m={qp.m}; settings {code.settings}")
    res.notes.append(f"same QP: Python OSQP (double, eps 1e-10) vs acados max |Δu0| {same_qp:.1e} "
                     f"on {len(x0s[:4])} states")
    res.notes.append(f"status counts {dict(sorted(Counter(s.status for s in run.steps).items()))}")
    return res


def bench_rti(fns: ProblemFunctions, theta: FloatArray, args: argparse.Namespace, out: Path) -> Result:
    log("cartpole: generating the RTI solver and its host closed loops")
    gen = generate_rti(fns, out / "rlmpc", theta, precision="float32", warm_start=args.rti_warm_start)
    exe = build_host_harness(gen, out / "host" / "harness", rti=True)
    p = fns.params.flatten(None, check_bounds=False)
    steps = args.steps or STEPS["cartpole"]
    acados = Acados(fns, theta, SQP_OPTIONS)

    def plant(x: FloatArray, u: FloatArray) -> FloatArray:
        return np.asarray(fns.dynamics(x, u, theta, p)).ravel()

    x0s, ref_x1 = select_starts(fns, acados, args.episodes, args.seed, steps, plant)
    episodes = []
    with RtiHostSolver(exe) as solver:
        for x0 in x0s:
            solver.reset()
            x, states = np.float32(x0).astype(float), []
            for k in range(steps):
                states.append(x)
                u = (solver.solve_startup(x, STARTUP_ITERATIONS, fns.nx, fns.nu, fns.horizon) if k == 0
                     else solver.solve(x)).u0
                x = np.float32(plant(x, u)).astype(float)
            episodes.append(np.array(states))
    plan = BenchPlan.replay(episodes, fns.nu)
    base = baseline(plan, out / "baseline")
    fw = build_rlmpc_bench(gen, plan, out / "rlmpc-fw", rti=True)
    t0 = time.perf_counter()
    run = run_bench(fw, plan, args.timeout)
    log(f"cartpole: {plan.n_steps} steps in QEMU in {time.perf_counter() - t0:.1f} s")
    host_u = host_replay(exe, run, rti_horizon=fns.horizon)
    res = summarise("cartpole", f"rlmpc RTI (DAQP; warm start: {args.rti_warm_start})", run, acados, fw, base,
                    host_u)
    cart_limit_check(res, run, ref_x1)
    res.notes.append("u0 vs acados: one RTI step against the converged SQP (not a solver error)")
    return res


def report(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        lines.append(f"== {r.problem}: {r.solver}")
        lines.append(f"  instructions/step: {r.counts}")
        for kind, d in r.by_start.items():
            lines.append(f"    {kind:38s} {d}")
        for kind, d in r.by_activity.items():
            lines.append(f"      {kind:36s} {d}")
        lines.append(f"  iterations: {r.iterations}; failed steps {r.failures}")
        host = "n/a" if r.u0_vs_host is None else f"{r.u0_vs_host:.1e}"
        lines.append(f"  max |Δu0|: vs acados {r.u0_vs_acados:.1e} (median {r.u0_vs_acados_median:.1e}), "
                     f"vs host float32 build {host}")
        lines.append(f"  program flash {r.flash:,} B, RAM {r.ram:,} B; solver share flash "
                     f"{r.solver_flash:,} B, RAM {r.solver_ram:,} B")
        if r.max_abs_x1 is not None:
            lines.append(f"  closed loops: max |x1| {r.max_abs_x1:.4f}, at most {r.x1_excess:+.1e} over "
                         f"acados from the same start; of the {r.episodes_within} loops in which acados "
                         f"keeps |x1| <= {CART_LIMIT:g}, {r.episodes_violating} violate it; "
                         f"{r.episodes_unbounded} leave |x| <= {BOUNDED:g} (acados' none)")
        lines += [f"  {n}" for n in r.notes]
        goal = GOALS.get(r.problem)
        if goal is not None and r.solver.startswith("rlmpc"):
            for scope, d, over in (("all steps", r.counts, r.over_goal),
                                   ("later steps whose plan keeps the limits", r.within_limits,
                                    r.over_goal_within)):
                lines.append(f"  goal <= {goal:,}/step, {scope}: " + ", ".join(
                    f"{what} {'met' if value <= goal else 'MISSED'}"
                    for what, value in (("median", d.median), ("p90", d.p90), ("max", d.max)))
                    + f" ({over} of {d.n} steps over)")
    ours = next((r for r in results if r.problem == "linear_cartpole" and r.solver.startswith("rlmpc")), None)
    osqp = next((r for r in results if r.solver.startswith("OSQP")), None)
    if ours is not None and osqp is not None:
        lines.append("== linear_cartpole: OSQP / rlmpc")
        o, c = osqp.counts, ours.counts
        lines.append(f"  instructions: median x{o.median / c.median:.0f}, p90 x{o.p90 / c.p90:.0f}, "
                     f"max x{o.max / c.max:.0f} (goal: >= x50)")
        lines.append(f"  |Δu0| vs acados, max (median): OSQP {osqp.u0_vs_acados:.1e} "
                     f"({osqp.u0_vs_acados_median:.1e}), rlmpc {ours.u0_vs_acados:.1e} "
                     f"({ours.u0_vs_acados_median:.1e})")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mcu_solver.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="lti,linear_cartpole,cartpole",
                    help="comma-separated subset of lti, linear_cartpole, cartpole")
    ap.add_argument("--theta", help="θ file of the LTI problem (from `rlmpc train`; default θ otherwise)")
    ap.add_argument("--episodes", type=int, default=10, help="closed loops per problem (default 10)")
    ap.add_argument("--steps", type=int, default=0, help="steps per closed loop (default per problem)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rti-warm-start", choices=WARM_STARTS, default=WARM_STARTS[0],
                    help="cartpole: the RTI's next guess, the last plan shifted (default) or as it is")
    ap.add_argument("--no-osqp", dest="osqp", action="store_false", help="skip the OSQP comparison")
    ap.add_argument("--osqp-settings", default="{}", help="OSQP settings as JSON (default: OSQP's defaults)")
    ap.add_argument("--osqp-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--timeout", type=float, default=900.0, help="per QEMU run, seconds")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = [p for p in args.problems.split(",") if p]
    unknown = set(problems) - set(BUILDERS)
    if unknown:
        raise SystemExit(f"unknown problems: {sorted(unknown)}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="rlmpc-mcu-bench-") as tmp:
        work = args.out or Path(tmp)
        for name in problems:
            if name == "lti" and args.theta:
                from rlmpc.toolkit.theta_file import load_theta

                tf = load_theta(args.theta)
                if tf.fns.name != "lti":
                    raise SystemExit(f"{args.theta}: θ of {tf.fns.name!r}, not of the LTI problem")
                fns, theta = tf.fns, tf.values
            else:
                fns = BUILDERS[name]().build()
                theta = fns.theta.flatten(None)
            if name == "cartpole":
                results.append(bench_rti(fns, theta, args, work / name))
            else:
                results.extend(bench_linear(name, fns, theta, args, work / name))
    print("\n".join(report(results)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
