"""Issue #18 items 1, 2, 5, 6 and issue #14 item 6 on the host board (fast): deterministic
refusals are not retried, a diverging plant ends the run, a lost link never passes cost or
constraints, edited bundles are refused (or built with --allow-modified, recorded), Ctrl-C on
``hil``, ``bench-target`` and the pytest plugin writes the partial report and serial log."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from processes import LtiPrograms, lti_programs
from test_hil_plugin import _plugin_args

from rlmpc.cli import main
from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator
from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.protocol_spec import ErrorCode
from rlmpc.hil import transport
from rlmpc.hil.faults import FaultConfig, parse_fault_spec
from rlmpc.hil.report import write_report
from rlmpc.hil.runner import run_hil
from rlmpc.hil.transport import Device, DeviceRefusalError, open_link
from rlmpc.hil.verdict import Thresholds, evaluate
from rlmpc.toolkit.envs.lti import LtiGrosZanon

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> LtiPrograms:
    return lti_programs(tmp_path_factory.mktemp("failfast"), ("host",))


@pytest.fixture
def device(setup: LtiPrograms) -> Any:
    emu = start_emulator(setup.programs["host"], "host")
    port = open_link(emu.serial_url)
    dev = Device(port, alive=transport.process_alive(emu.process))
    dev.connect()
    yield dev, emu
    emu.stop(port)
    port.close()
    if emu.process.stderr is not None:
        emu.process.stderr.close()


def test_a_refusal_of_the_device_is_not_retried(device: Any) -> None:
    dev, _ = device
    before = dev.stats.requests
    with pytest.raises(DeviceRefusalError, match="the device refused it: ERROR code 5") as exc:
        dev.step([0.1, 0.2], p=[1.0, 2.0, 3.0])  # the LTI firmware has np = 0: BAD_DIMENSION
    assert exc.value.code == ErrorCode.BAD_DIMENSION
    assert dev.stats.requests - before == 1 and dev.stats.retries == 0 and dev.stats.resyncs == 0


def test_an_exited_device_is_detected_at_once(device: Any) -> None:
    dev, emu = device
    emu.process.kill()
    emu.process.wait()
    with pytest.raises(transport.LinkDownError, match=r"exited|closed"):
        dev.step([0.1, 0.2])
    assert dev.stats.retries == 0


class _Diverging(LtiGrosZanon):  # type: ignore[misc]
    """A plant whose state overflows at its 6th step."""

    def step(self, u: Any) -> Any:
        obs, cost, term, trunc, info = super().step(u)
        self._n = getattr(self, "_n", 0) + 1
        if self._n == 6:
            obs = np.full_like(np.asarray(obs, dtype=float), np.inf)
        return obs, cost, term, trunc, info

    def reset(self, **kw: Any) -> Any:
        self._n = 0
        return super().reset(**kw)


def test_a_diverging_plant_ends_the_run_without_a_warning(device: Any, setup: LtiPrograms,
                                                           tmp_path: Path) -> None:
    dev, _ = device
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = run_hil(dev, _Diverging(), setup.reference, 50, seed=3, manifest=setup.bundle.manifest)
        verdict = evaluate(run)
        paths = write_report(run, verdict, tmp_path / "report")
    doc = json.loads(paths["json"].read_text())  # valid JSON: the non-finite state is null
    assert doc["trace"]["states"][-1] == [None, None] and doc["aborted"]
    assert run.steps == 6 and run.steps_requested == 50 and "no longer finite" in str(run.aborted)
    failed = {c.name for c in verdict.checks if not c.passed}
    assert {"completed", "cost_rel_tol", "constraint_tol"} <= failed


class _GoneAfter:
    """A port that goes silent after ``n`` STEP frames (a cable pulled)."""

    def __init__(self, port: Any, n: int) -> None:
        self.port, self.n, self.steps = port, n, 0

    def write(self, data: bytes) -> Any:
        if len(data) > 3 and data[2] == 0x02:
            self.steps += 1
        return self.port.write(data) if self.steps <= self.n else len(data)

    def read(self, size: int = 1) -> bytes:
        data: bytes = self.port.read(size)
        return data if self.steps <= self.n else b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)


@pytest.mark.parametrize("allowed", [0, 1000])
def test_a_lost_link_never_passes_cost_or_constraints(setup: LtiPrograms, allowed: int) -> None:
    emu = start_emulator(setup.programs["host"], "host")
    port = open_link(emu.serial_url)
    try:
        dev = Device(_GoneAfter(port, 30), budget=transport.LinkBudget(max_silence_s=30, max_consecutive_lost=3))
        dev.connect()
        run = run_hil(dev, LtiGrosZanon(), setup.reference, 60, seed=3, manifest=setup.bundle.manifest)
    finally:
        emu.stop(port)
        port.close()
    assert run.lost.sum() == 3 and "in a row without a valid ACTION" in str(run.aborted)
    verdict = evaluate(run, Thresholds(max_lost_steps=allowed))
    checks = {(c.name, c.subject): c for c in verdict.checks}
    cost = [c for (n, _), c in checks.items() if n == "cost_rel_tol"]
    state = [c for (n, s), c in checks.items() if n == "constraint_tol" and "state" in s]
    assert not verdict.passed and not cost[0].passed and not state[0].passed
    assert "not judged" in cost[0].message


def test_fault_specs_map_to_the_fault_injector() -> None:
    cfg = parse_fault_spec("drop=0.01, flip=1e-4, delay=0.05, delay_s=0.1, reset=5+9, dir=rx, seed=3, start=2")
    assert cfg == FaultConfig(seed=3, flip_rate=1e-4, drop_rate=0.01, delay_rate=0.05, delay_s=0.1,
                              directions=("rx",), start_step=2, reset_at=(5, 9))


def test_hil_with_faults_from_the_command_line(setup: LtiPrograms, tmp_path: Path) -> None:
    out = tmp_path / "faulty"
    code = main(["hil", str(setup.bundle.directory), "--target", "host", "--program", str(setup.programs["host"]),
                 "--steps", "60", "--seed", "3", "--faults", "drop=0.003,flip=0.002,seed=4", "--out", str(out)])
    doc = json.loads((out / "hil.json").read_text())
    assert doc["link"]["faults"]["injected"] > 0 and doc["link"]["faults"]["config"]["drop_rate"] == 0.003
    assert code == (0 if doc["verdict"] == "PASS" else 1) and doc["link"]["retries"] > 0


def _edited(bundle: Path, tmp_path: Path) -> Path:
    edited = tmp_path / "edited"
    shutil.copytree(bundle, edited)
    with (edited / "rlmpc_solver.c").open("a") as f:
        f.write("/* tuned by hand */\n")
    return edited


def test_an_edited_bundle_builds_only_with_allow_modified(setup: LtiPrograms, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    edited = _edited(setup.bundle.directory, tmp_path)
    assert main(["build", str(edited), "--board", "host", "--out", str(tmp_path / "refused")]) == 2
    assert "rlmpc_solver.c was modified" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main(["build", str(edited), "--board", "host", "--allow-modified", "--out", str(tmp_path / "b")]) == 0
    assert "built with --allow-modified" in capsys.readouterr().out
    info = json.loads((tmp_path / "b" / "build.json").read_text())
    assert info["allow_modified"] and "rlmpc_solver.c" in info["modified"][0]
    assert info["firmware_manifest_hash"] != info["manifest_sha256"]  # INFO does not claim the export
    header = (tmp_path / "b" / "gen" / "bundle_info.h").read_text()
    first = bytes.fromhex(info["firmware_manifest_hash"])[0]
    assert f"RLMPC_BUNDLE_MANIFEST_HASH {{0x{first:02x}" in header.replace("{ ", "{")


def test_theta_is_checked_by_its_values(setup: LtiPrograms, tmp_path: Path) -> None:
    """θ edited in the manifest with a matching hash: the solver sources say otherwise."""
    edited = tmp_path / "theta"
    shutil.copytree(setup.bundle.directory, edited)
    doc = json.loads((edited / "manifest.json").read_text())
    doc["theta"]["flat"][0] += 0.5
    doc["theta"]["hash"] = theta_hash(doc["theta"]["flat"])
    (edited / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not those the solver sources were generated from"):
        Bundle.load(edited)
    with pytest.raises(ValueError, match="θ values are not those"):
        build_firmware(edited, "host", tmp_path / "b")


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    step = Device.step
    calls = [0]

    def interrupted(self: Device, *a: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] > n:
            raise KeyboardInterrupt
        return step(self, *a, **kw)

    monkeypatch.setattr(Device, "step", interrupted)


def test_ctrl_c_on_hil_writes_the_partial_report(setup: LtiPrograms, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _interrupt_after(monkeypatch, 25)
    out = tmp_path / "hil"
    assert main(["hil", str(setup.bundle.directory), "--target", "host", "--program", str(setup.programs["host"]),
                 "--steps", "100", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0] and "25 of 100 steps ran" in err[0], err
    doc = json.loads((out / "hil.json").read_text())
    assert doc["steps"] == 25 and doc["interrupted"] and doc["verdict"] == "FAIL"
    assert (out / "serial.log").stat().st_size > 0 and (out / "states.png").is_file()


def test_ctrl_c_on_bench_target_writes_the_partial_results(setup: LtiPrograms, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _interrupt_after(monkeypatch, 130)
    out = tmp_path / "bt"
    assert main(["bench-target", str(setup.bundle.directory), "--target", "host", "--program",
                 str(setup.programs["host"]), "--episodes", "3", "--steps", "100", "--out", str(out)]) == 130
    err = [ln for ln in capsys.readouterr().err.splitlines() if "rlmpc" in ln]
    assert len(err) == 1 and "130 of 300 steps ran" in err[0], err
    doc = json.loads((out / "bench_target.json").read_text())
    assert doc["steps_run"] == 130 and len(doc["costs"]) == 130 and doc["aborted"]
    assert (out / "serial.log").stat().st_size > 0


def test_ctrl_c_in_the_pytest_plugin_writes_the_partial_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner='''
def test_interrupted(hil_run, tmp_path):
    def ctrl_c(k):
        if k == 19:
            raise KeyboardInterrupt
    hil_run(steps=100, seed=1, progress=ctrl_c)
''')
    # (in a subprocess: the interrupt ends that pytest session, not this one)
    result = pytester.runpytest_subprocess(*_plugin_args(), "--hil-target", "host",
                                           f"--basetemp={pytester.path / 'tmp'}")
    result.stderr.fnmatch_lines(["*rlmpc hil: interrupted: 20 of 100 steps ran; partial report: *summary.md, "
                                 "serial log: *serial.log*"])
    report = next((pytester.path / "tmp").rglob("hil/hil.json"))
    assert json.loads(report.read_text())["steps"] == 20
    assert (report.parent / "serial.log").stat().st_size > 0
