"""Host verification of the generated RTI solver against acados ``SQP_RTI`` (Gauss-Newton).

* One real-time iteration from the same guess: the C solver's ``rlmpc_set_guess``
  and acados' iterate are set to the same trajectory (the converged plan of a
  nearby state, or zero), and u0 and the plans are compared.
* Closed loops on the problem's own dynamics: the C solver against acados SQP_RTI
  with the same warm start (the last plan shifted by one stage, or as it is:
  acados' own) and, for information, against the converged acados SQP controller.

States where acados itself fails (no converged plan to compare with, e.g. a pole
that cannot be caught with the input bounds) are drawn again and counted.  The
last line is the verdict: u0 within U0_TOLERANCE, no failed step, and every
closed loop within 1 % of the cost of acados SQP_RTI with the same warm start.

``python -m rlmpc.codegen.mcu.rti_check --problem cartpole`` prints the report.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rlmpc.codegen.mcu.generate import PRECISIONS
from rlmpc.codegen.mcu.generate_rti import GeneratedRti, generate_rti
from rlmpc.codegen.mcu.host_check import (
    CLOSED_LOOP_SCALE,
    COST_TOLERANCE,
    DRAWS_PER_STATE,
    U0_TOLERANCE,
    Box,
    HostResult,
    HostSolver,
    box_text,
    closed_loop_cost,
    default_box,
    float32_reason,
    max_penalty,
    random_states,
    report_tail,
    status_text,
)
from rlmpc.codegen.mcu.toolchain import (
    FORBIDDEN,
    HOST_FLAGS,
    Footprint,
    arm_available,
    build_host_harness,
    compile_objects,
    cortex_m4_footprint,
    forbidden_symbols,
)
from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions

RTI_OPTIONS = SolverOptions(nlp_solver="SQP_RTI", hessian="GAUSS_NEWTON", tol=1e-9)
SQP_OPTIONS = SolverOptions(tol=1e-8)  # full Gauss-Newton SQP for a nonlinear problem (as in tests)
GUESS_NOISE = 0.05  # guesses are converged plans of the state plus this much noise
STEPS = 100


class RtiHostSolver(HostSolver):
    """The RTI harness: also sets the guess and reads the plan."""

    def set_guess(self, x: FloatArray, u: FloatArray) -> None:
        values = np.concatenate([np.ravel(x), np.ravel(u)])
        self._ask("g " + " ".join(repr(float(v)) for v in values))

    def solve_startup(self, x0: FloatArray, iterations: int, nx: int, nu: int, horizon: int) -> HostResult:
        """The firmware's first step after start-up or RESET: up to ``iterations`` RTI steps at x0,
        each linearised at the plan of the one before (QP iterations summed)."""
        step = self.solve(x0)
        total = step.iterations
        for _ in range(iterations - 1):
            if step.status <= 0:
                break
            self.set_guess(*self.plan(nx, nu, horizon))
            step = self.solve(x0)
            total += step.iterations
        return replace(step, iterations=total)


@dataclass
class RtiPrecisionReport:
    """Agreement of one precision with acados."""

    precision: str
    u0_error: float = 0.0  # one RTI step from the same guess
    plan_error: float = 0.0  # max over the plans' states and inputs
    statuses: list[int] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    ratio_rti: list[float] = field(default_factory=list)  # closed loop: C / acados SQP_RTI, same warm start
    ratio_sqp: list[float] = field(default_factory=list)  # closed loop: C / acados SQP


@dataclass
class RtiReport:
    problem: str
    n_states: int
    precisions: list[RtiPrecisionReport]
    forbidden: set[str]
    footprint: Footprint | None
    warm_start: str = "shifted"
    skipped: int = 0  # candidate states (and loop starts) where acados failed
    box: Box | None = None
    box_source: str = ""
    fallback: str = ""
    max_penalty: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{self.problem}: one RTI step from {self.n_states} guesses (and the zero guess)"
               + (f"; {self.skipped} candidate states skipped where acados fails" if self.skipped else "")]
        if self.box is not None:
            out.append(f"check states from the box {box_text(self.box)} ({self.box_source}; "
                       "--check-box to change)")
        if self.fallback:
            out.append(self.fallback)
        for r in self.precisions:
            it = np.asarray(r.iterations)
            loops = (f"closed-loop cost / acados SQP_RTI (warm start: {self.warm_start}) {min(r.ratio_rti):.7f}.."
                     f"{max(r.ratio_rti):.7f}, / converged acados SQP {min(r.ratio_sqp):.5f}.."
                     f"{max(r.ratio_sqp):.5f} ({len(r.ratio_rti)} loops)" if r.ratio_rti
                     else "no closed loop (acados fails from every start drawn)")
            out.append(
                f"{r.precision}: max |u0 err| {r.u0_error:.2e}, max plan err {r.plan_error:.2e}; "
                f"QP iterations median {np.median(it):.0f} max {it.max()}; {loops}; "
                f"solves: {status_text(Counter(r.statuses))}")
        return out + report_tail(self.forbidden, self.footprint, self.problems())

    def problems(self) -> list[str]:
        """What misses the verification's tolerances (empty: the check passes)."""
        out = []
        for r in self.precisions:
            tol = U0_TOLERANCE[r.precision]
            if r.u0_error > tol:
                f64 = next((x for x in self.precisions if x.precision == "float64"), None)
                why = float32_reason(f64.u0_error, self.max_penalty) if (
                    r.precision == "float32" and f64 is not None) else ""
                out.append(f"{r.precision}: u0 differs from acados SQP_RTI by {r.u0_error:.2e} > {tol:g}{why}")
            failed = sum(s <= 0 for s in r.statuses)
            if failed:
                out.append(f"{r.precision}: {failed} steps failed")
            ratios = np.asarray(r.ratio_rti)
            if not ratios.size:
                out.append(f"{r.precision}: no closed loop compared (acados fails from every start drawn; "
                           "--check-box to give states it can control)")
            off = int(np.sum(np.abs(ratios - 1.0) > COST_TOLERANCE))
            if off:
                out.append(f"{r.precision}: {off} of {ratios.size} closed loops cost more than "
                           f"{COST_TOLERANCE:.0%} more or less than acados SQP_RTI's")
        if self.forbidden:
            out.append(f"heap/stdio symbols {sorted(self.forbidden)}")
        return out


