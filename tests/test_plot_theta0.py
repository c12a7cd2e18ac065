"""The learning curves' θ legend starts from θ₀ (θ before the first update), not θ after step 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rlmpc.toolkit.rl.outputs import theta_legend, theta_scale, write_plots


def _run_folder(tmp_path: Path, with_theta0: bool) -> Path:
    theta0 = np.array([1.0, 0.2])
    theta = theta0 + np.outer(np.arange(1, 101), [-0.002, 1e-6])  # θ after each step: step 0 already moved
    extra = {"theta0": theta0} if with_theta0 else {}
    np.savez_compressed(tmp_path / "history.npz", step_cost=np.ones(100), td_error=np.zeros(100), theta=theta,
                        episode_cost=np.array([100.0]), theta_labels=np.array(["gain", "drag"]), **extra)
    records = [{"step": 0, "kind": "initial", "cost": 2.0, "best": True, "guard": None, "theta": theta0.tolist()},
               {"step": 100, "kind": "final", "cost": 1.9, "best": True, "guard": None, "theta": theta[-1].tolist()}]
    doc = {"guard": None, "best_theta": theta[-1].tolist(), "best_cost": 1.9, "best_step": 100, "records": records}
    (tmp_path / "evaluation.json").write_text(json.dumps(doc), encoding="utf-8")
    return tmp_path


def test_theta_legend_names_theta0_and_an_honest_change(tmp_path: Path) -> None:
    theta0, final = np.array([1.0, 0.2, 0.0]), np.array([0.8, 0.200001, 0.5])
    scale, how = theta_scale(theta0, np.array([0.0, 0.0, -1.0]), np.array([2.0, 1.0, 1.0]))
    text = theta_legend(["gain", "drag", "b"], theta0, final, how)
    assert text[0] == "gain (1→0.8, -20 %)"
    assert text[1].startswith("drag (0.2→0.2, +0.0005")  # a tiny change reads tiny
    assert text[2] == "b (0→0.5) [ub − lb]" and scale[2] == 2.0


def test_plots_of_a_run_start_from_theta0(tmp_path: Path, monkeypatch) -> None:
    seen: list[list[str]] = []
    import rlmpc.toolkit.rl.outputs as outputs

    def spy(labels, theta0, final, how):  # type: ignore[no-untyped-def]
        seen.append(legend := real(labels, theta0, final, how))
        return legend

    real = outputs.theta_legend
    monkeypatch.setattr(outputs, "theta_legend", spy)
    for with_theta0 in (True, False):  # (False: a run saved before history.npz held θ₀: evaluation.json's)
        sub = tmp_path / str(with_theta0)
        sub.mkdir()
        write_plots(_run_folder(sub, with_theta0))
        assert seen[-1][0].startswith("gain (1→0.8, -20 %)"), seen[-1]
