"""The generated bare-metal MPC solver (rlmpc.codegen.mcu) against acados, natively compiled."""

from __future__ import annotations

import filecmp
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.mcu import host_check
from rlmpc.codegen.mcu.condense import condense
from rlmpc.codegen.mcu.generate import generate, render
from rlmpc.codegen.mcu.generate_rti import render_rti
from rlmpc.codegen.mcu.host_check import HostReport, HostSolver, check
from rlmpc.codegen.mcu.linearise import linearise
from rlmpc.codegen.mcu.rti_check import RtiReport, check_rti
from rlmpc.codegen.mcu.toolchain import arm_available, build_host_harness
from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc
from rlmpc.toolkit.problems.cartpole_incline import cartpole_incline_mpc
from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

BUILDERS: dict[str, Callable[[], ParametricMPC]] = {
    "lti": lti_mpc, "linear_cartpole": linear_cartpole_mpc}
FLASH_LIMIT, RAM_LIMIT = 32 * 1024, 16 * 1024


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> HostReport:
    fns = BUILDERS[request.param]().build()
    return check(fns, tmp_path_factory.mktemp(request.param), n_states=24, n_loops=20,
                 footprint=True)


def test_reference_states_exercise_the_constraints(report: HostReport) -> None:
    assert report.n_input_active >= 1
    assert report.n_state_active >= 1


@pytest.mark.parametrize(("precision", "tol"), [("float64", 1e-6), ("float32", 1e-3)])
def test_u0_matches_acados(report: HostReport, precision: str, tol: float) -> None:
    rep = next(r for r in report.precisions if r.precision == precision)
    assert rep.u0_error_warm <= tol, report.lines()
    assert rep.u0_error_cold <= tol, report.lines()
    assert all(status > 0 for status in rep.statuses), rep.statuses


def test_closed_loop_cost_within_one_percent(report: HostReport) -> None:
    for rep in report.precisions:
        assert len(rep.cost_ratios) == 20
        assert rep.worst_cost_deviation <= 0.01, report.lines()


def test_no_heap_or_stdio(report: HostReport) -> None:
    assert report.forbidden == set()


def test_cortex_m4_footprint(report: HostReport) -> None:
    """The goal (cart-pole, N=20): flash <= 32 KB, RAM <= 16 KB; the LTI solver is smaller.
    arm-none-eabi-gcc is installed by the set-up, so its absence is a failure, not a skip."""
    assert arm_available(), "arm-none-eabi-gcc missing: run make setup"
    fp = report.footprint
    assert fp is not None
    assert fp.flash <= FLASH_LIMIT and fp.ram <= RAM_LIMIT, report.lines()
    assert not {"malloc", "free", "printf", "calloc"} & set(fp.undefined)


def test_lqr_condensing_is_well_conditioned() -> None:
    fns = linear_cartpole_mpc().build()
    lqr = condense(linearise(fns))
    plain = condense(linearise(fns), K=np.zeros((fns.nu, fns.nx)))
    assert lqr.cond_h < 100 < plain.cond_h
    assert np.all(np.linalg.eigvalsh(lqr.H) > 0)


def test_one_sided_rows_of_the_same_expression_are_merged() -> None:
    qp = condense(linearise(lti_mpc().build()))
    # per stage: the input bound and one two-sided row per state component
    assert qp.m == 10 + 2 * 10
    assert np.all(np.isfinite(qp.lower[qp.soft])) and np.all(np.isfinite(qp.upper[qp.soft]))


def test_earlier_rows_follow_the_labels() -> None:
    for build in (linear_cartpole_mpc, lti_mpc):
        qp = condense(linearise(build().build()))
        earlier = qp.earlier_rows()
        moved = 0
        for row, label in enumerate(qp.labels):
            parts = [part.rpartition("@") for part in label.split("|")]
            stage = int(parts[0][2])
            if earlier[row] < 0:  # only rows without a constraint of that name one stage earlier
                assert stage <= 1, label
                continue
            before = [part.rpartition("@") for part in qp.labels[earlier[row]].split("|")]
            assert [(n, int(k) + 1) for n, _, k in before] == [(n, int(k)) for n, _, k in parts], label
            moved += 1
        assert moved >= qp.m - 3


