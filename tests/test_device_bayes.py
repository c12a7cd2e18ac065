"""Bayesian tuning through the device (issue #16, item 3): ``rlmpc train --device mps2-an386 --budget N``
with ``agent.type = "bayes"`` pushes each trial's θ, scores it with the device computing the actions
and holds the device's worst instructions per step to the budget; ``--budget`` without a device
is refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from lti_configs import lti_bayes_config

from rlmpc.cli import main
from rlmpc.codegen.mcu.qemu_bench import qemu_available

# θ0: back-offs and offset that keep the device's active-set solver busy (~305k instructions per step)
CONFIG = lti_bayes_config(trials=6, tune=["x_lb", "x_ub", "b"], eval_episodes=1, eval_steps=40, theta={
    "x_lb": [-0.1885, -0.4586], "x_ub": [0.083, 0.911], "b": [0.6717, -0.9842]})
BUDGET = 150_000  # instructions per step on mps2-an386


def test_budget_without_a_device_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text(CONFIG)
    assert main(["train", str(cfg), "--out", str(tmp_path / "o"), "--budget", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--budget" in err and "device" in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_bayes_through_mps2_an386_meets_the_budget_theta0_overruns(tmp_path: Path) -> None:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    cfg = tmp_path / "b.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "o"
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--device", "mps2-an386",
                 "--budget", str(BUDGET)]) == 0
    d = json.loads((out / "device.json").read_text())
    assert d["cost_unit"] == "instructions" and d["theta_pushes"] >= 8  # 6 trials + θ0 and the result again
    assert d["theta0"]["worst_step"] > BUDGET and d["theta0"]["meets_budget"] is False
    assert d["returned_theta"]["worst_step"] <= BUDGET and d["returned_theta"]["meets_budget"] is True
    with open(out / "trials.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[0]["feasible"] == "False"  # trial 1 is θ0
    for r in rows:  # every trial measured on the device, feasible exactly when within the budget
        assert (r["feasible"] == "True") == (float(r["worst_step"]) <= BUDGET)
    feasible = [r for r in rows if r["feasible"] == "True"]
    infeasible_cheaper = [r for r in rows if r["feasible"] == "False" and float(r["cost"]) < min(
        float(f["cost"]) for f in feasible)]
    summary = json.loads((out / "summary.json").read_text())
    assert int(summary["best_trial"]) == int(min(feasible, key=lambda r: float(r["cost"]))["trial"])
    # the run again on the device reproduces the returned trial (its worst step to one SysTick: 40 instructions)
    best = rows[int(summary["best_trial"]) - 1]  # trials count from 1, as the log does
    assert d["returned_theta"]["cost"] == pytest.approx(float(best["cost"]), rel=1e-12)
    assert abs(d["returned_theta"]["worst_step"] - float(best["worst_step"])) <= 40
    assert infeasible_cheaper  # (this seed: a cheaper trial over the budget was passed over)
    assert (out / "bayes.png").stat().st_size > 10_000
