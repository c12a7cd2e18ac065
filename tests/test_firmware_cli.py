"""The firmware commands from the command line: ``rlmpc flash`` (a bundle built and run on its
emulated board; a real board through a faked probe tool), ``rlmpc bench-target`` and
``rlmpc hil --target`` building the firmware itself.

Only the probe tool is faked (a shell script on PATH); gcc, arm-none-eabi-gcc and QEMU are real.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import serial
from processes import alive

from rlmpc.cli import main
from rlmpc.codegen.firmware import build_firmware
from rlmpc.codegen.firmware_link import FirmwareLink
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.codegen.protocol_spec import Precision
from rlmpc.toolkit.registry import make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document

REPO = Path(__file__).resolve().parents[1]
RLMPC = [sys.executable, "-m", "rlmpc"]


@pytest.fixture(scope="module")
def lti_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    fns = make_problem("lti", {}).build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    return export_mcu(root / "theta.json", root / "lti_mcu")


def test_bench_target_prints_and_writes_the_distribution(lti_bundle: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    code = main(["bench-target", str(lti_bundle), "--target", "mps2-an386", "--episodes", "2",
                 "--steps", "30", "--budget", "8000", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "bench-target mps2-an386: instructions per control step, 2 closed loops × 30 steps" in text
    doc = json.loads((out / "bench_target.json").read_text())
    costs = np.array(doc["costs"])
    assert doc["unit"] == "instructions" and costs.size == 60 and np.all(costs > 0)
    assert sum(doc["startup"]) == 2 and doc["lost_steps"] == 0
    summary = doc["summary"]
    assert summary["all"]["median"] == pytest.approx(float(np.median(costs)))
    assert summary["all"]["maximum"] == costs.max() and summary["steady"]["count"] == 58
    assert summary["over_budget"] == int(np.sum(costs > 8000))
    assert re.search(r"all steps\s+n=60\s+min\s+[\d,]+\s+median", text)
    assert (out / "bench_target.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "firmware" / "controller.elf").is_file()  # built from the bundle


def test_hil_target_builds_the_firmware_itself(lti_bundle: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["hil", str(lti_bundle), "--target", "host", "--steps", "40", "--out", str(tmp_path / "h")])
    assert code == 0, capsys.readouterr()
    assert "HIL host: PASS" in capsys.readouterr().out
    assert (tmp_path / "h" / "firmware" / "controller").is_file() and (tmp_path / "h" / "junit.xml").is_file()


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill a flash that did not stop by itself, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def test_flash_a_bundle_runs_it_until_sigterm(lti_bundle: Path, tmp_path: Path) -> None:
    """``rlmpc flash BUNDLE --board host`` builds, starts, prints the serial port, serves the
    protocol, and stops its program on SIGTERM."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RLMPC_CACHE_DIR": str(lti_bundle.parent / "cache")}
    proc = subprocess.Popen([*RLMPC, "flash", str(lti_bundle), "--board", "host"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("building the firmware for host")
        match = re.match(r"serial: (\S+)\s+\(pid (\d+);", lines[1])
        assert match, lines
        pid = int(match.group(2))
        port = serial.serial_for_url(match.group(1), timeout=0.05)
        try:
            info = FirmwareLink(port, Precision.F32).hello()
            assert info.board_name == "host" and info.nx == 2
        finally:
            port.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        _reap(proc)
    assert not alive(pid)
    assert not any(tmp_path.iterdir())  # nothing written into the current folder


def _tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with the SHA-256 of its content ("" for a folder)."""
    return {p.relative_to(folder).as_posix(): "" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def test_flash_leaves_the_bundle_as_exported_and_stops_on_sigint_in_the_background(tmp_path: Path) -> None:
    """``rlmpc flash BUNDLE`` builds outside the bundle (the cache), so the bundle folder is
    unchanged and a re-export replaces it; started as a shell starts a background job (SIGINT
    ignored), SIGINT still stops it and its program."""
    fns = make_problem("lti", {}).build()
    save_theta(tmp_path / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = export_mcu(tmp_path / "theta.json", tmp_path / "lti_mcu")
    before = _tree(bundle)
    cache, cwd = tmp_path / "cache", tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RLMPC_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([*RLMPC, "flash", str(bundle), "--board", "host"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        built = re.match(r"building the firmware for host → (\S+)$", lines[0].strip())
        match = re.match(r"serial: (\S+)\s+\(pid (\d+);", lines[1])
        assert built and match, lines
        pid = int(match.group(2))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        _reap(proc)
    assert not alive(pid)
    assert _tree(bundle) == before  # nothing added or changed in the bundle
    build = Path(built.group(1))
    assert build.is_relative_to(cache) and (build / "controller").is_file()  # where it says it built
    assert not any(cwd.iterdir())
    assert export_mcu(tmp_path / "theta.json", bundle) == bundle  # a re-export replaces it


FAKE_OPENOCD = """#!/bin/sh
echo "$@" > "{argv}"
if [ -f "{fail}" ]; then
  printf 'Open On-Chip Debugger 0.12.0\\nError: open failed\\n** OpenOCD init failed **\\n'
  exit 1
fi
printf '** Programming Started **\\n** Programming Finished **\\n** Verify Started **\\n'
printf '** Verified OK **\\n** Resetting Target **\\nshutdown command invoked\\n'
"""


def test_flash_real_board_through_the_probe(lti_bundle: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    elf = build_firmware(lti_bundle, "stm32f405", tmp_path / "fw")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv, fail = tmp_path / "argv.txt", tmp_path / "fail"
    tool = bin_dir / "openocd"
    tool.write_text(FAKE_OPENOCD.format(argv=argv, fail=fail))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    assert main(["flash", str(elf), "--board", "stm32f405", "--probe", "openocd"]) == 0
    assert str(elf) in argv.read_text() and "verify reset exit" in argv.read_text()
    assert "openocd" in capsys.readouterr().out
    assert (elf.parent / "flash.log").is_file()

    fail.touch()  # no probe answers: one line, exit 1
    assert main(["flash", str(elf), "--board", "stm32f405", "--probe", "openocd"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlmpc flash: error: no debug probe answered")

    # an mps2-an386 has no probe flashing: usage error, nothing run
    argv.unlink()
    mps2 = build_firmware(lti_bundle, "mps2-an386", tmp_path / "mps2")
    assert main(["flash", str(mps2), "--board", "mps2-an386", "--probe", "openocd"]) == 2
    assert not argv.exists()
    assert "mass storage" in capsys.readouterr().err


def test_flash_refuses_what_is_not_a_bundle_or_program(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flash", str(tmp_path / "missing"), "--board", "host"]) == 2
    assert "no such bundle folder or firmware program" in capsys.readouterr().err
    assert main(["flash", str(tmp_path), "--board", "host"]) == 2
    assert "expected a bundle folder (with manifest.json)" in capsys.readouterr().err
    program = tmp_path / "controller"
    program.write_bytes(b"")
    assert main(["flash", str(program), "--board", "host", "--build-dir", str(tmp_path / "b")]) == 2
    assert "--build-dir: only with a bundle folder" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_plant_params_reach_the_plant(lti_bundle: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from rlmpc.hil.cli import reference_and_plant
    from rlmpc.toolkit.envs.cartpole_incline import CartPoleIncline

    manifest = {"problem": {"name": "cartpole_incline", "params": {"m_pole": 0.5}},
                "theta": {"flat": [0.0]}}
    with pytest.raises(ValueError, match=r"--plant-params: expected a JSON object, got list"):
        reference_and_plant(manifest, None, "[1]")
    with pytest.raises(ValueError, match=r"--plant-params: not valid JSON"):
        reference_and_plant(manifest, None, "{m_pole: 1}")
    code = main(["hil", str(lti_bundle), "--target", "host", "--steps", "5", "--plant-params",
                 '{"mass": 1}', "--out", str(tmp_path / "h")])
    assert code == 2 and "env.params:" in capsys.readouterr().err  # LtiGrosZanon has no 'mass'
    from rlmpc.toolkit.registry import make_env

    plant = make_env("CartPoleIncline", {"m_pole": 0.65, "slope": 0.12})
    assert isinstance(plant, CartPoleIncline) and plant.m_pole == 0.65
