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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import casadi as cs
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
from rlmpc.toolkit.mpc import MPC, MpcSolution
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
                -5: "nonconvex", -6: "overdetermined", -100: "state not finite",
                -20: "inaccurate (the plan misses an input bound: rounding, the QP is feasible)"}


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


Box = tuple[FloatArray, FloatArray]
DEFAULT_HALF_WIDTH = 1.0  # about the operating point, for a state nothing else bounds
CONSTRAINT_MARGIN = 0.2  # the box reaches this fraction of a bounded state's range beyond it
DRAWS_PER_STATE = 20  # at most this many candidates per state where acados must succeed


def _constraint_box(fns: ProblemFunctions) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bounds of single states from the state constraints (rows a·x_i + b, ±inf where none),
    and the centre of the default box (the operating point if the definition has one)."""
    low, high = np.full(fns.nx, -np.inf), np.full(fns.nx, np.inf)
    th = fns.theta.default() if fns.ntheta else np.zeros(0)
    p = fns.params.default()
    centre = (np.zeros(fns.nx) if fns.operating_point is None
              else np.asarray(fns.operating_point(th, p), dtype=float).ravel()[:fns.nx])
    sr = fns.state_rows
    if not sr.n:
        return low, high, centre
    x = fns.h_state.sx_in(0)
    h = fns.h_state(x, th, p)
    jac, h0 = (np.asarray(v, dtype=float) for v in cs.Function("box_rows", [x], [cs.jacobian(h, x), h])(
        np.zeros(fns.nx)))
    for i in range(sr.n):
        if not cs.is_linear(h[i], x):
            continue
        nz = np.flatnonzero(jac[i])
        if nz.size != 1:
            continue
        j, a, b = int(nz[0]), float(jac[i, nz[0]]), float(h0[i, 0])
        ends = sorted(((sr.lb[i] - b) / a, (sr.ub[i] - b) / a))
        low[j], high[j] = max(low[j], ends[0]), min(high[j], ends[1])
    return low, high, centre


def default_box(fns: ProblemFunctions) -> tuple[Box, str]:
    """The box of the check's states when none is given, and where it came from: the problem's
    ``check_box``, the built-in boxes, else the state constraints' bounds (widened by
    CONSTRAINT_MARGIN of their range) and ±DEFAULT_HALF_WIDTH about the operating point."""
    if fns.check_box is not None:
        return (fns.check_box[0].copy(), fns.check_box[1].copy()), "the problem's check_box"
    if fns.name in STATE_BOXES and len(STATE_BOXES[fns.name][0]) == fns.nx:
        named = STATE_BOXES[fns.name]
        return (np.asarray(named[0], dtype=float), np.asarray(named[1], dtype=float)), f"the box of {fns.name!r}"
    lo, hi, centre = _constraint_box(fns)
    both = np.isfinite(lo) & np.isfinite(hi)
    margin = CONSTRAINT_MARGIN * np.where(both, hi - lo, 0.0)
    low = np.where(both, lo - margin, np.where(np.isfinite(lo), lo, centre - DEFAULT_HALF_WIDTH))
    high = np.where(both, hi + margin, np.where(np.isfinite(hi), hi, centre + DEFAULT_HALF_WIDTH))
    low, high = np.minimum(low, high - 1e-3), np.maximum(high, low + 1e-3)
    free = [i for i in range(fns.nx) if not both[i]]
    how = ("the state constraints' bounds" if both.any() else "") + (
        (" and " if both.any() else "") + f"±{DEFAULT_HALF_WIDTH:g} about the operating point for x{free}"
        if free else "")
    return (low, high), how


def plant_box(make_env: Callable[[], object], nx: int, draws: int = 256) -> Box | None:
    """The bounding box of ``draws`` seeded resets of a plant (its reset distribution), or None
    if its states are not nx numbers or the box is flat in some state."""
    env = make_env()
    states = []
    for seed in range(draws):
        obs, info = env.reset(seed=seed)  # type: ignore[attr-defined]
        state = np.asarray(info.get("state", obs) if isinstance(info, dict) else obs, dtype=float).ravel()
        if state.size != nx:
            return None
        states.append(state)
    arr = np.array(states)
    low, high = arr.min(axis=0), arr.max(axis=0)
    return (low, high) if np.all(high > low) else None


def parse_box(value: object, nx: int, where: str = "--check-box") -> Box:
    """``{"lb": [...], "ub": [...]}`` with nx finite numbers each and lb < ub; one-line errors."""
    if not (isinstance(value, dict) and set(value) == {"lb", "ub"}):
        raise ValueError(f'{where}: expected {{"lb": [...], "ub": [...]}}')
    try:
        low = np.asarray(value["lb"], dtype=float).ravel()
        high = np.asarray(value["ub"], dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{where}: lb and ub must be lists of numbers") from None
    if low.size == 1:
        low = np.full(nx, low[0])
    if high.size == 1:
        high = np.full(nx, high[0])
    if low.size != nx or high.size != nx:
        raise ValueError(f"{where}: expected {nx} numbers in lb and ub, got {low.size} and {high.size}")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ValueError(f"{where}: expected finite bounds with lb < ub on every state")
    return low, high


def state_box(fns: ProblemFunctions, box: Box | None = None) -> Box:
    return box if box is not None else default_box(fns)[0]


def random_states(fns: ProblemFunctions, count: int, seed: int, scale: float = 1.0,
                  box: Box | None = None) -> FloatArray:
    """Deterministic states, uniform in the box (default :func:`default_box`; shrunk about its
    centre by ``scale``)."""
    low, high = state_box(fns, box)
    mid, half = 0.5 * (low + high), 0.5 * (high - low) * scale
    return np.random.default_rng(seed).uniform(mid - half, mid + half, size=(count, fns.nx))


def box_text(box: Box) -> str:
    return "[" + ", ".join(f"{lo:.3g}..{hi:.3g}" for lo, hi in zip(*box, strict=True)) + "]"


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
    box: Box | None = None
    box_source: str = ""
    skipped: int = 0  # candidate states and loop starts where acados failed
    max_penalty: float = 0.0  # largest slack penalty of a soft row

    def lines(self) -> list[str]:
        out = [f"{self.problem}: nz={self.nz}, constraints={self.m}, cond(H)={self.cond_h:.3g}",
               f"reference states: {self.n_states} ({self.n_input_active} with active input "
               f"bounds, {self.n_state_active} with active state constraints)"
               + (f"; {self.skipped} candidate states skipped where acados fails" if self.skipped else "")]
        if self.box is not None:
            out.insert(1, f"check states from the box {box_text(self.box)} ({self.box_source}; "
                       "--check-box to change)")
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
                out.append(f"{r.precision}: u0 differs from acados by {err:.2e} > {tol:g}"
                           + self._why(r))
            failed = sum(n for s, n in r.statuses.items() if s <= 0)
            if failed:
                out.append(f"{r.precision}: {failed} solves failed")
            if r.worst_cost_deviation > COST_TOLERANCE:
                out.append(f"{r.precision}: a closed loop costs {r.worst_cost_deviation:.2%} more or "
                           f"less than acados' (tolerance {COST_TOLERANCE:.0%})")
        if self.forbidden:
            out.append(f"heap/stdio symbols {sorted(self.forbidden)}")
        return out

    def _why(self, r: PrecisionReport) -> str:
        f64 = next((x for x in self.precisions if x.precision == "float64"), None)
        if r.precision != "float32" or f64 is None:
            return ""
        return float32_reason(max(f64.u0_error_warm, f64.u0_error_cold), self.max_penalty)


def max_penalty(fns: ProblemFunctions) -> float:
    """The largest slack penalty (linear or quadratic) of a soft row."""
    return float(max(np.max(np.concatenate([rows.w_lin, rows.w_quad]), initial=0.0)
                     for rows in (fns.state_rows, fns.path_rows)))


def float32_reason(err64: float, penalty: float) -> str:
    """Why float32 misses while float64 agrees (``err64``): rounding, with large soft penalties."""
    if err64 > U0_TOLERANCE["float64"]:
        return ""
    pen = (f", with soft-row penalties up to {penalty:g} (they make the QP's working sets "
           "ill-conditioned in single precision)" if penalty >= 1e3 else "")
    return (f" (float32 rounding: float64 agrees to {err64:.1e}{pen}; export with --precision float64"
            + (" or lower the penalties)" if pen else ")"))


def compare_with_acados(exe: Path, precision: str, fns: ProblemFunctions, theta: FloatArray, p: FloatArray,
                        states: Iterable[FloatArray], ref_u0: Sequence[FloatArray], loop_starts: Iterable[FloatArray],
                        acados_costs: Sequence[float], horizon: int) -> PrecisionReport:
    """One precision of a generated solver (its host harness ``exe``) against acados: u0 at ``states``
    warm (in order) and cold (reset before each), and closed loops from ``loop_starts`` as cost ratios."""
    rep = PrecisionReport(precision)
    states = list(states)
    with HostSolver(exe) as solver:
        for s, u0 in zip(states, ref_u0, strict=True):
            res = solver.solve(s)
            rep.u0_error_warm = max(rep.u0_error_warm, float(np.max(np.abs(res.u0 - u0))))
            rep.iterations.append(res.iterations)
            rep.statuses[res.status] += 1
        for s, u0 in zip(states, ref_u0, strict=True):
            solver.reset()
            res = solver.solve(s)
            rep.u0_error_cold = max(rep.u0_error_cold, float(np.max(np.abs(res.u0 - u0))))

        def policy(x: FloatArray) -> FloatArray:
            res = solver.solve(x)
            rep.loop_iterations.append(res.iterations)
            rep.statuses[res.status] += 1
            return res.u0

        for x0, ref_cost in zip(loop_starts, acados_costs, strict=True):
            solver.reset()
            rep.cost_ratios.append(closed_loop_cost(fns, theta, p, policy, x0, horizon) / ref_cost)
    return rep


def check(fns: ProblemFunctions, work_dir: Path, theta: ParameterValues | None = None,
          p: ParameterValues | None = None, n_states: int = 24, n_loops: int = 20,
          steps: int | None = None, precisions: tuple[str, ...] = PRECISIONS,
          footprint: bool = True, seed: int = 0, box: Box | None = None) -> HostReport:
    """Generate, compile and compare the solver with acados (see the module docstring); states
    (and closed-loop starts) where acados fails are drawn again and counted."""
    th = fns.theta.flatten(theta)
    pv = fns.params.flatten(p, check_bounds=False)
    mpc = MPC(fns, REFERENCE_OPTIONS, theta=th, p=pv)
    the_box, box_source = (box, "given") if box is not None else default_box(fns)
    skipped = 0
    states_l: list[FloatArray] = []
    refs: list[MpcSolution] = []
    for s in random_states(fns, n_states * DRAWS_PER_STATE, seed, box=the_box):
        if len(refs) == n_states:
            break
        mpc.reset()
        ref = mpc.value(s)
        if ref.success:
            states_l.append(s)
            refs.append(ref)
        else:
            skipped += 1
    if not refs:
        raise ValueError(f"{fns.name}: acados fails at every state drawn for the check from the box "
                         f"{box_text(the_box)}; give a box of states it can control (--check-box)")
    states = np.array(states_l)
    acts = [plan_activity(fns, th, pv, r.x, r.u) for r in refs]
    horizon = steps if steps is not None else CLOSED_LOOP_STEPS.get(fns.name, DEFAULT_STEPS)
    loop_states_l: list[FloatArray] = []
    acados_costs: list[float] = []
    for x0 in random_states(fns, n_loops * DRAWS_PER_STATE, seed + 1, CLOSED_LOOP_SCALE, box=the_box):
        if len(acados_costs) == n_loops:
            break
        ok = True

        def acados_policy(x: FloatArray) -> FloatArray:
            nonlocal ok
            sol = mpc.value(x)
            ok = ok and sol.success
            return sol.u0

        mpc.reset()
        cost = closed_loop_cost(fns, th, pv, acados_policy, x0, horizon)
        if ok:
            loop_states_l.append(x0)
            acados_costs.append(cost)
        else:
            skipped += 1
    loop_states = np.array(loop_states_l)
    reports, forbidden, fp = [], set(), None
    gen: GeneratedSolver | None = None
    for prec in precisions:
        gen = generate(fns, work_dir / prec, th, pv, prec)
        exe = build_host_harness(gen, work_dir / prec / "harness")
        forbidden |= forbidden_symbols(compile_objects(gen, work_dir / prec / "obj", "gcc", HOST_FLAGS))
        reports.append(compare_with_acados(exe, prec, fns, th, pv, states, [r.u0 for r in refs],
                                           loop_states, acados_costs, horizon))
        if footprint and prec == "float32" and arm_available():
            fp = cortex_m4_footprint(gen, work_dir / prec / "arm")
            forbidden |= set(fp.undefined) & set(FORBIDDEN)
    assert gen is not None
    return HostReport(
        problem=fns.name, nz=gen.qp.nz, m=gen.qp.m, cond_h=gen.qp.cond_h, n_states=len(refs),
        n_input_active=sum(a.input_active for a in acts),
        n_state_active=sum(a.state_active for a in acts), precisions=reports,
        forbidden=forbidden, footprint=fp, box=the_box, box_source=box_source, skipped=skipped,
        max_penalty=max_penalty(fns))


class HasLines(Protocol):
    """A check's report: its printable lines."""

    def lines(self) -> list[str]: ...


def run_check_cli(argv: list[str] | None, prog: str, doc: str | None,
                  problems: dict[str, Callable[[], ParametricMPC]], default: str,
                  run: Callable[[ProblemFunctions, Path, FloatArray | None, int, int], HasLines]) -> None:
    """The developer command line of a host check: ``--problem`` (at its default θ) or ``--theta``,
    ``--out``, ``--states``, ``--loops``; prints ``run(...)``'s report."""
    from rlmpc.toolkit.theta_file import load_theta

    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(problems), default=default, help="problem at its default θ")
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
    with tempfile.TemporaryDirectory(prefix="rlmpc-mcu-check-") as tmp:
        report = run(fns, Path(args.out or tmp), theta, args.states, args.loops)
    print("\n".join(report.lines()))


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.problems import lti_mpc
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

    run_check_cli(argv, "python -m rlmpc.codegen.mcu.host_check", __doc__,
                  {"lti": lti_mpc, "linear_cartpole": linear_cartpole_mpc}, "linear_cartpole",
                  lambda fns, out, theta, states, loops: check(fns, out, theta, n_states=states, n_loops=loops))

if __name__ == "__main__":
    main()
