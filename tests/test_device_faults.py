"""Faults while learning through the device (issue #16, item 2) on the emulated mps2-an386: bit flips,
dropped bytes and a device reset (the emulator restarted mid-run) are retried, shaken hands again
and answered with θ pushed again, every one of them counted; the learned θ is bit for bit the clean
run's. ``--resume`` after an interruption sends θ to the (restarted) device again and ends on the
same θ too (θ is pushed before every step, so the device starts every step cold)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lti_configs import lti_qlearning_config

from rlmpc.cli import main
from rlmpc.codegen.mcu.qemu_bench import qemu_available

CONFIG = lti_qlearning_config(seed=69, steps=200, checkpoint_every=100)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The config and a clean run through mps2-an386 (its firmware build is reused by the others)."""
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    root = tmp_path_factory.mktemp("device_faults")
    cfg = root / "lti.toml"
    cfg.write_text(CONFIG)
    assert main(["train", str(cfg), "--out", str(root / "clean"), "--quiet", "--no-plots",
                 "--device", "mps2-an386"]) == 0
    return cfg, root / "clean"


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def test_faults_while_learning_are_counted_and_leave_theta_bit_for_bit(clean: tuple[Path, Path],
                                                                       tmp_path: Path) -> None:
    cfg, clean_out = clean
    out = tmp_path / "faulty"
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--no-plots", "--device", "mps2-an386",
                 "--program", str(clean_out / "device" / "firmware" / "controller.elf"),
                 "--faults", "flip=3e-4,drop=3e-4,reset=120,seed=2"]) == 0
    d = json.loads((out / "device.json").read_text())
    f, link = d["faults"], d["link"]
    # θ and the step in one frame, θ as differences (a retry, a refused base: STEP_THETA): its retries and
    # resets are counted
    assert d["theta_frame"].startswith("STEP_THETA_DELTA") and link["theta_deltas"] > 100
    assert f["resets"] == 1 and f["bit_flips"] > 0 and f["dropped_bytes"] > 0 and not f["errors"]
    assert d["theta_repushes_after_reset"] == 1  # the restarted board ran its exported θ: pushed again
    assert link["retries"] >= 3 and link["resyncs"] >= 3 and f["hellos_written"] >= link["resyncs"]
    # no step lost: every action is the device's (a STEP the transport gave up on was asked again)
    assert d["steps"] == 201 and link["lost_steps"] == d["steps_asked_again"]
    assert _summary(out)["theta_final"] == _summary(clean_out)["theta_final"]  # bit for bit
    assert "faults" not in json.loads((clean_out / "device.json").read_text())  # (retries there: load only)


def test_resume_sends_theta_again_and_continues_bit_for_bit(clean: tuple[Path, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmpc.hil import train_device
    from rlmpc.hil.device_training import DeviceInTheLoop

    cfg, clean_out = clean
    out = tmp_path / "resumed"
    program = str(clean_out / "device" / "firmware" / "controller.elf")

    class Interrupted(DeviceInTheLoop):
        def action(self, sol: Any) -> Any:
            if len(self.record.distance) == 150:  # Ctrl-C between checkpoints (step 100 and the end, 200)
                raise KeyboardInterrupt
            return super().action(sol)

    monkeypatch.setattr(train_device, "DeviceInTheLoop", Interrupted)
    args = ["train", str(cfg), "--out", str(out), "--quiet", "--no-plots", "--device", "mps2-an386",
            "--program", program]
    assert main(args) == 130
    monkeypatch.setattr(train_device, "DeviceInTheLoop", DeviceInTheLoop)
    assert main([*args, "--resume"]) == 0
    d = json.loads((out / "device.json").read_text())
    checkpoint_hash = d["resumed_from_theta_hash"]
    assert checkpoint_hash and checkpoint_hash != d["theta_hash"]  # the device's θ at step 100, then learned on
    assert d["steps"] == 201  # the record continues from the checkpoint's 101 device steps
    assert _summary(out)["theta_final"] == _summary(clean_out)["theta_final"]
