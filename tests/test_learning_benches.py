"""The learning diagnostics under bench/: `learning_sensitivity.py --average-from F` (the greedy cost of θ
averaged over the end of a run) and `learning_fixed_points.py` (a kick to one θ component)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from lti_configs import lti_qlearning_config

from rlmpc.toolkit.registry import make_env
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.rl.evaluation import greedy_cost
from rlmpc.toolkit.rl.training import Trainer

BENCH = Path(__file__).resolve().parent.parent / "bench" / "learning_sensitivity.py"
FIXED_POINTS = BENCH.with_name("learning_fixed_points.py")


def _bench(path: Path = BENCH) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_average_from_scores_the_mean_of_the_last_steps(tmp_path: Path) -> None:
    config = tmp_path / "lti.toml"
    config.write_text(lti_qlearning_config(seed=1, steps=40, checkpoint_every=1000, eval_episodes=1, eval_steps=30))
    cost, theta, averaged = _bench().run(str(config), 1, "exact", {}, tmp_path / "runs", 0.5)
    assert theta.shape[0] == 40
    cfg = load_config(config)
    fns = Trainer(cfg, progress_bar=False, plots=False).mpc.fns

    def score(th: np.ndarray) -> float:
        return greedy_cost(fns, cfg.mpc.solver, th, lambda: make_env(cfg.env.name, cfg.env.params), 1, 30, 1000,
                           plant=cfg.env.name)

    assert averaged == score(theta[20:].mean(axis=0))  # the mean over steps 21..40, nothing else
    assert cost == score(theta[-1])
    assert averaged != cost  # θ still moves in the first 40 steps: the average is not the last iterate


@pytest.mark.parametrize("fraction", ["1", "-0.1"])
def test_average_from_outside_0_1_is_one_line(fraction: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", [str(BENCH), "examples/lti_qlearning.toml", "--average-from", fraction])
    with pytest.raises(SystemExit) as exc:
        _bench().main()
    assert exc.value.code == 2
    assert f"--average-from: expected a fraction 0 <= F < 1, got {float(fraction)}" in capsys.readouterr().err


def test_a_kick_moves_one_component_by_delta_after_update_k(tmp_path: Path) -> None:
    config = tmp_path / "lti.toml"
    config.write_text(lti_qlearning_config(seed=1, steps=30, checkpoint_every=1000, eval_episodes=1, eval_steps=5))
    bench = _bench(FIXED_POINTS)
    plain, _ = bench.run(str(config), 1, 30, 1, 0.0, 20, tmp_path / "plain")
    kicked, _ = bench.run(str(config), 1, 30, 1, 0.03, 20, tmp_path / "kicked")
    np.testing.assert_array_equal(kicked[:19], plain[:19])  # the same run up to update K = 20
    delta = kicked[19] - plain[19]
    assert delta[1] == pytest.approx(0.03, abs=1e-12)
    assert np.all(np.delete(delta, 1) == 0.0)
