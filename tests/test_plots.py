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


def test_the_agreement_goal_applies_only_to_a_converging_device_solver() -> None:
    from rlmpc.hil.device_panel import solver_converges

    assert solver_converges({"solver": {"kind": "condensed QP (linear MPC, matrices precomputed)"}}) is True
    assert solver_converges({"solver": {"kind": "structured QP (interior point + Riccati; linear MPC)"}}) is True
    assert solver_converges({"solver": {"kind": "real-time iteration (nonlinear MPC, Gauss-Newton, …)"}}) is False
    assert solver_converges({"solver": {"kind": "structured QP (interior point + Riccati; nonlinear MPC: one "
                                                 "Gauss-Newton QP per step at the last plan shifted)"}}) is False
    assert solver_converges({"solver": {"nlp_solver": "SQP_RTI", "nlp_solver_resolved": "SQP_RTI"}}) is False
    assert solver_converges({"solver": {"nlp_solver": "auto", "nlp_solver_resolved": "SQP_RTI"}}) is True
    assert solver_converges({}) is None


def test_evaluate_names_files_apart_and_pairs_episodes_by_seed() -> None:
    from rlmpc.toolkit.sweep.evaluate import Episode, ThetaEvaluation, paired_differences, short_names

    assert short_names(["th0.json", "runs/pm_ws2/theta.json"]) == ["th0.json", "pm_ws2/theta.json"]
    assert short_names(["a/x/theta.json", "b/x/theta.json"]) == ["a/x/theta.json", "b/x/theta.json"]
    ref = ThetaEvaluation("a", [Episode(i, 10.0 + i, 0.0, 0, 5) for i in range(4)])
    other = ThetaEvaluation("b", [Episode(i, 10.1 + i, 0.0, 0, 5) for i in (3, 1, 0)])
    np.testing.assert_allclose(paired_differences(ref, other), [0.1, 0.1, 0.1])