def test_shifted_warm_start_gives_the_same_answers_in_fewer_iterations(tmp_path: Path) -> None:
    """Closed loops in which the cart arrives at its limit (|x1| <= 1): the working set joined with
    its copy one stage earlier follows the plan's first active stage; without it DAQP adds one
    row per iteration.  Both solvers see the same states and must give the same u0."""
    fns = linear_cartpole_mpc().build()
    st = linearise(fns).stages[0]
    exes = {shift: build_host_harness(generate(fns, tmp_path / f"s{shift}", precision="float64",
                                               shift_max_active=shift), tmp_path / f"h{shift}")
            for shift in (0, 12)}
    iterations = {0: 0, 12: 0}
    with HostSolver(exes[0]) as plain, HostSolver(exes[12]) as shifted:
        for x0 in ([0.58, 0.025, 0.96, 0.19], [-0.95, 0.15, 1.47, -1.22], [0.04, -0.08, 0.87, -0.1]):
            x = np.array(x0)
            plain.reset()
            shifted.reset()
            for _ in range(40):
                a, b = plain.solve(x), shifted.solve(x)
                assert a.status > 0 and b.status > 0
                assert np.max(np.abs(a.u0 - b.u0)) < 1e-8, (x, a, b)
                iterations[0] += a.iterations
                iterations[12] += b.iterations
                x = st.A @ x + st.B @ b.u0 + st.c
    assert iterations[12] < 0.9 * iterations[0], iterations


def test_generated_sources_are_reproducible(tmp_path: Path) -> None:
    fns = linear_cartpole_mpc().build()
    first, _, _ = render(fns)
    second, _, _ = render(linear_cartpole_mpc().build())
    assert first == second
    a = generate(fns, tmp_path / "a")
    b = generate(fns, tmp_path / "b")
    files = sorted(p.relative_to(a.directory) for p in a.directory.rglob("*") if p.is_file())
    assert files and Path("daqp/LICENSE") in files
    match, mismatch, errors = filecmp.cmpfiles(a.directory, b.directory, files, shallow=False)
    assert not mismatch and not errors and len(match) == len(files)


def test_invalid_state_is_rejected(tmp_path: Path) -> None:
    gen = generate(lti_mpc().build(), tmp_path / "lti", precision="float64")
    with HostSolver(build_host_harness(gen, tmp_path / "harness")) as solver:
        bad = solver.solve(np.array([np.nan, 0.0]))
        good = solver.solve(np.array([0.5, -0.3]))
    assert bad.status == -100 and np.all(bad.u0 == 0)
    assert good.status > 0


def test_nonlinear_problem_is_refused() -> None:
    with pytest.raises(ValueError, match="linear MPC"):
        render(cartpole_mpc().build())


# --- milestone 2: real-time iteration of the nonlinear cart-pole -------------------------


@pytest.fixture(scope="module")
def rti_report(tmp_path_factory: pytest.TempPathFactory) -> RtiReport:
    return check_rti(cartpole_mpc().build(), tmp_path_factory.mktemp("rti"), n_states=12,
                     n_loops=10, footprint=arm_available())


def test_rti_step_matches_acados_sqp_rti(rti_report: RtiReport) -> None:
    rep = next(r for r in rti_report.precisions if r.precision == "float64")
    assert rep.u0_error <= 1e-6 and rep.plan_error <= 1e-6, rti_report.lines()
    for r in rti_report.precisions:
        assert all(status > 0 for status in r.statuses), rti_report.lines()


def test_rti_closed_loop_close_to_converged_sqp(rti_report: RtiReport) -> None:
    for rep in rti_report.precisions:
        assert max(abs(r - 1.0) for r in rep.ratio_sqp) <= 0.01, rti_report.lines()


def test_rti_reproduces_acados_closed_loops_with_the_same_warm_start(rti_report: RtiReport) -> None:
    # the reference is acados SQP_RTI whose iterate is shifted before each step, as the C solver's
    for rep in rti_report.precisions:
        assert max(abs(r - 1.0) for r in rep.ratio_rti) <= 1e-4, rti_report.lines()
    assert rti_report.problems() == [] and rti_report.lines()[-1] == "PASS"


def test_rti_linearised_at_the_plan_reproduces_acados_closed_loops(tmp_path: Path) -> None:
    # warm_start="plan" is acados SQP_RTI's own method: the same closed loops, to float32
    rep = check_rti(cartpole_mpc().build(), tmp_path, n_states=2, n_loops=4, precisions=("float32",),
                    footprint=False, warm_start="plan")
    assert max(abs(r - 1.0) for r in rep.precisions[0].ratio_rti) <= 1e-4, rep.lines()


