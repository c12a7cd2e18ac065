"""``rlmpc train --resume`` of a Bayesian study (``agent.type = "bayes"``, progress in ``study.db``) checked
as a Q-learning run's (:mod:`rlmpc.hil.train_checks`), on the host board (the fast device): a resume
without the device options, on another board, or through a device for a workstation study is refused in
one line (exit 2) before anything is exported, built, started or connected; a study that ended has
nothing to do."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from lti_configs import lti_bayes_config
from test_device_train_checks import _nothing_started, _one_line, _Stderr

from rlmpc.cli import main

CONFIG = lti_bayes_config(trials=3, tune=["b"], eval_episodes=1, eval_steps=10, speed_mode=False)


def _not_continued(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is exported, built or started, and the study is not continued."""
    from rlmpc.hil import train_device
    from rlmpc.toolkit.rl.bayes import BayesTuner

    def started(*_: Any, **__: Any) -> Any:
        raise AssertionError("the study was continued (or a device exported, built or started)")

    _nothing_started(monkeypatch)
    monkeypatch.setattr(train_device, "export_problem", started)
    monkeypatch.setattr(BayesTuner, "run", started)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A study through the host board interrupted (Ctrl-C) in its second trial, and the command its
    hint says continues it."""
    from rlmpc.hil import device_bayes

    root = tmp_path_factory.mktemp("bayes_resume")
    cfg = root / "bayes.toml"
    cfg.write_text(CONFIG)

    class Interrupted(device_bayes.DeviceScorer):
        def measure(self, theta: Any, fresh: bool = False) -> Any:
            if len(self.trials) == 1 and not fresh and (self._last is None or self._last[0] != theta.tobytes()):
                raise KeyboardInterrupt
            return super().measure(theta, fresh)

    with pytest.MonkeyPatch.context() as mp, _Stderr() as err:
        mp.setattr(device_bayes, "DeviceScorer", Interrupted)
        assert main(["train", str(cfg), "--out", str(root / "run"), "--quiet", "--device", "host"]) == 130
    return root / "run", err.text.split("`")[1]


def test_a_study_resumed_without_its_device_or_on_another_board_is_refused(
        interrupted: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    run, hint = interrupted
    assert "--device host" in hint and hint.endswith("--resume"), hint
    words = shlex.split(hint)[1:]  # (without `rlmpc`)
    _not_continued(monkeypatch)
    before = (run / "study.db").stat().st_mtime_ns
    assert main([w for w in words if w not in ("--device", "host")]) == 2
    line = _one_line(capsys)
    assert f"--resume: {run / 'study.db'} is of a run through host; resume it through the device: " \
           "add --device host" in line, line
    assert main([w if w != "host" else "stm32f405" for w in words]) == 2
    line = _one_line(capsys)
    assert "through host (cost per step in microseconds), not stm32f405; resume it with --device host" in line, line
    assert (run / "study.db").stat().st_mtime_ns == before  # nothing written


def test_the_hint_resumes_the_study_and_a_second_resume_has_nothing_to_do(
        interrupted: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    run, hint = interrupted
    assert main(shlex.split(hint)[1:]) == 0
    with open(run / "trials.csv", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 2  # (of 3: the interrupted trial counts as failed)
    capsys.readouterr()
    _not_continued(monkeypatch)
    for keep in (True, False):  # (ended: whichever device options)
        words = [w for w in shlex.split(hint)[1:] if keep or w not in ("--device", "host")]
        assert main(words) == 0
        assert "nothing to resume" in capsys.readouterr().out


def test_a_workstation_study_is_not_resumed_through_a_device(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmpc.toolkit.rl.bayes import BayesTuner

    cfg = tmp_path / "bayes.toml"
    cfg.write_text(CONFIG)

    def interrupted(*_: Any) -> float:
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(BayesTuner, "score", interrupted)
        assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 130
    capsys.readouterr()
    _not_continued(monkeypatch)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--device", "host", "--resume"]) == 2
    assert "is of a run on the workstation, not through a device; resume it without --device" in _one_line(capsys)


def test_a_study_written_before_the_device_was_recorded_takes_it_from_device_json(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from rlmpc.hil.train_checks import resume_plan

    args = SimpleNamespace(target=None, port=None)
    study = SimpleNamespace(read_checkpoint=lambda: {"trials": 1, "extra": None}, finished=lambda _: False,
                            checkpoint_path=tmp_path / "study.db", out=tmp_path)
    assert resume_plan(study, args) == (None, None)  # (no device.json, no OUT/device: the workstation)
    (tmp_path / "device").mkdir()
    with pytest.raises(ValueError, match=r"is of a run through a device; resume it through the device: add "
                                         r"--device BOARD \(or --port URL --bundle DIR\)$"):
        resume_plan(study, args)
    (tmp_path / "device.json").write_text(json.dumps({"board": "mps2-an386", "cost_unit": "instructions"}))
    with pytest.raises(ValueError, match=r"through mps2-an386 \(cost per step in instructions\), not host"):
        resume_plan(study, SimpleNamespace(target="host", port=None))
