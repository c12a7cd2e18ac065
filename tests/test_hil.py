"""HIL runner: the LTI bundle's firmware on the host board (pty) and in QEMU mps2-an386 (TCP)
closes the loop around the Gros & Zanon plant; verdict, report files, link recovery.

gcc, arm-none-eabi-gcc and qemu-system-arm are installed by the set-up: their absence is a
failure, not a skip.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from processes import LtiPrograms, alive, lti_programs

from rlmpc.codegen.firmware import start_emulator
from rlmpc.codegen.mcu.qemu_bench import qemu_available
from rlmpc.codegen.protocol_spec import MsgType
from rlmpc.hil.report import FILES, write_report
from rlmpc.hil.runner import HilRun, run_hil
from rlmpc.hil.transport import Device, RecordingPort, TransportError, open_link
from rlmpc.hil.verdict import Thresholds, evaluate
from rlmpc.toolkit.envs.lti import LtiGrosZanon

STEPS = 80
BOARDS = ("host", "mps2-an386")  # the boards of issue #6's first cut


Setup = LtiPrograms


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    return lti_programs(tmp_path_factory.mktemp("hil"), BOARDS)


def _run(setup: Setup, board: str, steps: int = STEPS, wrap: Any = None,
         **device_kwargs: Any) -> tuple[HilRun, int]:
    emu = start_emulator(setup.programs[board], board)
    port = None
    try:
        port = open_link(emu.serial_url)
        device = Device(port if wrap is None else wrap(port), **device_kwargs)
        assert device.connect().board_name == board and device.ping() > 0
        run = run_hil(device, LtiGrosZanon(), setup.reference, steps, seed=3, manifest=setup.bundle.manifest)
    finally:
        emu.stop(port)
        if port is not None:
            port.close()
    assert not alive(emu.process.pid), "the firmware survived"
    return run, emu.process.pid


@pytest.fixture(scope="module")
def runs(setup: Setup) -> dict[str, HilRun]:
    return {board: _run(setup, board)[0] for board in BOARDS}


@pytest.mark.parametrize("board", BOARDS)
def test_closed_loop_passes_and_writes_the_report(setup: Setup, runs: dict[str, HilRun], board: str,
                                                  tmp_path: Path) -> None:
    run = runs[board]
    verdict = evaluate(run, Thresholds(cost_budget=1e6))
    assert verdict.passed, verdict.reasons
    assert run.board == board and run.steps == STEPS and not run.lost.any()
    assert run.identity["theta_matches_manifest"] and run.identity["problem_matches_manifest"]
    assert np.max(run.action_error) < 1e-5  # float32 solver vs the acados reference at the same θ
    assert abs(run.total_cost / run.ref_total_cost - 1) < 1e-4
    assert np.all(run.iterations == 1) and np.all(run.device_cost > 0)
    assert run.cost_unit == ("instructions" if board == "mps2-an386" else "microseconds")
    assert np.all(np.isfinite(run.latency)) and run.link["retries"] == 0 and run.link["lost_steps"] == 0

    paths = write_report(run, verdict, tmp_path / "report")
    assert set(paths) == set(FILES)
    doc = json.loads(paths["json"].read_text())
    assert doc["format"] == "rlmpc-hil/1" and doc["verdict"] == "PASS" and doc["reasons"] == []
    assert doc["board"] == board and doc["identity"]["board"] == board
    assert doc["metrics"]["steps"] == STEPS and doc["metrics"]["lost_steps"] == 0
    assert 0.99 <= doc["metrics"]["cost_ratio"] <= 1.01
    assert doc["metrics"]["max_action_error"] <= 1e-3
    assert len(doc["trace"]["states"]) == STEPS + 1 and len(doc["trace"]["device_cost"]) == STEPS
    assert {c["name"] for c in doc["checks"]} >= {"max_action_error", "cost_rel_tol", "constraint_tol",
                                                  "cost_budget", "max_lost_steps"}
    for key in FILES:
        if key.endswith("_png"):
            data = paths[key].read_bytes()
            assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert int(suite.get("tests", "0")) == len(verdict.checks) == len(suite.findall("testcase"))
    log = paths["serial_log"].read_text().splitlines()
    assert log[0].split()[1] == "tx" and any(line.split()[1] == "rx" for line in log)
    assert sum(len(bytes.fromhex(line.split()[2])) for line in log if line.split()[1] == "tx") \
        == sum(len(b) for _, d, b in run.serial_log if d == "tx") == run.link["bytes_tx"]
    assert "**PASS**" in paths["markdown"].read_text()


def test_impossible_threshold_fails_with_its_name(runs: dict[str, HilRun], tmp_path: Path) -> None:
    run = runs["host"]
    verdict = evaluate(run, Thresholds(max_action_error=1e-15, cost_budget=0.5))
    assert not verdict.passed
    assert any(r.startswith("max_action_error:") for r in verdict.reasons), verdict.reasons
    assert any(r.startswith("cost_budget:") and "microseconds" in r for r in verdict.reasons)
    paths = write_report(run, verdict, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["verdict"] == "FAIL" and any("max_action_error" in r for r in doc["reasons"])
    failures = [f.get("message", "") for f in ET.parse(paths["junit"]).getroot().iter("failure")]
    assert any(m.startswith("max_action_error:") for m in failures)
    assert "**FAIL**" in paths["markdown"].read_text()


def test_thresholds_from_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "hil.json").write_text(json.dumps({"thresholds": {"cost_rel_tol": 0.05, "cost_budget": 2e4}}))
    th = Thresholds.load(tmp_path / "hil.json")
    assert th.cost_rel_tol == 0.05 and th.cost_budget == 2e4 and th.max_action_error is None
    with pytest.raises(ValueError, match="unknown keys \\['bogus'\\]"):
        Thresholds.from_dict({"bogus": 1})


class _Lossy:
    """Swallows the device's replies from the ``drop_at``-th STEP until ``writes`` more frames were
    written (1: the reply to that STEP only; the link must recover)."""

    def __init__(self, port: RecordingPort, drop_at: int, writes: int = 1) -> None:
        self.port, self.drop_at, self.writes, self.steps, self.left = port, drop_at, writes, 0, 0

    def write(self, data: bytes) -> Any:
        if self.left:
            self.left -= 1
        if len(data) > 3 and data[2] == MsgType.STEP:
            self.steps += 1
            if self.steps == self.drop_at:
                self.left = self.writes
        return self.port.write(data)

    def read(self, size: int = 1) -> bytes:
        data: bytes = self.port.read(size)
        return b"" if self.left else data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)


def test_a_lost_reply_is_retried_after_a_new_handshake(setup: Setup) -> None:
    run, _ = _run(setup, "host", steps=20, wrap=lambda p: _Lossy(p, 7), timeout=0.2)
    assert run.link["retries"] == 1 and run.link["resyncs"] == 1 and run.link["lost_steps"] == 0
    assert run.retries[6] == 1 and run.retries.sum() == 1 and not run.lost.any()
    assert any("STEP 6" in e and "no reply" in e for e in run.link["errors"])
    assert evaluate(run).passed


def test_an_unrecovered_step_is_lost_and_fails_the_verdict(setup: Setup) -> None:
    # 8 writes without replies: more than a retry's resync can take (2 HELLOs, the filler flush, 2 more HELLOs)
    run, _ = _run(setup, "host", steps=12, wrap=lambda p: _Lossy(p, 7, writes=8), timeout=0.1,
                  max_retries=1, hello_attempts=2)
    assert run.lost[6] and run.link["lost_steps"] == int(run.lost.sum()) >= 1
    assert run.actions[6, 0] == 0.0  # the safe action
    assert not run.lost[-1]  # the link came back
    verdict = evaluate(run)
    assert not verdict.passed and any(r.startswith("max_lost_steps:") for r in verdict.reasons)


def test_cli_command_runs_the_host_firmware(setup: Setup, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from rlmpc.hil.cli import add_hil_command

    parser = argparse.ArgumentParser(prog="rlmpc")
    add_hil_command(parser.add_subparsers(dest="command", required=True))
    common = [str(setup.bundle.directory), "--program", str(setup.programs["host"]), "--board", "host",
              "--steps", "50", "--seed", "3"]
    args = parser.parse_args(["hil", *common, "--out", str(tmp_path / "ok")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "HIL host: PASS" in out and (tmp_path / "ok" / "junit.xml").is_file()
    args = parser.parse_args(["hil", *common, "--cost-budget", "0", "--out", str(tmp_path / "tight")])
    assert args.func(args) == 1
    assert "cost_budget:" in capsys.readouterr().out


def test_open_link_retries_then_fails(tmp_path: Path) -> None:
    port = open_link("loop://")
    port.write(b"\xa5\x5a")
    assert port.read(2) == b"\xa5\x5a" and [d for _, d, _ in port.log] == ["tx", "rx"]
    port.close()
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="after 3 attempts"):
        open_link(str(tmp_path / "no-such-tty"), attempts=3, interval=0.05)
    assert time.monotonic() - t0 >= 0.1


def test_long_run_of_a_correct_device_passes(setup: Setup) -> None:
    """300 steps on the LTI plant, which rides its soft bound x1 = 0: the device and the
    reference closed loops drift apart from float32-level differences, so the state-violation
    check has a relative margin (an absolute 1e-5 alone failed this correct device)."""
    run, _ = _run(setup, "host", steps=300)
    verdict = evaluate(run, Thresholds())
    assert verdict.passed, verdict.reasons
    assert float(np.max(run.action_error)) < 1e-5
