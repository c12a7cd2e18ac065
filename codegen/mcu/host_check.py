"""Host verification of a generated MCU solver against the acados MPC at the same θ.

The generated solver is compiled natively (gcc, float64 and float32) with the
line-based harness :file:`c/host_harness.c`, and compared with
``MPC(fns, theta=θ).value(s).u0``:

* u0 on deterministic reference states (both with the warm start carried from
  state to state and cold), counting how many of them have active input and
  state constraints in the acados plan;
* closed loops from random initial states on the problem's own dynamics, whose
  costs (discounted stage costs plus slack penalties of the visited states)
  are compared with those of the acados controller;
* for float32, the Cortex-M4F footprint (``arm-none-eabi-size``).

``python -m rlmpc.codegen.mcu.host_check --problem linear_cartpole`` prints the report.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from rlmpc.codegen.mcu.generate import PRECISIONS, GeneratedSolver, generate
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
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ConstraintRows, ParametricMPC, ProblemFunctions

# boxes the reference and closed-loop initial states are drawn from
STATE_BOXES: dict[str, tuple[list[float], list[float]]] = {
    "lti": ([-0.2, -1.0], [1.2, 1.0]),
    "linear_cartpole": ([-1.2, -0.4, -1.5, -1.5], [1.2, 0.4, 1.5, 1.5]),
    "cartpole": ([-1.2, -0.4, -1.5, -1.5], [1.2, 0.4, 1.5, 1.5]),
    "cartpole_incline": ([-1.2, -0.4, -1.5, -1.5], [1.2, 0.4, 1.5, 1.5]),
}
CLOSED_LOOP_SCALE = 0.5  # closed loops start in the box shrunk by this factor
CLOSED_LOOP_STEPS = {"lti": 40}
DEFAULT_STEPS = 100
ACTIVE_TOL = 1e-6
REFERENCE_OPTIONS = SolverOptions(tol=1e-9)
U0_TOLERANCE = {"float64": 1e-6, "float32": 1e-3}  # u0 against acados, same iterations
COST_TOLERANCE = 0.01  # closed-loop cost within 1 % of the acados controller's
STATUS_NAMES = {1: "optimal", 2: "optimal with a soft constraint relaxed", 4: "optimal (inexact)",
                -1: "infeasible", -2: "cycling", -3: "unbounded", -4: "iteration limit",
                -5: "nonconvex", -6: "overdetermined", -100: "state not finite"}


def status_text(statuses: Counter[int]) -> str:
    """Solve statuses as counts with their meaning, e.g. ``822 optimal, 2 infeasible``."""
    return ", ".join(f"{n} {STATUS_NAMES.get(s, f'status {s}')}" for s, n in sorted(statuses.items(),
                                                                                     reverse=True))


def verdict(problems: list[str]) -> str:
    """The last line of a check: PASS, or FAIL with what failed."""
    return "PASS" if not problems else "FAIL: " + "; ".join(problems)


def report_tail(forbidden: set[str], fp: Footprint | None, problems: list[str],
                objects: bool = False) -> list[str]:
    """The last lines of a check's report: heap/stdio symbols, the float32 Cortex-M4F footprint
    (``objects``: also of the object files before linking), the verdict."""
    out = [f"heap/stdio symbols: {sorted(forbidden) or 'none'}"]
    if fp is not None:
        before = (f"objects text {fp.objects_text} data {fp.objects_data} bss {fp.objects_bss}; "
                  if objects else "")
        out.append(f"cortex-m4f, float32 build: {before}linked (gc-sections) text {fp.linked_text} "
                   f"data {fp.linked_data} bss {fp.linked_bss} -> flash {fp.flash} B, RAM {fp.ram} B; "
                   f"needs {', '.join(fp.undefined) or 'nothing'}")
    return [*out, verdict(problems)]


@dataclass(frozen=True)
class HostResult:
    """One answer of the compiled solver."""

    status: int
    iterations: int
    n_active: int
    u0: FloatArray


class HostSolver:
    """The compiled harness as a subprocess, driven line by line."""

    def __init__(self, exe: Path) -> None:
        self._proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, bufsize=1)

    def _ask(self, line: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the solver harness exited (code {self._proc.poll()})")
        return answer

    def solve(self, x0: FloatArray) -> HostResult:
        parts = self._ask("s " + " ".join(repr(float(v)) for v in x0)).split()
        return HostResult(int(parts[0]), int(parts[1]), int(parts[2]),
                          np.array([float(v) for v in parts[3:]]))

    def reset(self) -> None:
        self._ask("r")

    def plan(self, nx: int, nu: int, horizon: int) -> tuple[FloatArray, FloatArray]:
        """The plan of the last successful solve: states (N+1, nx) and inputs (N, nu)."""
        flat = np.array([float(v) for v in self._ask("p").split()])
        nxp = (horizon + 1) * nx
        if flat.size != nxp + horizon * nu:
            raise RuntimeError(f"plan: expected {nxp + horizon * nu} numbers, got {flat.size}")
        return flat[:nxp].reshape(horizon + 1, nx), flat[nxp:].reshape(horizon, nu)

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.write("q\n")
            self._proc.stdin.close()
            self._proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def state_box(fns: ProblemFunctions) -> tuple[FloatArray, FloatArray]:
    low, high = STATE_BOXES.get(fns.name, ([-1.0] * fns.nx, [1.0] * fns.nx))
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def random_states(fns: ProblemFunctions, count: int, seed: int, scale: float = 1.0) -> FloatArray:
    """Deterministic states, uniform in the problem's box (shrunk about its centre by ``scale``)."""
    low, high = state_box(fns)
    mid, half = 0.5 * (low + high), 0.5 * (high - low) * scale
    return np.random.default_rng(seed).uniform(mid - half, mid + half, size=(count, fns.nx))


