"""``rlmpc sweep`` and ``rlmpc evaluate`` on a local Ray (issue #19): a small sweep whose trials are
ordinary training runs, a sweep killed in the middle and resumed, one-line errors for a bad search
space, and a batched evaluation with the same noise for every θ."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lti_configs import lti_qlearning_config

from rlmpc.cli import main
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.rl.training import Trainer
from rlmpc.toolkit.sweep.results import TIME_COLUMNS
from rlmpc.toolkit.sweep.space import expand, load_sweep
from rlmpc.toolkit.theta_file import load_theta

pytestmark = pytest.mark.slow


SWEEP = """\
[space]
"agent.optimizer.learning_rate" = { grid = [0.01, 0.05] }
seed = { grid = [1, 2] }
"""


def _files(tmp_path: Path, steps: int = 300, sweep: str = SWEEP) -> tuple[Path, Path]:
    config = lti_qlearning_config(seed=7, steps=steps, checkpoint_every=100, eval_episodes=2, eval_steps=40)
    (tmp_path / "lti.toml").write_text(config)
    (tmp_path / "sweep.toml").write_text(sweep)
    return tmp_path / "lti.toml", tmp_path / "sweep.toml"


def _table(out: Path) -> list[dict[str, str]]:
    with open(out / "sweep_results.csv", encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(fh)]


def test_a_sweep_runs_ordinary_training_runs_and_keeps_the_best(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config, sweep = _files(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(config), str(sweep), "--out", str(out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "4/4 trials finished, 0 failed" in printed and "[sweep] finished" in printed
    rows = _table(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    costs = [float(r["greedy_cost_final"]) for r in rows]
    assert costs == sorted(costs)  # sorted by the metric, best first
    best = json.loads((out / "sweep_results.json").read_text())["best"]
    assert best["trial"] == rows[0]["trial"]
    assert load_theta(out / "theta_best.json").values.size > 0  # a θ file rlmpc export takes
    assert (out / "sweep_curves.png").stat().st_size > 10_000
    # a trial is an ordinary training run: the same θ as rlmpc train with the same keys
    spec = load_sweep(sweep, config)
    trial = next(t for t in spec.trials if t.name == rows[-1]["trial"])
    alone = Trainer(load_config(config, output=tmp_path / "alone", overrides=trial.overrides),
                    progress_bar=False).run()
    swept = json.loads((out / "trials" / trial.name / "summary.json").read_text())
    assert swept["theta_final"] == alone["theta_final"]
    assert swept["greedy_cost_final"] == alone["greedy_cost_final"]


def test_the_trial_list_is_deterministic_and_covers_grid_times_samples() -> None:
    from rlmpc.toolkit.sweep.space import Dimension

    dims = (Dimension("seed", "grid", (1, 2, 3)), Dimension("agent.optimizer.learning_rate", "loguniform",
                                                             (1e-3, 1e-1)))
    first, second = expand(dims, samples=4, seed=5), expand(dims, samples=4, seed=5)
    assert first == second and len(first) == 12
    rates = [t.overrides["agent.optimizer.learning_rate"] for t in first]
    assert all(1e-3 <= r <= 1e-1 for r in rates) and len(set(rates)) == 12
    assert expand(dims, samples=4, seed=6) != first


def test_a_killed_sweep_resumes_running_only_the_unfinished_trials(tmp_path: Path) -> None:
    sweep_text = '[space]\nseed = { grid = [1, 2, 3, 4, 5, 6] }\n'
    config, sweep = _files(tmp_path, steps=600, sweep=sweep_text)
    full = tmp_path / "full"
    assert main(["sweep", str(config), str(sweep), "--out", str(full), "--workers", "2"]) == 0

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rlmpc", "sweep", str(config), str(sweep), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("trials/*/summary.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, at once
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/summary.json")}
    assert 2 <= len(finished) < 6, finished
    assert main(["sweep", str(config), str(sweep), "--out", str(out), "--workers", "2", "--resume"]) == 0
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/summary.json")}
    assert len(after) == 6
    assert all(after[name] == mtime for name, mtime in finished.items())  # not run again
    assert _table(out) == _table(full)  # the same table as the uninterrupted sweep (times aside)


@pytest.mark.parametrize(("space", "message"), [
    ('[space]\n"agent.lerning_rate" = { grid = [0.1] }\n', "agent.lerning_rate: unknown key"),
    ('[space]\n"agent.optimizer.learning_rate" = { uniform = [0.1, 0.1] }\n', "empty range"),
    ('[space]\n"agent.optimizer.learning_rate" = { loguniform = [0.0, 0.1] }\n', "expected 0 < low"),
    ('[space]\nseed = { grid = [] }\n', "empty list"),
    ('[space]\nseed = { grid = ["one"] }\n', "seed: expected an integer"),
    ('[space]\nseed = { range = [1, 2] }\n', "expected a table with one of"),
    ('[space]\nseed = { grid = 3 }\n', "expected a list"),
    ('[space]\n"agent.optimizer.learning_rate" = { grid = ["fast"] }\n', "learning_rate"),
    ('[space]\nseed = { grid = [1] }\n[sweep]\nsamples = 0\n', "sweep.samples"),
    ('[space]\nseed = { grid = [1] }\n[sweep]\nmetrc = "x"\n', "sweep.metrc: unknown key"),
    ('[spaces]\nseed = { grid = [1] }\n', "spaces: unknown table"),
    ("not toml at all [", "not valid TOML"),
])
def test_a_bad_search_space_is_one_line_before_ray_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          space: str, message: str) -> None:
    config, sweep = _files(tmp_path, sweep=space)
    assert main(["sweep", str(config), str(sweep), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(sweep) in err, err
    assert not (tmp_path / "o").exists()  # nothing written


def test_evaluate_compares_theta_files_on_the_same_noise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = _files(tmp_path, steps=400)
    learned = Trainer(load_config(config, output=tmp_path / "run"), progress_bar=False).run()
    assert learned["greedy_cost_final"] < learned["greedy_cost_initial"]
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    tf = load_theta(tmp_path / "run" / "theta.json")
    initial = theta_document("lti", {}, tf.fns, tf.fns.theta.default(), plant=tf.plant)
    save_theta(tmp_path / "theta0.json", initial)
    out = tmp_path / "ev"
    assert main(["evaluate", str(tmp_path / "theta0.json"), str(tmp_path / "run" / "theta.json"),
                 "--episodes", "12", "--steps", "40", "--workers", "2", "--out", str(out)]) == 0
    doc = json.loads((out / "evaluation.json").read_text())
    first, second = doc["results"]
    assert first["episodes"] == second["episodes"] == 12
    assert first["ci95_low"] < first["mean"] < first["ci95_high"]
    assert second["mean"] < first["mean"]  # the learned θ is better on the same episodes
    # the same noise for every θ: each episode's cost equals a local run of that episode
    from rlmpc.toolkit.sweep.evaluate import run_episodes

    local = run_episodes(str(tmp_path / "theta0.json"), None, [3], 40, 1000)[0]
    assert np.isclose(local.cost, doc["episodes"][str(tmp_path / "theta0.json")][3]["cost"], rtol=0, atol=0)
    assert (out / "evaluation.png").stat().st_size > 10_000
    assert "95 % CI" in capsys.readouterr().out


def test_asha_stops_unpromising_trials_on_the_periodic_evaluation(tmp_path: Path) -> None:
    config, sweep = _files(tmp_path, steps=1500, sweep=(
        '[space]\n"agent.optimizer.learning_rate" = { grid = [0.0005, 0.001, 0.002, 0.003, 0.01, 0.05] }\n'
        '[sweep]\nmetric = "evaluation_best"\nasha = { grace_period = 1, reduction_factor = 2 }\n'))
    config.write_text(config.read_text().replace("seed = 1000\n", "seed = 1000\nevery = 300\n"))
    out = tmp_path / "out"
    assert main(["sweep", str(config), str(sweep), "--out", str(out), "--workers", "2"]) == 0
    rows = _table(out)
    stopped = [r for r in rows if r["status"].startswith("stopped early at step")]
    assert stopped and all(float(r["evaluation_best"]) > 0 for r in stopped)
    assert rows[0]["status"] == "ok" and load_theta(out / "theta_best.json").values.size > 0


def test_a_configuration_drawn_twice_is_one_trial() -> None:
    from rlmpc.toolkit.sweep.space import Dimension

    trials = expand((Dimension("seed", "grid", (1, 2)), Dimension("agent.order", "choice", (1, 2))), 6, seed=0)
    configs = [tuple(sorted(t.overrides.items())) for t in trials]
    assert len(configs) == len(set(configs)) == 4  # 2 seeds × the 2 choices, each once
