"""The structured MCU QP path (interior point + Riccati) against acados, natively compiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.mcu.host_check import HostSolver
from rlmpc.codegen.mcu.structured.check import StructuredReport, check_structured
from rlmpc.codegen.mcu.structured.generate import generate_structured, render_structured
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc
from rlmpc.toolkit.problems.quadrotor import INPUT_LIMITS, quadrotor_hover_mpc

OPTIMAL, SOFT_OPTIMAL, INEXACT, MAX_ITER, INVALID_STATE = 1, 2, 4, -4, -100
# hover states: positions ±1.5, velocities ±1, angles ±0.2, rates ±0.5
HOVER_BOX = np.r_[[1.5] * 3, [1.0] * 3, [0.2] * 3, [0.5] * 3]


def hover_states(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 12)) * HOVER_BOX * scale


@pytest.fixture(scope="module")
def cartpole_report(tmp_path_factory: pytest.TempPathFactory) -> StructuredReport:
    fns = linear_cartpole_mpc().build()
    return check_structured(fns, tmp_path_factory.mktemp("s_cartpole"), n_states=16, n_loops=6, steps=60)


def test_cartpole_reproduces_acados(cartpole_report: StructuredReport) -> None:
    assert cartpole_report.n_state_active >= 1 and cartpole_report.n_input_active >= 1
    assert cartpole_report.problems() == [], cartpole_report.lines()
    assert cartpole_report.forbidden == set()


@pytest.fixture(scope="module")
def hover_report(tmp_path_factory: pytest.TempPathFactory) -> StructuredReport:
    fns = quadrotor_hover_mpc(horizon=10).build()
    return check_structured(fns, tmp_path_factory.mktemp("s_hover"), states=hover_states(8, 0),
                            loop_states=hover_states(3, 1), steps=50, footprint=False)


def test_hover_float64_u0_and_both_closed_loops(hover_report: StructuredReport) -> None:
    f64 = next(r for r in hover_report.precisions if r.precision == "float64")
    assert max(f64.u0_error_warm, f64.u0_error_cold) <= 1e-6, hover_report.lines()
    for rep in hover_report.precisions:  # float32 too: nx = 12 works
        assert all(s > 0 for s in rep.statuses), hover_report.lines()
        assert rep.worst_cost_deviation <= 0.01, hover_report.lines()


@pytest.fixture(scope="module")
def hover32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    fns = quadrotor_hover_mpc(horizon=10).build()
    out = tmp_path_factory.mktemp("s_hover32")
    exes = []
    for name, cap in (("cap30", 30), ("cap2", 2)):
        gen = generate_structured(fns, out / name, precision="float32", max_iter=cap)
        exes.append(build_host_harness(gen, out / name / "harness"))
    return exes[0], exes[1]


def _answers(exe: Path, states: np.ndarray) -> list[tuple[int, np.ndarray]]:
    with HostSolver(exe) as sv:
        out = []
        for s in states:
            res = sv.solve(s)
            out.append((res.status, res.u0))
        return out


def test_float32_never_nonfinite_or_out_of_bounds(hover32: tuple[Path, Path]) -> None:
    lim = np.asarray(INPUT_LIMITS)
    rng = np.random.default_rng(5)
    states = np.vstack([hover_states(20, 2), hover_states(10, 3, 1e3),  # random, extreme
                        rng.uniform(-1e6, 1e6, (5, 12)),
                        np.tile(np.r_[[50.0] * 3, [0.0] * 9], (3, 1))])  # far outside the soft box
    for exe in hover32:
        for status, u0 in _answers(exe, states):
            assert np.all(np.isfinite(u0)) and np.all(np.abs(u0) <= lim), (status, u0)
            assert status in (OPTIMAL, SOFT_OPTIMAL, INEXACT, MAX_ITER, -5), status


def test_float32_nonfinite_state_is_refused(hover32: tuple[Path, Path]) -> None:
    bad = np.zeros((3, 12))
    bad[0, 0], bad[1, 5], bad[2, 11] = np.nan, np.inf, -np.inf
    for status, u0 in _answers(hover32[0], bad):
        assert status == INVALID_STATE and np.all(np.isfinite(u0))


def test_capped_solves_are_never_called_optimal(hover32: tuple[Path, Path]) -> None:
    """Two interior-point iterations cannot meet the KKT tolerances from a hard start: the
    answer is flagged, never optimal, and still an input within the bounds."""
    answers = _answers(hover32[1], hover_states(10, 4))
    assert all(status in (INEXACT, MAX_ITER) for status, _ in answers), [s for s, _ in answers]
    lim = np.asarray(INPUT_LIMITS)
    assert all(np.all(np.abs(u0) <= lim) for _, u0 in answers)


def test_identical_inputs_give_identical_files() -> None:
    fns = quadrotor_hover_mpc(horizon=5).build()
    a, _ = render_structured(fns, precision="float32")
    b, _ = render_structured(fns, precision="float32")
    assert a == b and set(a) == {"rlmpc_solver.h", "rlmpc_solver.c", "rlmpc_model.c"}


def test_choice_keeps_the_dense_path_where_it_fits() -> None:
    from rlmpc.codegen.mcu.structured.choice import choose_qp
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

    assert choose_qp(linear_cartpole_mpc().build(), "float32").path == "dense"
    big = quadrotor_hover_mpc(horizon=40).build()
    choice = choose_qp(big, "float32")
    assert choice.path == "admm" and choice.dense_ram > 112 * 1024 >= choice.structured_ram
    assert "does not fit" in choice.reason
    assert choose_qp(big, "float32", requested="dense").path == "dense"
    with pytest.raises(ValueError, match="--qp: expected one of"):
        choose_qp(big, "float32", requested="sparse")


def test_ram_estimate_matches_the_arrays(tmp_path: Path) -> None:
    """The export decides from the estimate: it must track the solver's real static RAM."""
    from rlmpc.codegen.mcu.structured.choice import structured_ram_estimate
    from rlmpc.codegen.mcu.toolchain import arm_available, cortex_m4_footprint

    assert arm_available(), "arm-none-eabi-gcc is installed by the set-up: its absence is a failure"
    fns = quadrotor_hover_mpc(horizon=20).build()
    ram = cortex_m4_footprint(generate_structured(fns, tmp_path / "g"), tmp_path / "arm").ram
    assert abs(structured_ram_estimate(fns, "float32") - ram) <= 0.05 * ram


def test_structured_bundle_runs_in_the_unchanged_firmware(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """export --qp structured, build for the host board, HIL on the LTI plant: PASS."""
    from rlmpc.cli import main
    from rlmpc.toolkit.registry import make_problem
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    fns = make_problem("lti", {}).build()
    theta = tmp_path / "theta.json"
    save_theta(theta, theta_document("lti", {}, fns, fns.theta.default()))
    bundle, fw = tmp_path / "bundle", tmp_path / "fw"
    assert main(["export", "--theta", str(theta), "--target", "cortex-m4", "--out", str(bundle),
                 "--qp", "structured"]) == 0
    assert "QP path: structured" in capsys.readouterr().out
    assert (bundle / "rlmpc_solver.h").is_file() and not (bundle / "daqp").exists()
    assert main(["build", str(bundle), "--board", "host", "--out", str(fw)]) == 0
    code = main(["hil", str(bundle), "--target", "host", "--program", str(fw / "controller"), "--steps", "40",
                 "--seed", "3", "--out", str(tmp_path / "hil")])
    out = capsys.readouterr().out
    assert code == 0 and "HIL host: PASS" in out, out