def _acados_loop(mpc: MPC, fns: ProblemFunctions, theta: FloatArray, p: FloatArray, x0: FloatArray,
                 steps: int, shift: bool = False) -> tuple[float, bool]:
    """Closed-loop cost of an acados controller from x0 (``shift``: each solve starts from the
    last plan shifted by one stage), and whether every solve succeeded."""
    ok, first = True, True

    def policy(x: FloatArray) -> FloatArray:
        nonlocal ok, first
        if shift and not first:
            mpc.shift_warm_start()
        first = False
        sol = mpc.value(x)
        ok = ok and sol.success
        return sol.u0

    mpc.reset()
    return closed_loop_cost(fns, theta, p, policy, x0, steps), ok


def check_rti(fns: ProblemFunctions, work_dir: Path, theta: ParameterValues | None = None,
              p: ParameterValues | None = None, n_states: int = 24, n_loops: int = 20,
              steps: int = STEPS, precisions: tuple[str, ...] = PRECISIONS,
              footprint: bool = True, seed: int = 0, warm_start: str = "shifted",
              box: Box | None = None, operating_point: object = None) -> RtiReport:
    """Generate, compile and compare the RTI solver with acados (see the module docstring);
    ``warm_start``: that of the generated solver (rlmpc.codegen.mcu.generate_rti.WARM_STARTS)."""
    th = fns.theta.flatten(theta)
    pv = fns.params.flatten(p, check_bounds=False)
    rti = MPC(fns, RTI_OPTIONS, theta=th, p=pv)
    sqp = MPC(fns, SQP_OPTIONS, theta=th, p=pv)
    rng = np.random.default_rng(seed)
    the_box, box_source = (box, "given") if box is not None else default_box(fns)
    candidates = random_states(fns, n_states * DRAWS_PER_STATE, seed, box=the_box)
    cases: list[tuple[FloatArray, MpcSolution | None, MpcSolution]] = []  # state, guess, acados
    skipped = 0
    for s in candidates:
        if len(cases) == n_states:
            break
        sqp.reset()
        guess = sqp.value(s + rng.normal(0.0, GUESS_NOISE, fns.nx))
        rti.load_warm_start_state({"V": guess.iterate})
        ref = rti.value(s)
        if guess.success and ref.success:
            cases.append((s, guess, ref))
        else:
            skipped += 1
    if not cases:
        raise ValueError(f"{fns.name}: acados fails at every state drawn for the check from the box "
                         f"{box_text(the_box)}; give a box of states it can control (--check-box)")
    rti.reset()
    cold = rti.value(cases[0][0])
    if cold.success:
        cases.append((cases[0][0], None, cold))
    ref_rti: list[float] = []
    ref_sqp: list[float] = []
    loops: list[FloatArray] = []
    for x0 in random_states(fns, n_loops * DRAWS_PER_STATE, seed + 1, CLOSED_LOOP_SCALE, box=the_box):
        if len(loops) == n_loops:
            break
        c_rti, ok_rti = _acados_loop(rti, fns, th, pv, x0, steps, shift=warm_start == "shifted")
        c_sqp, ok_sqp = _acados_loop(sqp, fns, th, pv, x0, steps)
        if ok_rti and ok_sqp:
            loops.append(x0)
            ref_rti.append(c_rti)
            ref_sqp.append(c_sqp)
        else:
            skipped += 1

    reports, forbidden, fp = [], set(), None
    fallback = ""
    for prec in precisions:
        gen: GeneratedRti = generate_rti(fns, work_dir / prec, th, pv, prec, warm_start, operating_point)
        fallback = gen.fallback.summary() if gen.fallback is not None else ""
        exe = build_host_harness(gen, work_dir / prec / "harness", rti=True)
        forbidden |= forbidden_symbols(compile_objects(gen, work_dir / prec / "obj", "gcc", HOST_FLAGS))
        rep = RtiPrecisionReport(prec)
        with RtiHostSolver(exe) as solver:
            for s, start, ref in cases:
                if start is None:
                    solver.reset()
                else:
                    solver.set_guess(start.x, start.u)
                res = solver.solve(s)
                x, u = solver.plan(fns.nx, fns.nu, fns.horizon)
                rep.u0_error = max(rep.u0_error, float(np.max(np.abs(res.u0 - ref.u0))))
                rep.plan_error = max(rep.plan_error, float(np.max(np.abs(x - ref.x))),
                                     float(np.max(np.abs(u - ref.u))))
                rep.statuses.append(res.status)
                rep.iterations.append(res.iterations)

            def policy(x: FloatArray, sv: RtiHostSolver = solver,
                       r: RtiPrecisionReport = rep) -> FloatArray:
                res = sv.solve(x)
                r.statuses.append(res.status)
                r.iterations.append(res.iterations)
                return res.u0

            for x0, c_rti, c_sqp in zip(loops, ref_rti, ref_sqp, strict=True):
                solver.reset()
                cost = closed_loop_cost(fns, th, pv, policy, x0, steps)
                rep.ratio_rti.append(cost / c_rti)
                rep.ratio_sqp.append(cost / c_sqp)
        reports.append(rep)
        if footprint and prec == "float32" and arm_available():
            fp = cortex_m4_footprint(gen, work_dir / prec / "arm")
            forbidden |= set(fp.undefined) & set(FORBIDDEN)
    return RtiReport(fns.name, len(cases) - (cold.success), reports, forbidden, fp, warm_start, skipped,
                     the_box, box_source, fallback, max_penalty(fns))


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.registry import PROBLEMS

    parser = argparse.ArgumentParser(prog="python -m rlmpc.codegen.mcu.rti_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="cartpole")
    parser.add_argument("--out", help="work folder (default: a temporary folder)")
    parser.add_argument("--states", type=int, default=24)
    parser.add_argument("--loops", type=int, default=20)
    args = parser.parse_args(argv)
    fns = PROBLEMS[args.problem]().build()
    with tempfile.TemporaryDirectory(prefix="rlmpc-rti-") as tmp:
        report = check_rti(fns, Path(args.out or tmp), n_states=args.states, n_loops=args.loops)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
