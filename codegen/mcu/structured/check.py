"""Host verification of the structured MCU solver against the acados MPC at the same θ.

The same comparison as :mod:`rlmpc.codegen.mcu.host_check` (u0 on reference states, warm and
cold; closed loops from random states, cost against the acados controller; float64 and
float32; heap/stdio symbols; the Cortex-M4F footprint), for the solver of
:mod:`rlmpc.codegen.mcu.structured.generate`.

``python -m rlmpc.codegen.mcu.structured.check --problem quadrotor_hover`` prints the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlmpc.codegen.mcu.generate import PRECISIONS
from rlmpc.codegen.mcu.host_check import (
    CLOSED_LOOP_SCALE,
    CLOSED_LOOP_STEPS,
    DEFAULT_STEPS,
    REFERENCE_OPTIONS,
    HostReport,
    closed_loop_cost,
    compare_with_acados,
    plan_activity,
    random_states,
    report_tail,
    run_check_cli,
    status_text,
)
from rlmpc.codegen.mcu.structured.generate import MAX_ITER, generate_structured
from rlmpc.codegen.mcu.toolchain import (
    FORBIDDEN,
    HOST_FLAGS,
    SolverSources,
    arm_available,
    build_host_harness,
    compile_objects,
    cortex_m4_footprint,
    forbidden_symbols,
)
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions


@dataclass
class StructuredReport(HostReport):
    """:class:`~rlmpc.codegen.mcu.host_check.HostReport` of the structured path (no condensed
    Hessian: ``nz`` counts stage variables, ``m`` inequality rows of all stages)."""

    method: str = "interior point + Riccati"

    def lines(self) -> list[str]:
        out = [f"{self.problem}: structured ({self.method}), stage variables {self.nz}, "
               f"inequality rows {self.m}",
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


def _rows(fns: ProblemFunctions) -> int:
    N = fns.horizon
    return N * fns.nu + N * fns.path_rows.n + N * fns.state_rows.n


def check_structured(fns: ProblemFunctions, work_dir: Path, theta: ParameterValues | None = None,
                     p: ParameterValues | None = None, n_states: int = 24, n_loops: int = 20,
                     steps: int | None = None, precisions: tuple[str, ...] = PRECISIONS,
                     footprint: bool = True, seed: int = 0, max_iter: int = MAX_ITER,
                     states: FloatArray | None = None, loop_states: FloatArray | None = None,
                     method: str = "ipm", settings: dict[str, float] | None = None) -> StructuredReport:
    """Generate, compile and compare the structured solver with acados (module docstring);
    ``states``/``loop_states`` replace the problem's random boxes.  ``method``: ``ipm`` (interior
    point) or ``admm`` (time-invariant problems; ``max_iter`` then caps the ADMM iterations,
    ``settings`` overrides its :data:`~rlmpc.codegen.mcu.structured.admm.ADMM_SETTINGS`)."""
    from rlmpc.codegen.mcu.structured.admm import generate_admm

    if method not in ("ipm", "admm"):
        raise ValueError(f"method: expected 'ipm' or 'admm', got {method!r}")
    th = fns.theta.flatten(theta)
    pv = fns.params.flatten(p, check_bounds=False)
    mpc = MPC(fns, REFERENCE_OPTIONS, theta=th, p=pv)
    ref_states = random_states(fns, n_states, seed) if states is None else np.asarray(states)
    refs = []
    for s in ref_states:
        mpc.reset()
        refs.append(mpc.value(s))
    acts = [plan_activity(fns, th, pv, r.x, r.u) for r in refs]
    starts = (random_states(fns, n_loops, seed + 1, CLOSED_LOOP_SCALE) if loop_states is None
              else np.asarray(loop_states))
    horizon = steps if steps is not None else CLOSED_LOOP_STEPS.get(fns.name, DEFAULT_STEPS)
    mpc.reset()
    acados_costs = [closed_loop_cost(fns, th, pv, mpc.policy, x0, horizon) for x0 in starts]

    reports, forbidden, fp = [], set(), None
    for prec in precisions:
        gen: SolverSources = (generate_admm(fns, work_dir / prec, th, pv, prec, max_iter, settings) if method == "admm"
                               else generate_structured(fns, work_dir / prec, th, pv, prec, max_iter))
        exe = build_host_harness(gen, work_dir / prec / "harness")
        forbidden |= forbidden_symbols(compile_objects(gen, work_dir / prec / "obj", "gcc", HOST_FLAGS))
        reports.append(compare_with_acados(exe, prec, fns, th, pv, ref_states, [r.u0 for r in refs],
                                           starts, acados_costs, horizon))
        if footprint and prec == "float32" and arm_available():
            fp = cortex_m4_footprint(gen, work_dir / prec / "arm")
            forbidden |= set(fp.undefined) & set(FORBIDDEN)
    return StructuredReport(
        problem=fns.name, nz=fns.horizon * (fns.nx + fns.nu), m=_rows(fns), cond_h=float("nan"),
        n_states=len(ref_states), n_input_active=sum(a.input_active for a in acts),
        n_state_active=sum(a.state_active for a in acts), precisions=reports,
        forbidden=forbidden, footprint=fp,
        method="ADMM on cached Riccati gains" if method == "admm" else "interior point + Riccati")


def main(argv: list[str] | None = None) -> None:
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc
    from rlmpc.toolkit.registry import PROBLEMS

    run_check_cli(argv, "python -m rlmpc.codegen.mcu.structured.check", __doc__,
                  {**PROBLEMS, "linear_cartpole": linear_cartpole_mpc}, "quadrotor_hover",
                  lambda fns, out, theta, states, loops: check_structured(fns, out, theta, n_states=states,
                                                                          n_loops=loops))

if __name__ == "__main__":
    main()