def test_rti_check_skips_states_where_acados_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # in this box (pole angles up to 1 rad) some states cannot be saved: they are drawn again,
    # not compared with a failed acados plan (which gave |u0 err| = 10 before)
    monkeypatch.setitem(host_check.STATE_BOXES, "cartpole_incline", ([-1.0] * 4, [1.0] * 4))
    rep = check_rti(cartpole_incline_mpc().build(), tmp_path, n_states=8, n_loops=3,
                    precisions=("float64",), footprint=False)
    assert rep.n_states == 8 and rep.skipped >= 1, rep.lines()
    assert rep.precisions[0].u0_error <= 1e-6 and rep.problems() == [], rep.lines()


def test_check_verdict_names_what_failed(rti_report: RtiReport) -> None:
    bad = replace(rti_report, precisions=[replace(rti_report.precisions[0], u0_error=0.5,
                                                  statuses=[1, -1])])
    assert bad.lines()[-1].startswith("FAIL: ")
    assert any("u0 differs from acados SQP_RTI by 5.00e-01" in p for p in bad.problems())
    assert any("1 steps failed" in p for p in bad.problems())


def test_rti_has_no_heap_or_stdio(rti_report: RtiReport) -> None:
    assert rti_report.forbidden == set()


def test_rti_sources_are_reproducible() -> None:
    first, _, _ = render_rti(cartpole_mpc().build(), precision="float32")
    second, _, _ = render_rti(cartpole_mpc().build(), precision="float32")
    assert first == second
    assert "sinf(" in first["rlmpc_model.c"] and "sin(" not in first["rlmpc_model.c"]


def test_rti_general_problem(tmp_path: Path) -> None:
    """Two inputs (one unbounded), a hard state row, soft path rows on (x, u), a fixed p."""
    from test_general_problem import general_problem

    report = check_rti(general_problem().build(), tmp_path, n_states=8, n_loops=3, steps=40,
                       precisions=("float64",), footprint=False)
    rep = report.precisions[0]
    assert rep.u0_error <= 1e-6 and rep.plan_error <= 1e-6, report.lines()
    assert all(status > 0 for status in rep.statuses)


def test_export_cortex_m4_bundle_from_theta_file(tmp_path: Path) -> None:
    import json

    from rlmpc.codegen.mcu_export import export_mcu
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    fns = lti_mpc().build()
    theta_path = tmp_path / "theta.json"
    save_theta(theta_path, theta_document("lti", {}, fns, fns.theta.default()))
    out = export_mcu(theta_path, tmp_path / "bundle")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "cortex-m4" and manifest["precision"] == "float32"
    assert manifest["problem"]["hash"] == fns.problem_hash
    assert (out / "rlmpc_solver.c").is_file() and (out / "daqp").is_dir()
    with pytest.raises(ValueError, match="precision: expected one of"):
        export_mcu(theta_path, tmp_path / "other", precision="float16")
    assert not (tmp_path / "other").exists()


def test_float32_inputs_stay_within_their_bounds(tmp_path: Path) -> None:
    # the QP meets the input bounds to DAQP's tolerance (in float32 |u| reached 5.00002 for a
    # bound of 5): the solvers clip u0, so an actuator is never commanded beyond its limits
    from rlmpc.codegen.mcu.generate_rti import generate_rti
    from rlmpc.codegen.mcu.rti_check import RtiHostSolver

    cases = (("linear", linear_cartpole_mpc().build()), ("rti", cartpole_incline_mpc().build()))
    for kind, fns in cases:
        if kind == "linear":
            gen = generate(fns, tmp_path / kind, precision="float32")
        else:
            gen = generate_rti(fns, tmp_path / kind, precision="float32")
        exe = build_host_harness(gen, tmp_path / kind / "harness", rti=kind == "rti")
        saturated = 0
        with RtiHostSolver(exe) as solver:
            for x0 in host_check.random_states(fns, 10, seed=5, scale=0.5):
                solver.reset()
                x = x0.copy()
                for _ in range(40):  # closed loops: warm starts, saturated inputs
                    u = solver.solve(x).u0
                    assert np.all(u >= fns.u_lb) and np.all(u <= fns.u_ub), (kind, u)
                    saturated += int(np.any(np.isclose(np.abs(u), fns.u_ub, atol=1e-3)))
                    x = np.asarray(fns.dynamics(x, u, fns.theta.default(), fns.params.default())).ravel()
        assert saturated >= 5, (kind, saturated)  # the bound was reached often enough to matter
