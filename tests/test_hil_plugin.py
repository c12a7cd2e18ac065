"""The HIL pytest plugin (issue #6 item 5), run with pytester: options, ``dut``, ``hil_run``,
per-test serial logs, an already-running device through ``--hil-port``."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.toolkit.problems import lti_mpc
from rlmpc.toolkit.theta_file import save_theta, theta_document

pytest_plugins = ["pytester"]


def _plugin_args() -> list[str]:
    """``-p rlmpc.hil.pytest_plugin`` unless the ``pytest11`` entry point already auto-loads it (loading
    it twice under two names is an error)."""
    installed = any(ep.value == "rlmpc.hil.pytest_plugin" for ep in entry_points(group="pytest11"))
    if installed and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    return ["-p", "rlmpc.hil.pytest_plugin"]

INNER = '''
import json
from pathlib import Path

import numpy as np
import pytest


def test_info_step_reset(dut, hil_target):
    info = dut.info()
    assert info.board_name == hil_target and info.nx == 2 and info.nu == 1
    a = dut.step(np.array([0.5, -0.3]))
    b = dut.step(np.array([0.5, -0.3]))
    assert a.step + 1 == b.step and abs(a.u[0] - b.u[0]) < 1e-6
    dut.reset()
    assert dut.step(np.zeros(2)).step == 0


def test_hil_run_passes(hil_run, tmp_path):
    res = hil_run(steps=30, seed=3, thresholds={"cost_budget": 1e6})
    assert res.passed, res.verdict.reasons
    assert res.paths["json"].parent == tmp_path / "hil"
    doc = json.loads(res.paths["json"].read_text())
    assert doc["verdict"] == "PASS" and doc["metrics"]["steps"] == 30


def test_hil_run_fails_on_a_threshold(hil_run):
    res = hil_run(steps=10, thresholds={"max_action_error": 1e-15})
    assert not res.passed
    assert any(r.startswith("max_action_error:") for r in res.verdict.reasons)


def test_hil_run_with_faults(hil_run, dut):
    from rlmpc.hil.faults import FaultConfig, FaultyPort
    from rlmpc.hil.transport import Device

    faulty = FaultyPort(dut.port, FaultConfig(seed=1, flip_rate=0.002, drop_rate=0.002))
    dev = Device(faulty, timeout=0.2, max_retries=5)
    dev.connect()
    res = hil_run(steps=40, seed=3, device=dev)
    assert res.passed, res.verdict.reasons
    doc = json.loads(res.paths["json"].read_text())
    assert doc["link"]["faults"]["injected"] > 0 and doc["link"]["retries"] > 0
    dut.connect()  # the module's device: a fresh handshake for whoever comes next
'''


@pytest.fixture(scope="module")
def bundle_and_host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Path]:
    root = tmp_path_factory.mktemp("plugin_bundle")
    fns = lti_mpc().build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = Bundle.load(export_mcu(root / "theta.json", root / "bundle"))
    return bundle, build_firmware(bundle.directory, "host", root / "host")


def _properties(junit: Path) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props: dict[str, list[str]] = {}
        for p in case.iter("property"):
            props.setdefault(p.get("name", ""), []).append(p.get("value", ""))
        out[case.get("name", "")] = props
    return out


@pytest.mark.parametrize("target", ["host", "mps2-an386"])
def test_plugin_builds_starts_and_logs_per_test(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(test_inner=INNER)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(*_plugin_args(), "--hil-target", target,
                                f"--junitxml={junit}", "-o", "junit_family=xunit1")
    result.assert_outcomes(passed=4)
    props = _properties(junit)
    assert set(props) == {"test_info_step_reset", "test_hil_run_passes", "test_hil_run_fails_on_a_threshold",
                          "test_hil_run_with_faults"}
    logs = {name: Path(p["hil_serial_log"][0]) for name, p in props.items()}
    assert len(set(logs.values())) == 4  # one log per test, each in the test's own tmp dir
    for name, path in logs.items():
        lines = path.read_text().splitlines()
        assert lines and {ln.split()[1] for ln in lines} == {"tx", "rx"}, name
        assert name[:30] in path.parent.name or path.parent.name.startswith(name[:30])
    assert "hil_report" in props["test_hil_run_passes"]
    assert json.loads(Path(props["test_hil_run_passes"]["hil_report"][0]).read_text())["verdict"] == "PASS"
    assert json.loads(Path(props["test_hil_run_fails_on_a_threshold"]["hil_report"][0]).read_text())[
        "verdict"] == "FAIL"


def test_plugin_uses_a_running_device_and_a_given_bundle(pytester: pytest.Pytester,
                                                         bundle_and_host: tuple[Bundle, Path]) -> None:
    bundle, program = bundle_and_host
    pytester.makepyfile(test_inner='''
def test_running_device(dut, hil_program, hil_bundle, hil_run):
    assert hil_program is None  # nothing built with --hil-port
    assert dut.info().board_name == "host"
    assert hil_run(steps=20, seed=1).passed
''')
    with start_emulator(program, "host") as emu:
        result = pytester.runpytest(*_plugin_args(), "--hil-port", emu.serial_url,
                                    "--hil-bundle", str(bundle.directory), "-rA")
        result.assert_outcomes(passed=1)
        assert emu.process.poll() is None  # not ours: still running


def test_plugin_options_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*_plugin_args(), "--help")
    result.stdout.fnmatch_lines(["*--hil-target*", "*--hil-port*", "*--hil-bundle*"])
    bad = pytester.runpytest(*_plugin_args(), "--hil-target", "nonsense")
    assert bad.ret != 0


def test_plugin_on_the_linux_aarch64_controller(pytester: pytest.Pytester) -> None:
    """--hil-target linux-aarch64: the plugin exports the acados bundle, cross-builds it and
    runs it under qemu-aarch64."""
    pytester.makepyfile(test_inner='''
def test_on_aarch64(dut, hil_bundle, hil_run):
    info = dut.info()
    assert info.board_name == "linux-aarch64" and info.precision == 8
    assert hil_bundle.manifest["target"] == "linux-aarch64"
    res = hil_run(steps=30, seed=2)
    assert res.passed and res.run.action_error.max() < 1e-8
''')
    result = pytester.runpytest(*_plugin_args(), "--hil-target", "linux-aarch64", "-rA")
    result.assert_outcomes(passed=1)
