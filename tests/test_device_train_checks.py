"""``rlmpc train --device/--port --resume``: what a new user tripped over (issue #16), refused in one line
(exit 2) before anything is exported, built, started or connected, on the host board (the fast device):
a resume without the device options (or with them for a workstation run), on another board, with another
seed; a bad ``--program`` or ``--bundle``; and a resume of a run that ended has nothing to do."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from lti_configs import lti_qlearning_config

from rlmpc.cli import main

CONFIG = lti_qlearning_config(seed=3, steps=90, checkpoint_every=30)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _nothing_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exporting, building or starting a device fails the test."""
    from rlmpc.hil import cli as hil_cli
    from rlmpc.hil import train_device

    def started(*_: Any, **__: Any) -> Any:
        raise AssertionError("a device was exported, built or started")

    monkeypatch.setattr(train_device, "export_for_device", started)
    monkeypatch.setattr(hil_cli, "connected_device", started)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The config, a run through the host board interrupted (Ctrl-C) at step 45 (checkpoint at step 30),
    and the command its hint says continues it."""
    from rlmpc.hil import train_device
    from rlmpc.hil.device_training import DeviceInTheLoop

    root = tmp_path_factory.mktemp("train_checks")
    cfg = root / "lti.toml"
    cfg.write_text(CONFIG)

    class Interrupted(DeviceInTheLoop):
        def action(self, sol: Any) -> Any:
            if len(self.record.distance) == 45:
                raise KeyboardInterrupt
            return super().action(sol)

    with pytest.MonkeyPatch.context() as mp, _Stderr() as err:
        mp.setattr(train_device, "DeviceInTheLoop", Interrupted)
        assert main(["train", str(cfg), "--out", str(root / "run"), "--quiet", "--no-plots",
                     "--device", "host"]) == 130
    hint = err.text.split("`")[1]
    return cfg, root / "run", hint


class _Stderr:
    """sys.stderr captured in a module fixture (where capsys cannot be used)."""

    def __enter__(self) -> _Stderr:
        import io
        import sys

        self._old, self._buf = sys.stderr, io.StringIO()
        sys.stderr = self._buf
        return self

    def __exit__(self, *_: object) -> None:
        import sys

        sys.stderr = self._old
        self.text = self._buf.getvalue()


def test_the_ctrl_c_hint_repeats_the_device_and_a_resume_without_it_is_refused(
        interrupted: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, run, hint = interrupted
    assert "--device host" in hint and hint.endswith("--resume"), hint
    words = shlex.split(hint)[1:]  # (without `rlmpc`)
    without = [w for w in words if w not in ("--device", "host")]
    _nothing_started(monkeypatch)
    before = (run / "checkpoint.pkl").stat().st_mtime_ns
    assert main([*without, "--quiet"]) == 2
    line = _one_line(capsys)
    assert "is of a run through host" in line and "add --device host" in line, line
    # on another board (another cost unit: the host program counts microseconds), with another seed
    assert main([w if w != "host" else "stm32f405" for w in words]) == 2
    line = _one_line(capsys)
    assert "through host (cost per step in microseconds), not stm32f405" in line, line
    assert main([*words, "--seed", "4"]) == 2
    assert "changed: seed" in _one_line(capsys)
    assert (run / "checkpoint.pkl").stat().st_mtime_ns == before  # nothing written


def test_the_hint_resumes_and_a_second_resume_has_nothing_to_do(
        interrupted: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, run, hint = interrupted
    assert main([*shlex.split(hint)[1:]]) in (0, 3)  # (3: the short run's θ is worse than θ0)
    device = json.loads((run / "device.json").read_text())
    assert device["board"] == "host" and device["steps"] == 91 and device["resumed_from_theta_hash"]
    capsys.readouterr()
    _nothing_started(monkeypatch)
    from rlmpc.toolkit.rl import training

    def trained(*_: Any, **__: Any) -> Any:
        raise AssertionError("the run was continued")

    monkeypatch.setattr(training.Trainer, "run", trained)
    for extra in ([], ["--device", "host"]):  # (ended: whichever options)
        words = [w for w in shlex.split(hint)[1:] if w not in ("--device", "host")] + extra
        assert main(words) == 0
        assert "nothing to resume" in capsys.readouterr().out


def test_a_workstation_checkpoint_is_not_resumed_through_a_device(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmpc.toolkit.rl.config import load_config
    from rlmpc.toolkit.rl.training import Trainer

    cfg = tmp_path / "lti.toml"
    cfg.write_text(CONFIG)
    from rlmpc.toolkit.output_folder import claim_output_folder

    trainer = Trainer(load_config(cfg, output=tmp_path / "run"), progress_bar=False)
    claim_output_folder(tmp_path / "run", "train")  # (as a workstation run interrupted after a checkpoint)
    trainer.save_checkpoint()
    (tmp_path / "manifest.json").write_text(json.dumps({"problem": {"name": "lti",
                                                                    "hash": trainer.mpc.fns.problem_hash}}))
    _nothing_started(monkeypatch)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--device", "host", "--resume"]) == 2
    assert "is of a run on the workstation, not through a device; resume it without --device" in _one_line(capsys)
    for args in (["--device", "host"], ["--port", "socket://127.0.0.1:9", "--bundle", str(tmp_path)]):
        assert main(["train", str(cfg), "--out", str(tmp_path / "new"), *args, "--resume"]) == 2
        assert "--resume: no checkpoint at" in _one_line(capsys)
    assert not (tmp_path / "new").exists()


def test_a_bad_program_or_bundle_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "lti.toml"
    cfg.write_text(CONFIG)
    _nothing_started(monkeypatch)
    out = tmp_path / "run"
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    cases = [(["--device", "host", "--program", str(firmware)],
              f"--program: {firmware}: is a folder; expected the firmware file (e.g. {firmware / 'controller'})"),
             (["--device", "mps2-an386", "--program", str(firmware)], f"(e.g. {firmware / 'controller.elf'})"),
             (["--device", "host", "--program", str(tmp_path / "missing")], "no such firmware program"),
             (["--port", "socket://127.0.0.1:9", "--program", str(firmware), "--bundle", str(bundle)],
              "--program: only with --device"),
             (["--port", "socket://127.0.0.1:9", "--bundle", str(tmp_path / "missing")],
              "--bundle: " + str(tmp_path / "missing") + ": no such folder"),
             (["--port", "socket://127.0.0.1:9", "--bundle", str(bundle)],
              f"--bundle: {bundle / 'manifest.json'}: no such file")]
    for args, message in cases:
        assert main(["train", str(cfg), "--out", str(out), *args]) == 2, args
        assert message in _one_line(capsys), (args, message)
    (bundle / "manifest.json").write_text(json.dumps({"problem": {"name": "cartpole", "hash": "ab" * 32}}))
    assert main(["train", str(cfg), "--out", str(out), "--port", "socket://127.0.0.1:9", "--bundle", str(bundle)]) == 2
    assert f"--bundle: {bundle} is a bundle of problem 'cartpole' (hash abababababab…), not of {cfg}'s 'lti'" \
        in _one_line(capsys)
    assert not out.exists()


def test_an_unfinished_folder_names_resume_and_one_without_a_checkpoint_is_reused(tmp_path: Path) -> None:
    from rlmpc.toolkit.output_folder import MARKER, claim_output_folder, read_marker

    out = tmp_path / "run"
    claim_output_folder(out, "train", progress=("checkpoint.pkl",))
    (out / "device").mkdir()  # an export before the run failed: nothing to continue, the folder is reused
    assert claim_output_folder(out, "train", progress=("checkpoint.pkl",)) == out
    (out / "checkpoint.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"marker says 'running'\); continue it with --resume \(checkpoint.pkl "
                                         "is there\\), remove the folder or choose another"):
        claim_output_folder(out, "train", progress=("checkpoint.pkl",))
    assert claim_output_folder(out, "train", progress=("checkpoint.pkl",), resume=True) == out
    assert read_marker(out) == ("train", "running") and (out / MARKER).is_file()


def test_a_device_of_another_cost_unit_is_refused_after_connecting(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rlmpc.codegen.protocol_spec import CostUnit
    from rlmpc.hil.train_checks import check_same_device

    saved = {"board": "mps2-an386", "cost_unit": "instructions"}
    check_same_device(saved, SimpleNamespace(board_name="mps2-an386", cost_unit=CostUnit.INSTRUCTIONS), tmp_path)
    with pytest.raises(ValueError, match=r"through mps2-an386 \(cost per step in instructions\); the device is "
                                         r"mps2-an386 \(cost per step in cycles\)"):
        check_same_device(saved, SimpleNamespace(board_name="mps2-an386", cost_unit=CostUnit.CYCLES), tmp_path)


def test_an_unknown_plant_or_problem_suggests_a_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLMPC_PLUGINS", raising=False)
    cfg = tmp_path / "u.toml"
    cfg.write_text(CONFIG.replace('"LtiGrosZanon"', '"UnicycleGain"'))
    assert main(["train", str(cfg), "--out", str(tmp_path / "u")]) == 2
    line = _one_line(capsys)
    assert "unknown environment 'UnicycleGain'" in line and "set RLMPC_PLUGINS=module" in line, line
    assert "Your own problem and plant" in line
    cfg.write_text(CONFIG.replace('problem = "lti"', 'problem = "unicycle"'))
    assert main(["train", str(cfg), "--out", str(tmp_path / "u")]) == 2
    assert "unknown problem 'unicycle'" in (line := _one_line(capsys)) and "RLMPC_PLUGINS" in line


def test_a_checkpoint_written_before_boards_were_recorded_takes_the_board_from_device_json(tmp_path: Path) -> None:
    from rlmpc.hil.train_checks import _device_of

    payload = {"extra": {"device": {"theta_hash": "ab", "record": {}}}}
    assert _device_of(payload, tmp_path) == ({"theta_hash": "ab", "record": {}}, {})  # (no device.json)
    (tmp_path / "device.json").write_text(json.dumps({"board": "mps2-an386", "cost_unit": "instructions"}))
    device, link = _device_of(payload, tmp_path)
    assert device is not None and link == {}
    assert (device["board"], device["cost_unit"]) == ("mps2-an386", "instructions")
