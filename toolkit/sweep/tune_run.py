"""``rlmpc sweep``: the trials of a sweep file run as Ray Tune trials.

Tune schedules them (one CPU each, actors reused so a worker imports the toolkit once), retries a
failed trial ``max_retries`` times, stops unpromising ones early with ASHA on the periodic evaluation
(``[sweep] asha`` with ``[evaluation] every`` in the training configuration) and keeps the
experiment state in ``OUT/ray`` so that ``--resume`` runs only the trials that had not finished.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlmpc.toolkit.sweep.ray_session import start_ray
from rlmpc.toolkit.sweep.results import best_row, collect, write_results
from rlmpc.toolkit.sweep.space import SweepSpec
from rlmpc.toolkit.sweep.trial import STOPPED_FILE, run_trial, trial_dir

EXPERIMENT = "sweep"


def _trainable(config: dict[str, Any], *, spec: SweepSpec, base: Path, out: Path) -> None:
    from ray import tune

    trial = spec.trials[int(config["trial"])]

    def on_evaluation(point: dict[str, Any]) -> None:  # periodic evaluation → ASHA
        tune.report({"evaluation_cost": float(point["cost"]), "step": int(point["step"]), "trial": trial.name,
                     "done": False})

    import os

    import ray

    ctx = ray.get_runtime_context()
    node: dict[str, Any] = next((n for n in ray.nodes() if n.get("NodeID") == ctx.get_node_id()), {})
    where = {"node_id": ctx.get_node_id(), "pid": os.getpid(),
             "node_resources": {k: v for k, v in node.get("Resources", {}).items()
                                if not k.startswith("node:") and "memory" not in k}}
    metrics = run_trial(base, trial, out, on_evaluation if spec.asha else None, where)
    tune.report({**metrics, "evaluation_cost": metrics["greedy_cost_final"], "done": True})


def _progress_callback(spec: SweepSpec, out: Path, say: Callable[[str], None]) -> Any:
    from ray import tune

    class Progress(tune.Callback):
        """One console line per started, finished or failed trial, with the best so far."""

        def __init__(self) -> None:
            self.running: set[str] = set()
            self.failed = 0

        def _line(self, what: str) -> None:
            rows = collect(spec, out)  # (the trial folders: trials finished before a --resume count too)
            best = best_row(rows, spec.metric)
            done = sum(r.status == "ok" for r in rows)
            tail = f"; best {spec.metric} {best.metrics[spec.metric]:.4g} ({best.trial.name})" if best else ""
            say(f"[sweep] {what}: {done}/{len(spec.trials)} finished, {len(self.running)} running, "
                f"{self.failed} failed{tail}")

        def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.running.add(trial.trial_id)
            self._line(f"started {spec.trials[int(trial.config['trial'])].name}")

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.running.discard(trial.trial_id)
            ours = spec.trials[int(trial.config["trial"])]
            folder = trial_dir(out, ours)
            last = trial.last_result or {}
            if not (folder / "summary.json").is_file() and "evaluation_cost" in last:  # ASHA stopped it
                (folder / STOPPED_FILE).write_text(json.dumps({"step": last.get("step"),
                                                               "cost": last["evaluation_cost"]}) + "\n")
                self._line(f"stopped {ours.name} early (ASHA)")
                return
            self._line(f"finished {ours.name}")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.running.discard(trial.trial_id)
            self.failed += 1
            self._line(f"FAILED {spec.trials[int(trial.config['trial'])].name}")

    return Progress()


def run_sweep(spec: SweepSpec, base: Path, out: Path, *, workers: int | None, address: str | None,
              resume: bool, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the sweep; write and return its results (see :mod:`.results`)."""
    ray = start_ray(address, workers)
    from ray import tune

    for name in ("ray.tune", "ray.train", "ray.air"):  # our own console lines and resume hint only
        logging.getLogger(name).setLevel(logging.ERROR)

    storage = (out / "ray").resolve()
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, spec=spec, base=base.resolve(), out=out.resolve()), {"cpu": 1})
    scheduler = None
    if spec.asha:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(metric="evaluation_cost", mode="min", max_t=10_000,
                                  grace_period=int(spec.asha["grace_period"]),
                                  reduction_factor=float(spec.asha["reduction_factor"]))
    run_config = tune.RunConfig(
        name=EXPERIMENT, storage_path=str(storage), verbose=0,
        failure_config=tune.FailureConfig(max_failures=spec.max_retries),
        callbacks=[_progress_callback(spec, out, say)])
    started = time.perf_counter()
    if resume:
        if not (storage / EXPERIMENT).is_dir():
            raise ValueError(f"--resume: no sweep state in {storage / EXPERIMENT}")
        tuner = tune.Tuner.restore(str(storage / EXPERIMENT), trainable, resume_unfinished=True,
                                   restart_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search([t.index for t in spec.trials])},
            tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True,
                                        max_concurrent_trials=workers,
                                        trial_dirname_creator=lambda t: spec.trials[int(t.config["trial"])].name),
            run_config=run_config)
    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    summary = write_results(spec, out, collect(spec, out))
    summary["wall_time_s"] = time.perf_counter() - started
    summary["workers"] = int(ray.cluster_resources().get("CPU", 0)) if workers is None else workers
    summary["interrupted"] = interrupted or summary["not_run"] > 0  # (ASHA's stops are not interruptions)
    del ray
    return summary


def report_line(summary: dict[str, Any], out: Path, resume_hint: str) -> str:
    best = summary["best"]
    head = (f"sweep: {summary['finished']}/{summary['trials']} trials finished, {summary['failed']} failed"
            + (f", {summary['stopped_early']} stopped early (ASHA)" if summary["stopped_early"] else "")
            + f" in {summary['wall_time_s']:.1f} s")
    if best:
        head += f"; best {summary['metric']} {best[summary['metric']]:.4g} ({best['trial']}: {best['overrides']})"
    lines = [head, f"table: {out / 'sweep_results.md'}  plot: {out / 'sweep_curves.png'}"
             + (f"  best θ: {out / 'theta_best.json'}" if best else "")]
    if summary["interrupted"]:
        lines.append(f"interrupted: {summary['not_run']} trials did not run; continue with: {resume_hint}")
    return "\n".join(lines)


__all__ = ["report_line", "run_sweep"]
