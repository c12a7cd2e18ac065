"""Learning with a safety net: periodic greedy evaluation, the best θ, the divergence guard, the exit code.

The perturbed task: the LTI plant with its own A, B but noise pushing both states up
(e₁ ~ U(0, 0.15), e₂ ~ U(0, 0.05)) instead of e₁ ~ U(−0.1, 0); Q-learning at the example's
settings then diverges within a few hundred steps (greedy cost 5.2 → 299 at step 500).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmpc.cli import TRAIN_WORSE_EXIT, main
from rlmpc.toolkit.rl.config import ConfigError, load_config
from rlmpc.toolkit.rl.evaluation import EvaluationHistory, Guard
from rlmpc.toolkit.rl.training import Trainer
from rlmpc.toolkit.theta_file import load_theta

PERTURBED = """seed = 69
episodes = 1
steps = {steps}
checkpoint_every = 1000
[env]
name = "LtiGrosZanon"
params = {{ noise = [[0.0, 0.15], [0.0, 0.05]] }}
[mpc]
problem = "lti"
[agent]
type = "lstd_q"
order = 2
optimizer = {{ type = "newton", learning_rate = 5e-2 }}
[evaluation]
episodes = 2
steps = 60
every = {every}
{guard}
"""


def _config(tmp_path: Path, name: str, steps: int = 750, every: int = 250, guard: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(PERTURBED.format(steps=steps, every=every, guard=guard))
    return path


def _train(path: Path, out: Path) -> dict:  # type: ignore[type-arg]
    return Trainer(load_config(path, output=out), progress_bar=False).run()


def test_without_guard_the_run_ends_worse_and_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(_config(tmp_path, "plain")), "--out", str(tmp_path / "run"), "--quiet"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["learned_worse_than_initial"] and summary["theta_json_worse_than_initial"]
    assert code == TRAIN_WORSE_EXIT and last.startswith("WORSE: the learned θ")
    # the best θ is kept, is better than θ0 and is a θ file like any other
    best = load_theta(tmp_path / "run" / "theta_best.json")
    assert best.problem == "lti" and summary["greedy_cost_best"] < summary["greedy_cost_initial"]
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert [r["step"] for r in evaluation["records"]] == [0, 250, 500, 750]
    assert (tmp_path / "run" / "evaluation.png").stat().st_size > 0


@pytest.mark.parametrize("action", ["rollback", "stop"])
def test_guard_never_ends_worse_than_theta0(tmp_path: Path, action: str) -> None:
    guard = f'guard = {{ worse_than_initial = 2.0, action = "{action}" }}'
    summary = _train(_config(tmp_path, action, guard=guard), tmp_path / action)
    assert summary["guard_events"] and summary["guard_events"][0]["action"] == action
    assert not summary["theta_json_worse_than_initial"]
    # theta.json holds a θ that scores no worse than θ0 on the evaluation's noise
    evaluation = json.loads((tmp_path / action / "evaluation.json").read_text())
    written = load_theta(tmp_path / action / "theta.json")
    costs = {tuple(r["theta"]): r["cost"] for r in evaluation["records"]}
    assert costs[tuple(float(v) for v in written.values)] <= summary["greedy_cost_initial"]
    if action == "stop":
        assert summary["stopped"] and summary["steps"] == 500


def test_same_noise_each_evaluation() -> None:
    """Scores depend on θ only: the same θ scores the same; the best θ and guard follow the scores."""
    hist = EvaluationHistory(Guard(2.0, "rollback"))
    scores = iter([1.0, 0.5, 2.5, 0.7])
    for step in range(4):
        verdict = hist.evaluate(lambda th: next(scores), [float(step)], step * 10)
    assert hist.best_cost == 0.5 and hist.best_step == 10 and hist.best_theta == [1.0]
    assert [r["guard"] for r in hist.records] == [None, None, "rollback", None] and not verdict.best


@pytest.mark.parametrize("text, message", [
    ('guard = { worse_than_initial = 2.0 }', "evaluation.guard: needs evaluation.every"),
    ('every = 10\nguard = { action = "panic" }', "evaluation.guard.action: expected one of"),
    ('every = 10\nguard = { worse_than_initial = 0.5 }', "worse_than_initial: expected a number >= 1"),
    ('every = 10\nguard = { factor = 2 }', "evaluation.guard.factor: unknown key"),
    ('every = true', "evaluation.every: expected an integer"),
])
def test_guard_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(PERTURBED.format(steps=10, every=0, guard="").replace("every = 0\n", text + "\n"))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(path)


def test_no_plots_then_rlmpc_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    config = _config(tmp_path, "lazy", steps=10, every=5)
    assert main(["train", str(config), "--out", str(run), "--quiet", "--no-plots"]) in (0, TRAIN_WORSE_EXIT)
    assert not (run / "learning_curves.png").exists() and not (run / "evaluation.png").exists()
    assert "rlmpc plot" in capsys.readouterr().out
    assert main(["plot", str(run)]) == 0
    assert (run / "learning_curves.png").stat().st_size > 0 and (run / "evaluation.png").stat().st_size > 0
    assert main(["plot", str(tmp_path)]) == 2  # not a run: one line, exit 2


def test_periodic_evaluations_reach_the_hook(tmp_path: Path) -> None:
    """What a sweep trial reports to Ray Tune: every periodic evaluation, in order, as in evaluation.json."""
    trainer = Trainer(load_config(_config(tmp_path, "hook", steps=20, every=5), output=tmp_path / "r"),
                      progress_bar=False, plots=False)
    seen: list[dict] = []  # type: ignore[type-arg]
    trainer.on_evaluation = seen.append
    trainer.run()
    records = json.loads((tmp_path / "r" / "evaluation.json").read_text())["records"]
    assert [p["step"] for p in seen] == [5, 10, 15] and seen == records[1:-1]


def test_the_verdict_tells_close_costs_apart_and_warns_when_nothing_was_learned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlmpc.cli import TRAIN_WORSE_EXIT, _learning_verdict

    summary = {"learned_worse_than_initial": True, "theta_json_worse_than_initial": True, "guard_events": [],
               "stopped": None, "greedy_cost_initial": 3.20625, "greedy_cost_final": 3.206333,
               "greedy_cost_best": 3.20625, "best_step": 0, "updates": 0, "steps": 100,
               "mpc_failures": {"V": 101, "Q": 100, "messages": {"QP solver failed": 201}}}
    assert _learning_verdict(summary, tmp_path) == TRAIN_WORSE_EXIT
    out = capsys.readouterr().out
    import re

    shown = re.search(r"the learned θ \((\S+)\) is worse than θ0 \((\S+)\)", out)
    assert shown and shown[1] != shown[2] and shown[1].startswith("3.206")  # (4 digits: 3.206 twice)
    assert out.startswith("warning: 0 θ updates in 100 steps; 201 MPC solves failed")


def test_a_tiny_change_is_not_shown_as_zero_percent() -> None:
    from rlmpc.toolkit.rl.evaluation import _percent

    assert _percent(0.0014) == "+0.0014" and _percent(-12.345) == "-12.35" and _percent(0.0) == "+0.00"
