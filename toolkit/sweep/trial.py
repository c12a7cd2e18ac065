"""One trial of a sweep: an ordinary training run in ``OUT/trials/<trial name>/`` (same outputs, same
checkpoint as ``rlmpc train``).  A trial that finished in an interrupted sweep is not run again; one
that was cut short continues from its own checkpoint (bit for bit, as ``rlmpc train --resume``)."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlmpc.toolkit.sweep.space import Trial

TRIAL_FILE = "trial.json"
ERROR_FILE = "error.txt"
STOPPED_FILE = "stopped.json"  # written when ASHA stopped the trial early (its last evaluation)


def trial_dir(out: Path, trial: Trial) -> Path:
    return out / "trials" / trial.name


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def metrics_of(summary: dict[str, Any], trial: Trial) -> dict[str, Any]:
    """What a trial reports to Tune and to the table."""
    final = float(summary["greedy_cost_final"])
    return {"trial": trial.name, "greedy_cost_initial": float(summary["greedy_cost_initial"]),
            "greedy_cost_final": final, "greedy_cost_ratio": float(summary["greedy_cost_ratio"]),
            "evaluation_best": min(final, float(summary.get("greedy_cost_best", final))),
            "mpc_failures": int(summary["mpc_failures"]["V"]) + int(summary["mpc_failures"]["Q"]),
            "train_time_s": float(summary["wall_time_s"]), "steps": int(summary["steps"])}


def run_trial(config: Path, trial: Trial, out: Path,
              on_evaluation: Callable[[dict[str, Any]], None] | None = None,
              where: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or finish, or reuse) one trial; its metrics.  Exceptions are recorded in the trial's
    ``error.txt`` and raised again (Ray Tune then retries the trial).  ``where``: the node and
    process that ran it, recorded in ``trial.json``."""
    from rlmpc.toolkit.registry import load_plugins
    from rlmpc.toolkit.rl.config import load_config
    from rlmpc.toolkit.rl.training import Trainer

    folder = trial_dir(out, trial)
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "summary.json"
    start = time.perf_counter()
    if summary_path.is_file():  # finished before the sweep was interrupted: not run again
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        return metrics_of(summary, trial)
    (folder / ERROR_FILE).unlink(missing_ok=True)
    try:
        load_plugins()
        cfg = load_config(config, output=folder, overrides=trial.overrides)
        trainer = Trainer(cfg, progress_bar=False)
        if on_evaluation is not None and hasattr(trainer, "on_evaluation"):
            trainer.on_evaluation = on_evaluation
        summary = trainer.run(resume=trainer.checkpoint_path.is_file())
    except BaseException as exc:
        (folder / ERROR_FILE).write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
                                         encoding="utf-8")
        raise
    metrics = metrics_of(summary, trial)
    _write_json(folder / TRIAL_FILE, {"index": trial.index, "name": trial.name, "overrides": trial.overrides,
                                      "trial_time_s": time.perf_counter() - start, "metrics": metrics,
                                      "ran_on": where or {}})
    return metrics
