"""Bayesian tuning of θ by closed-loop episodes (``agent.type = "bayes"``, issue #16 item 3)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from lti_configs import lti_bayes_config

from rlmpc.cli import main
from rlmpc.toolkit.rl.bayes import BayesTuner
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.theta_file import load_theta

TUNED = ["x_lb", "x_ub", "b"]


def _text(trials: int, tune: list[str] = TUNED) -> str:
    return lti_bayes_config(trials=trials, tune=tune, eval_episodes=5, eval_steps=100)


def _config(tmp_path: Path, trials: int) -> Path:
    path = tmp_path / "bayes.toml"
    path.write_text(_text(trials))
    return path


@pytest.mark.slow
def test_tuning_the_back_offs_and_offset_lowers_the_cost_of_theta0_by_80_percent(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, 60)), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["greedy_cost_final"] <= 0.2 * summary["greedy_cost_initial"], summary
    with open(out / "trials.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and float(rows[0]["cost"]) == summary["greedy_cost_initial"]
    assert rows[0]["trial"] == "1"  # θ0 is trial 1, as the log counts
    tf = load_theta(out / "theta.json")  # a θ file rlmpc export takes
    tuned = set(tf.fns.theta.names) - {"x_lb", "x_ub", "b"}
    theta0 = tf.fns.theta.unflatten(tf.fns.theta.default())
    assert all(np.array_equal(tf.fns.theta.unflatten(tf.values)[n], theta0[n]) for n in tuned)  # only these moved
    assert (out / "bayes.png").stat().st_size > 10_000


def test_a_budget_makes_overrunning_theta_infeasible(tmp_path: Path) -> None:
    """A stand-in measure of the worst step (it grows with the upper back-off x_ub[0]); θ0 overruns the
    budget, and the result is the best θ among those that do not."""
    config = load_config(_config(tmp_path, 16), output=tmp_path / "run")

    def worst_step(theta: np.ndarray) -> float:
        return 1000.0 + 1000.0 * float(theta[3])  # x_ub[0]: 0 at θ0

    budget = 900.0  # θ0 (x_ub[0] = 0) needs 1000: over
    summary = BayesTuner(config, progress_bar=False, worst_step=worst_step, budget=budget).run()
    with open(tmp_path / "run" / "trials.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["feasible"] == "False"
    feasible = [r for r in rows if r["feasible"] == "True"]
    assert feasible and all(float(r["worst_step"]) <= budget for r in feasible)
    best = min(feasible, key=lambda r: float(r["cost"]))
    assert summary["greedy_cost_final"] == float(best["cost"])
    theta = load_theta(tmp_path / "run" / "theta.json").values
    assert worst_step(theta) <= budget


def test_resume_keeps_the_trials_already_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, 6)), "--out", str(out), "--quiet"]) == 0
    first = (out / "trials.csv").read_text().splitlines()
    assert main(["train", str(_config(tmp_path, 6)), "--out", str(out), "--quiet"]) == 2  # not without --resume
    _config(tmp_path, 9)
    assert main(["train", str(tmp_path / "bayes.toml"), "--out", str(out), "--quiet", "--resume"]) == 0
    again = (out / "trials.csv").read_text().splitlines()
    assert len(again) == 10 and again[:7] == first
    # more trials continue the study; anything else that changes the study is refused before it runs
    (tmp_path / "bayes.toml").write_text(_text(9, [*TUNED, "f"]))
    assert main(["train", str(tmp_path / "bayes.toml"), "--out", str(out), "--quiet", "--resume"]) == 2
    assert "the study belongs to a different configuration" in capsys.readouterr().err
    assert main(["train", str(_config(tmp_path, 9)), "--out", str(out), "--quiet", "--resume", "--seed", "4"]) == 2
    assert "(changed: seed;" in capsys.readouterr().err
    assert (out / "trials.csv").read_text().splitlines() == again


@pytest.mark.parametrize(("agent", "message"), [
    ('type = "bayes"\n[agent.bayes]\ntune = ["nope"]', "agent.bayes.tune: 'nope' is not a parameter"),
    ('type = "bayes"\n[agent.bayes]\ntune = "x_lb"', "agent.bayes.tune: expected a non-empty list"),
    ('type = "bayes"\n[agent.bayes]\ntrials = 0', "agent.bayes.trials"),
    ('type = "lstd_q"\n[agent.bayes]\ntrials = 3', "agent.bayes: unknown key"),
])
def test_bad_bayes_settings_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], agent: str,
                                         message: str) -> None:
    text = _text(3).split("[agent]")[0] + "[agent]\n" + agent + "\n[evaluation]\nepisodes = 1\n"
    (tmp_path / "c.toml").write_text(text)
    assert main(["train", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
