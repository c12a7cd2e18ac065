"""`rlmpc demo` (what `make demo` runs) goes from nothing to a HIL verdict: the whole journey in
one test, so that a change to any step's Python interface cannot break the main command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmpc.cli import main


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "HIL mps2-an386: PASS" in text and "PASS linux-aarch64" in text
    summary = json.loads((out / "lti_qlearning" / "summary.json").read_text())
    assert summary["greedy_cost_ratio"] <= 0.10
    report = json.loads((out / "hil" / "hil.json").read_text())
    assert report["verdict"] == "PASS" and report["board"] == "mps2-an386"
    for name in ("cartpole_closed_loop.png", "lti_qlearning/learning_curves.png", "hil/summary.md"):
        assert (out / name).is_file(), name