@dataclass(frozen=True)
class Activity:
    """Which constraints the acados plan of a state has active."""

    input_active: bool
    state_active: bool  # at or beyond a bound
    state_violation: float = 0.0  # largest amount by which the plan exceeds a state row's bounds


def plan_activity(fns: ProblemFunctions, theta: FloatArray, p: FloatArray, x: FloatArray,
                  u: FloatArray) -> Activity:
    near = np.minimum(np.abs(u - fns.u_lb), np.abs(u - fns.u_ub))
    sr = fns.state_rows
    if not sr.n:
        return Activity(bool(np.any(near < ACTIVE_TOL)), False)
    h = np.array([np.asarray(fns.h_state(xk, theta, p)).ravel() for xk in x[1:]])
    state = bool(np.any((h <= sr.lb + ACTIVE_TOL) | (h >= sr.ub - ACTIVE_TOL)))
    violation = float(np.max(np.maximum(sr.lb - h, h - sr.ub), initial=0.0))
    return Activity(bool(np.any(near < ACTIVE_TOL)), state, max(violation, 0.0))


def closed_loop_cost(fns: ProblemFunctions, theta: FloatArray, p: FloatArray,
                     policy: Callable[[FloatArray], FloatArray], x0: FloatArray, steps: int) -> float:
    """Σ_t γ^t [ℓ(x_t,u_t) + pen(h_state(x_{t+1})) + pen(h_path(x_t,u_t))] + ℓ_u on the plant F."""
    x, total = np.asarray(x0, dtype=float), 0.0
    sr, pr = fns.state_rows, fns.path_rows

    def penalty(h: FloatArray, rows: ConstraintRows) -> float:
        sigma = np.maximum(rows.lb - h, 0.0) + np.maximum(h - rows.ub, 0.0)
        sigma = np.where(rows.soft, sigma, 0.0)
        return float(np.sum(rows.w_lin * sigma + 0.5 * rows.w_quad * sigma**2))

    for t in range(steps):
        u = np.asarray(policy(x), dtype=float)
        g = fns.discount ** t
        x_next = np.asarray(fns.dynamics(x, u, theta, p), dtype=float).ravel()
        total += g * float(fns.stage_cost(x, u, theta, p))
        total += float(fns.stage_cost_undiscounted(x, u, theta, p))
        if sr.n:
            total += g * penalty(np.asarray(fns.h_state(x_next, theta, p)).ravel(), sr)
        if pr.n:
            total += g * penalty(np.asarray(fns.h_path(x, u, theta, p)).ravel(), pr)
        x = x_next
    return total


