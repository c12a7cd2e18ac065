"""What a sweep leaves for a person: the trial table (CSV, JSON, Markdown), one plot of every learning
curve with the best trial highlighted, and the best θ as a θ file ready for ``rlmpc export``.

Everything is read back from the trial folders, so a resumed sweep writes the same table as an
uninterrupted one (the time columns excepted: they are measurements)."""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.toolkit.sweep.space import SweepSpec, Trial
from rlmpc.toolkit.sweep.trial import ERROR_FILE, STOPPED_FILE, TRIAL_FILE, metrics_of, trial_dir

SWEEP_FILES = ("sweep_results.csv", "sweep_results.json", "sweep_results.md", "sweep_curves.png",
               "theta_best.json")
TIME_COLUMNS = ("train_time_s", "trial_time_s")


@dataclass(frozen=True)
class TrialRow:
    trial: Trial
    status: str  # "ok", "stopped early at step K" (ASHA), "failed: …" or "not run"
    metrics: dict[str, Any]
    trial_time_s: float

    def as_dict(self, keys: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"trial": self.trial.name, "status": self.status}
        row.update({k: self.trial.overrides.get(k) for k in keys})
        for name in ("greedy_cost_initial", "greedy_cost_final", "greedy_cost_ratio", "evaluation_best",
                     "mpc_failures", "steps", "train_time_s"):
            row[name] = self.metrics.get(name)
        row["trial_time_s"] = self.trial_time_s
        return row


def collect(spec: SweepSpec, out: Path) -> list[TrialRow]:
    rows = []
    for trial in spec.trials:
        folder = trial_dir(out, trial)
        summary, info = folder / "summary.json", folder / TRIAL_FILE
        if summary.is_file():
            metrics = metrics_of(json.loads(summary.read_text(encoding="utf-8")), trial)
            took = json.loads(info.read_text(encoding="utf-8"))["trial_time_s"] if info.is_file() else math.nan
            rows.append(TrialRow(trial, "ok", metrics, float(took)))
        elif (folder / STOPPED_FILE).is_file():  # ASHA: not promising at its last evaluation
            last = json.loads((folder / STOPPED_FILE).read_text(encoding="utf-8"))
            rows.append(TrialRow(trial, f"stopped early at step {last.get('step', '?')}",
                                 {"evaluation_best": last.get("cost")}, math.nan))
        elif (folder / ERROR_FILE).is_file():
            first = (folder / ERROR_FILE).read_text(encoding="utf-8").splitlines()[0]
            rows.append(TrialRow(trial, f"failed: {first}", {}, math.nan))
        else:
            rows.append(TrialRow(trial, "not run", {}, math.nan))
    return rows


def best_row(rows: list[TrialRow], metric: str) -> TrialRow | None:
    done = [r for r in rows if r.status == "ok" and math.isfinite(float(r.metrics.get(metric, math.nan)))]
    return min(done, key=lambda r: (float(r.metrics[metric]), r.trial.index)) if done else None


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def write_results(spec: SweepSpec, out: Path, rows: list[TrialRow]) -> dict[str, Any]:
    """Write the table, the plot and the best θ; the sweep's summary."""
    keys = [d.key for d in spec.dimensions]
    table = [r.as_dict(keys) for r in rows]
    metric = spec.metric
    order = sorted(range(len(rows)), key=lambda i: (rows[i].status != "ok",
                                                    float(rows[i].metrics.get(metric, math.inf)), i))
    with open(out / "sweep_results.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table[i] for i in order)
    best = best_row(rows, metric)
    summary = {"sweep": str(spec.source), "metric": metric, "trials": len(rows),
               "finished": sum(r.status == "ok" for r in rows),
               "failed": sum(r.status.startswith("failed") for r in rows),
               "stopped_early": sum(r.status.startswith("stopped early") for r in rows),
               "not_run": sum(r.status == "not run" for r in rows),
               "best": None if best is None else {"trial": best.trial.name, "overrides": best.trial.overrides,
                                                  metric: best.metrics[metric]},
               "rows": [table[i] for i in order]}
    (out / "sweep_results.json").write_text(json.dumps(summary, indent=1, default=float) + "\n", encoding="utf-8")
    head = list(table[0])
    lines = [f"# Sweep `{spec.source.name}`: {summary['finished']} of {len(rows)} trials finished, "
             f"{summary['failed']} failed", "",
             f"Sorted by `{metric}` (lower is better). The best θ: `theta_best.json`." if best else
             "No trial finished.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(table[i][h]) for h in head) + " |" for i in order]
    (out / "sweep_results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if best is not None:  # (ranked by the best evaluation: that trial's best θ)
        name = "theta_best.json" if metric == "evaluation_best" else "theta.json"
        shutil.copyfile(trial_dir(out, best.trial) / name, out / "theta_best.json")
    plot_curves(out / "sweep_curves.png", out, rows, best, metric)
    return summary


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    if values.size < width or width <= 1:
        return values
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid")


def plot_curves(path: Path, out: Path, rows: list[TrialRow], best: TrialRow | None, metric: str) -> Path:
    """Every trial's learning curve (stage cost, moving average) in grey, the best one in colour."""
    from rlmpc.toolkit import figures

    fig, ax = figures.subplots(figsize=(8, 4.5))
    for row in rows:
        history = trial_dir(out, row.trial) / "history.npz"
        if row.status != "ok" or not history.is_file():
            continue
        cost = np.asarray(np.load(history)["step_cost"], dtype=float)
        width = max(1, cost.size // 50)
        curve = _smooth(cost, width)
        steps = np.arange(curve.size) + width
        is_best = best is not None and row.trial.name == best.trial.name
        ax.plot(steps, np.maximum(curve, 1e-9), color="tab:red" if is_best else "0.65", lw=2.2 if is_best else 0.9,
                zorder=3 if is_best else 2,
                label=(f"best: {row.trial.name} ({metric} {best.metrics[metric]:.4g})"
                       if is_best and best is not None else None))
    ax.set_xlabel("training step")
    ax.set_ylabel("stage cost (moving average)")
    ax.set_yscale("log")  # (stage costs are >= 0; a zero moving average is drawn at 1e-9)
    ax.set_title(f"learning curves of {sum(r.status == 'ok' for r in rows)} trials (grey), the best in red",
                 fontsize=10)
    if best is not None:
        ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
