"""HIL test conditions: measurement noise and input disturbances (the same realisations in the
device loop and the reference loop), and real-time pacing with late steps counted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from rlmpc.cli import main
from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.hil.conditions import Conditions
from rlmpc.hil.runner import HilRun, run_hil
from rlmpc.hil.transport import Device, open_link
from rlmpc.hil.verdict import Thresholds, evaluate
from rlmpc.toolkit import MPC, SolverOptions
from rlmpc.toolkit.envs.lti import LtiGrosZanon
from rlmpc.toolkit.problems import lti_mpc
from rlmpc.toolkit.theta_file import save_theta, theta_document


@pytest.fixture(scope="module")
def lti(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Path, MPC]:
    root = tmp_path_factory.mktemp("cond")
    fns = lti_mpc().build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = Bundle.load(export_mcu(root / "theta.json", root / "bundle"))
    program = build_firmware(bundle.directory, "host", root / "host")
    reference = MPC(fns, SolverOptions(tol=1e-9), theta=np.array(bundle.manifest["theta"]["flat"]))
    return bundle, program, reference


def _run(lti: tuple[Bundle, Path, MPC], steps: int, conditions: Conditions | None) -> HilRun:
    bundle, program, ref = lti
    with start_emulator(program, "host") as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            device.connect()
            return run_hil(device, LtiGrosZanon(), ref, steps, seed=4, manifest=bundle.manifest,
                           conditions=conditions)
        finally:
            emu.stop(port)
            port.close()


def test_draws_are_seeded_and_checked() -> None:
    c = Conditions(measurement_noise=[0.1, 0.0], input_disturbance=0.5)
    n1, d1 = c.draw(3, 50, 2, 1)
    n2, d2 = c.draw(3, 50, 2, 1)
    assert n1.shape == (50, 2) and d1.shape == (50, 1)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(d1, d2)
    assert np.all(n1[:, 1] == 0) and 0.05 < np.std(n1[:, 0]) < 0.15 and 0.3 < np.std(d1) < 0.7
    assert not np.array_equal(c.draw(4, 50, 2, 1)[0], n1)
    with pytest.raises(ValueError, match=r"measurement_noise: expected one standard deviation or 2"):
        Conditions(measurement_noise=[0.1, 0.1, 0.1]).draw(0, 5, 2, 1)
    with pytest.raises(ValueError, match=r"input_disturbance: expected finite values >= 0"):
        Conditions(input_disturbance=-1.0).draw(0, 5, 2, 1)
    with pytest.raises(ValueError, match=r"period: expected a positive number of seconds"):
        Conditions(period=0.0)


def test_noise_and_disturbance_reach_both_loops(lti: tuple[Bundle, Path, MPC]) -> None:
    ideal = _run(lti, 40, None)
    noisy = _run(lti, 40, Conditions(measurement_noise=0.01, input_disturbance=0.05))
    assert np.max(np.abs(noisy.states - ideal.states)) > 1e-3  # the plant felt it
    verdict = evaluate(noisy, Thresholds())
    assert verdict.passed, verdict.reasons  # same realisations: device and reference agree
    assert np.max(noisy.action_error) < 1e-5  # the reference policy saw the same noisy states
    assert noisy.conditions["measurement_noise"] == [0.01, 0.01]
    assert noisy.conditions["input_disturbance"] == [0.05]


def test_pacing_holds_the_period_and_counts_late_steps(lti: tuple[Bundle, Path, MPC]) -> None:
    t0 = time.perf_counter()
    paced = _run(lti, 20, Conditions(period=0.02))
    assert time.perf_counter() - t0 >= 20 * 0.02 and paced.wall_time >= 20 * 0.02 - 1e-3
    assert paced.late.shape == (20,) and paced.late.sum() <= 2  # the host program answers in < 1 ms
    rushed = _run(lti, 10, Conditions(period=1e-6))
    assert rushed.late.all()
    verdict = evaluate(rushed, Thresholds(max_late_steps=0))
    assert not verdict.passed and any(r.startswith("max_late_steps: paced steps") for r in verdict.reasons)
    assert evaluate(rushed, Thresholds()).passed  # not judged unless asked for


def test_cli_options_reach_the_report(lti: tuple[Bundle, Path, MPC], tmp_path: Path) -> None:
    bundle, program, _ = lti
    code = main(["hil", str(bundle.directory), "--target", "host", "--program", str(program), "--steps", "15",
                 "--measurement-noise", "0.01", "0.0", "--input-disturbance", "0.02", "--realtime",
                 "--out", str(tmp_path / "r")])
    assert code == 0
    doc = json.loads((tmp_path / "r" / "hil.json").read_text())
    assert doc["conditions"] == {"measurement_noise": [0.01, 0.0], "input_disturbance": [0.02],
                                 "period": bundle.manifest["sampling_time"],
                                 "plant": {"name": "LtiGrosZanon", "params": {}}}
    assert doc["metrics"]["late_steps"] is not None
    assert "paced at" in (tmp_path / "r" / "summary.md").read_text()
    assert "plant LtiGrosZanon" in (tmp_path / "r" / "summary.md").read_text()