@dataclass
class PrecisionReport:
    """Agreement of one precision with acados."""

    precision: str
    u0_error_warm: float = 0.0  # max |u0 − u0_acados|, warm start carried across states
    u0_error_cold: float = 0.0  # the same with a reset before every state
    iterations: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    cost_ratios: list[float] = field(default_factory=list)  # closed loop: solver / acados
    loop_iterations: list[int] = field(default_factory=list)  # per closed-loop step (warm)

    @property
    def worst_cost_deviation(self) -> float:
        return max((abs(r - 1.0) for r in self.cost_ratios), default=0.0)


@dataclass
class HostReport:
    """Everything :func:`check` measured."""

    problem: str
    nz: int
    m: int
    cond_h: float
    n_states: int
    n_input_active: int
    n_state_active: int
    precisions: list[PrecisionReport]
    forbidden: set[str]
    footprint: Footprint | None

    def lines(self) -> list[str]:
        out = [f"{self.problem}: nz={self.nz}, constraints={self.m}, cond(H)={self.cond_h:.3g}",
               f"reference states: {self.n_states} ({self.n_input_active} with active input "
               f"bounds, {self.n_state_active} with active state constraints)"]
        for r in self.precisions:
            it, lit = np.asarray(r.iterations), np.asarray(r.loop_iterations)
            out.append(f"{r.precision}: max |u0 err| warm {r.u0_error_warm:.2e}, cold "
                       f"{r.u0_error_cold:.2e} (iterations median {np.median(it):.0f}, max "
                       f"{it.max()}); closed-loop cost ratio {min(r.cost_ratios):.6f}.."
                       f"{max(r.cost_ratios):.6f} over {len(r.cost_ratios)} loops (iterations "
                       f"median {np.median(lit):.0f}, max {lit.max()}); solves: "
                       f"{status_text(r.statuses)}")
        return out + report_tail(self.forbidden, self.footprint, self.problems(), objects=True)

    def problems(self) -> list[str]:
        """What misses the verification's tolerances (empty: the check passes)."""
        out = []
        for r in self.precisions:
            tol = U0_TOLERANCE[r.precision]
            err = max(r.u0_error_warm, r.u0_error_cold)
            if err > tol:
                out.append(f"{r.precision}: u0 differs from acados by {err:.2e} > {tol:g}")
            failed = sum(n for s, n in r.statuses.items() if s <= 0)
            if failed:
                out.append(f"{r.precision}: {failed} solves failed")
            if r.worst_cost_deviation > COST_TOLERANCE:
                out.append(f"{r.precision}: a closed loop costs {r.worst_cost_deviation:.2%} more or "
                           f"less than acados' (tolerance {COST_TOLERANCE:.0%})")
        if self.forbidden:
            out.append(f"heap/stdio symbols {sorted(self.forbidden)}")
        return out


def check(fns: ProblemFunctions, work_dir: Path, theta: ParameterValues | None = None,
          p: ParameterValues | None = None, n_states: int = 24, n_loops: int = 20,
          steps: int | None = None, precisions: tuple[str, ...] = PRECISIONS,
          footprint: bool = True, seed: int = 0) -> HostReport:
    """Generate, compile and compare the solver with acados (see the module docstring)."""
    th = fns.theta.flatten(theta)
    pv = fns.params.flatten(p, check_bounds=False)
    mpc = MPC(fns, REFERENCE_OPTIONS, theta=th, p=pv)
    states = random_states(fns, n_states, seed)
    refs = []
    for s in states:
        mpc.reset()
        refs.append(mpc.value(s))
    acts = [plan_activity(fns, th, pv, r.x, r.u) for r in refs]
    loop_states = random_states(fns, n_loops, seed + 1, CLOSED_LOOP_SCALE)
    horizon = steps if steps is not None else CLOSED_LOOP_STEPS.get(fns.name, DEFAULT_STEPS)
    mpc.reset()
    acados_costs = [closed_loop_cost(fns, th, pv, mpc.policy, x0, horizon) for x0 in loop_states]

    reports, forbidden, fp = [], set(), None
    gen: GeneratedSolver | None = None
    for prec in precisions:
        gen = generate(fns, work_dir / prec, th, pv, prec)
        exe = build_host_harness(gen, work_dir / prec / "harness")
        forbidden |= forbidden_symbols(compile_objects(gen, work_dir / prec / "obj", "gcc", HOST_FLAGS))
        rep = PrecisionReport(prec)
        with HostSolver(exe) as solver:
            for s, ref in zip(states, refs, strict=True):
                res = solver.solve(s)
                rep.u0_error_warm = max(rep.u0_error_warm, float(np.max(np.abs(res.u0 - ref.u0))))
                rep.iterations.append(res.iterations)
                rep.statuses[res.status] += 1
            for s, ref in zip(states, refs, strict=True):
                solver.reset()
                res = solver.solve(s)
                rep.u0_error_cold = max(rep.u0_error_cold, float(np.max(np.abs(res.u0 - ref.u0))))

            def policy(x: FloatArray, sv: HostSolver = solver, r: PrecisionReport = rep) -> FloatArray:
                res = sv.solve(x)
                r.loop_iterations.append(res.iterations)
                r.statuses[res.status] += 1
                return res.u0

            for x0, ref_cost in zip(loop_states, acados_costs, strict=True):
                solver.reset()
                rep.cost_ratios.append(closed_loop_cost(fns, th, pv, policy, x0, horizon) / ref_cost)
        reports.append(rep)
        if footprint and prec == "float32" and arm_available():
            fp = cortex_m4_footprint(gen, work_dir / prec / "arm")
            forbidden |= set(fp.undefined) & set(FORBIDDEN)
    assert gen is not None
    return HostReport(
        problem=fns.name, nz=gen.qp.nz, m=gen.qp.m, cond_h=gen.qp.cond_h, n_states=n_states,
        n_input_active=sum(a.input_active for a in acts),
        n_state_active=sum(a.state_active for a in acts), precisions=reports,
        forbidden=forbidden, footprint=fp)


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.problems import lti_mpc
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc
    from rlmpc.toolkit.theta_file import load_theta

    problems: dict[str, Callable[[], ParametricMPC]] = {
        "lti": lti_mpc, "linear_cartpole": linear_cartpole_mpc}
    parser = argparse.ArgumentParser(prog="python -m rlmpc.codegen.mcu.host_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(problems), default="linear_cartpole",
                        help="problem at its default θ")
    parser.add_argument("--theta", help="θ file from `rlmpc train` instead of --problem")
    parser.add_argument("--out", help="work folder (default: a temporary folder)")
    parser.add_argument("--states", type=int, default=24)
    parser.add_argument("--loops", type=int, default=20)
    args = parser.parse_args(argv)
    if args.theta is not None:
        tf = load_theta(args.theta)
        fns, theta = tf.fns, tf.values
    else:
        fns, theta = problems[args.problem]().build(), None
    with tempfile.TemporaryDirectory(prefix="rlmpc-mcu-") as tmp:
        report = check(fns, Path(args.out or tmp), theta, n_states=args.states, n_loops=args.loops)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
