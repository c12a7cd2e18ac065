"""``rlmpc evaluate θ.json [θ2.json …]``: greedy closed loops of each θ on Ray tasks.

Episode e of every θ resets the plant with seed ``seed + e`` (same start state and disturbances for
every θ).  Per θ: the mean cost with its 95 % confidence interval (Student t), the state-constraint
violation (the plant's ``info["violation"]``, else the problem's state constraints at θ), MPC failures and
episodes that ended early.  A plot compares the θ (per-episode costs and the intervals)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

EVALUATE_FILES = ("evaluation.json", "evaluation.md", "evaluation.png")


@dataclass(frozen=True)
class Episode:
    index: int
    cost: float
    violation: float
    failures: int
    steps: int


@dataclass(frozen=True)
class ThetaEvaluation:
    theta_file: str
    episodes: list[Episode]

    @property
    def costs(self) -> np.ndarray:
        return np.array([e.cost for e in self.episodes], dtype=float)

    def stats(self) -> dict[str, float]:
        from scipy import stats as st

        c = self.costs
        n = c.size
        half = float(st.t.ppf(0.975, n - 1) * c.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return {"episodes": n, "mean": float(c.mean()), "ci95_low": float(c.mean()) - half,
                "ci95_high": float(c.mean()) + half, "median": float(np.median(c)),
                "violation_mean": float(np.mean([e.violation for e in self.episodes])),
                "episodes_with_violation": int(sum(e.violation > 1e-9 for e in self.episodes)),
                "mpc_failures": int(sum(e.failures for e in self.episodes)),
                "ended_early": int(sum(e.steps < max(x.steps for x in self.episodes) for e in self.episodes))}


class _InfoRecorder:
    """The plant, remembering the ``info`` of its last step (for ``info["violation"]``)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.last_info: dict[str, Any] = {}

    def reset(self, **kwargs: Any) -> Any:
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.last_info = out[4] if isinstance(out, tuple) and len(out) == 5 and isinstance(out[4], dict) else {}
        return out

    def close(self) -> None:
        self.env.close()


def run_episodes(theta_file: str, plant: dict[str, Any] | None, indices: list[int], steps: int,
                 seed: int) -> list[Episode]:
    """Greedy closed loops of one θ (runs in a Ray task, or here)."""
    from rlmpc.toolkit.mpc import MPC
    from rlmpc.toolkit.registry import load_plugins, make_env
    from rlmpc.toolkit.rl import plant_io
    from rlmpc.toolkit.theta_file import load_theta

    load_plugins()
    tf = load_theta(theta_file)
    fns = tf.fns
    plant = plant or tf.plant
    if plant is None:
        raise ValueError(f"{theta_file}: plant: the θ file names no plant; give --plant")
    mpc = MPC(fns, theta=tf.values)
    rows = fns.state_rows
    p = np.asarray(fns.params.default(), dtype=float)

    def violation_of(x: np.ndarray) -> float:
        if rows is None or not rows.n:
            return 0.0
        h = np.asarray(fns.h_state(x, tf.values, p), dtype=float).ravel()
        return float(np.sum(np.maximum(rows.lb - h, 0.0) + np.maximum(h - rows.ub, 0.0)))

    out = []
    try:
        for e in indices:
            env = _InfoRecorder(make_env(plant["name"], dict(plant.get("params", {}))))
            s = plant_io.reset(env, plant["name"], fns.nx, seed + e)
            mpc.reset()  # every episode from a cold start: its result does not depend on the batching
            total, viol, failures, last, t = 0.0, 0.0, 0, np.zeros(fns.nu), 0
            for t in range(1, steps + 1):
                sol = mpc.value(s)
                failures += int(not sol.success)
                action = sol.u0 if np.all(np.isfinite(sol.u0)) else last
                action = np.clip(action, fns.u_lb, fns.u_ub)
                s, cost, terminated = plant_io.step(env, plant["name"], fns.nx, action,
                                                    f"evaluation episode {e}, step {t - 1}")
                total += cost
                reported = env.last_info.get("violation")
                viol += float(reported) if reported is not None else violation_of(s)
                last = action
                if terminated:
                    break
            env.close()
            out.append(Episode(e, total, viol, failures, t))
    finally:
        mpc.close()
    return out


def _chunks(n: int, parts: int) -> list[list[int]]:
    size = max(1, math.ceil(n / parts))
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def evaluate(theta_files: list[str], *, episodes: int, steps: int, seed: int, workers: int | None,
             address: str | None, plant: dict[str, Any] | None = None,
             say: Callable[[str], None] = print) -> list[ThetaEvaluation]:
    """Every θ's episodes, in Ray tasks (a few chunks per worker, so a slow chunk does not idle the rest)."""
    from rlmpc.toolkit.sweep.ray_session import start_ray

    ray = start_ray(address, workers)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    task = ray.remote(num_cpus=1, max_retries=1)(run_episodes)
    chunks = _chunks(episodes, 4 * max(1, min(cpus, workers or cpus)))
    pending = {task.remote(f, plant, c, steps, seed): f for f in theta_files for c in chunks}
    results: dict[str, list[Episode]] = {f: [] for f in theta_files}
    total, done = len(pending), 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        results[pending.pop(ref)].extend(ray.get(ref))
        done += 1
        if done == total or done % max(1, total // 10) == 0:
            say(f"[evaluate] {done}/{total} batches ({sum(len(v) for v in results.values())} episodes)")
    return [ThetaEvaluation(f, sorted(results[f], key=lambda e: e.index)) for f in theta_files]


def write_evaluation(out: Path, evaluations: list[ThetaEvaluation], meta: dict[str, Any]) -> dict[str, Any]:
    table = [{"theta_file": ev.theta_file, **ev.stats()} for ev in evaluations]
    doc = {**meta, "results": table,
           "episodes": {ev.theta_file: [asdict(e) for e in ev.episodes] for ev in evaluations}}
    (out / "evaluation.json").write_text(json.dumps(doc, indent=1, default=float) + "\n", encoding="utf-8")
    head = ["θ file", "mean cost", "95 % CI", "median", "violation (mean)", "episodes violating",
            "MPC failures", "ended early"]
    lines = [f"# Greedy evaluation: {meta['episodes']} episodes × {meta['steps']} steps, seeds "
             f"{meta['seed']}…{meta['seed'] + meta['episodes'] - 1} (the same for every θ)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        lines.append(f"| `{r['theta_file']}` | {r['mean']:.4g} | [{r['ci95_low']:.4g}, {r['ci95_high']:.4g}] | "
                     f"{r['median']:.4g} | {r['violation_mean']:.3g} | {r['episodes_with_violation']} | "
                     f"{r['mpc_failures']} | {r['ended_early']} |")
    (out / "evaluation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_evaluation(out / "evaluation.png", evaluations)
    return doc


def short_names(files: list[str]) -> list[str]:
    """Each θ file's path with as few leading folders as keep the names apart (``th0.json``,
    ``pm_ws2/theta.json``), never a bare leading "/"."""
    parts = [Path(f).parts for f in files]
    for keep in range(2, max((len(p) for p in parts), default=1) + 2):
        names = ["/".join(p[-keep:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return list(files)


def paired_differences(reference: ThetaEvaluation, other: ThetaEvaluation) -> np.ndarray:
    """Per episode index both ran (the same seed): other's cost − the reference's."""
    ref = {e.index: e.cost for e in reference.episodes}
    return np.array([e.cost - ref[e.index] for e in other.episodes if e.index in ref], dtype=float)


def plot_evaluation(path: Path, evaluations: list[ThetaEvaluation]) -> Path:
    """Left: per θ every episode's cost (dots; the same seed joined across θ), the mean and its 95 %
    interval.  Right (two θ or more): per episode the paired difference to the first θ, its mean and
    95 % interval (paired t), in % of the first θ's mean: a small systematic difference shows there."""
    from scipy import stats as st

    from rlmpc.toolkit import figures

    n = len(evaluations)
    names = short_names([ev.theta_file for ev in evaluations])
    width = max(6.0, 1.9 * n + 2)
    ratios: dict[str, Any] = {"width_ratios": [n, n - 1]} if n > 1 else {}
    fig, axes = figures.subplots(1, 2 if n > 1 else 1, figsize=(width * (1 + (n - 1) / n) if n > 1 else width, 4.8),
                                 squeeze=False, **ratios)
    ax = axes[0, 0]
    costs = [ev.costs for ev in evaluations]
    same = n > 1 and all(len(c) == len(costs[0]) for c in costs)
    if same and len(costs[0]) <= 500:  # the same seeds joined across θ
        ax.plot(np.arange(n), np.array(costs), color="0.6", lw=0.6, alpha=min(0.6, 30 / len(costs[0])), zorder=1)
    for i, ev in enumerate(evaluations):
        c, s = ev.costs, ev.stats()
        ax.scatter(np.full(c.size, i), c, s=10, alpha=0.5, color=f"C{i}", zorder=2)
        ax.errorbar(i + 0.2, s["mean"], yerr=[[s["mean"] - s["ci95_low"]], [s["ci95_high"] - s["mean"]]],
                    fmt="D", color="k", capsize=5, lw=2, zorder=3)
        ax.annotate(f"{s['mean']:.4g}", (i + 0.27, s["mean"]), va="center", fontsize=8)
    ax.set_xlim(-0.4, n - 0.3)
    ax.set_xticks(range(n), names, rotation=12, ha="right", fontsize=8)
    ax.set_ylabel("closed-loop cost per episode")
    ax.set_title("per episode (dots" + ("; grey: the same seed" if same else "") + "), mean and 95 % CI (black)",
                 fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if n > 1:
        ax = axes[0, 1]
        ref_mean = float(np.mean(costs[0]))
        for i, ev in enumerate(evaluations[1:], start=1):
            d = paired_differences(evaluations[0], ev)
            if not d.size:
                continue
            pct = 100 * d / abs(ref_mean) if ref_mean else d
            ax.scatter(np.full(pct.size, i), pct, s=10, alpha=0.5, color=f"C{i}")
            m = float(pct.mean())
            half = float(st.t.ppf(0.975, pct.size - 1) * pct.std(ddof=1) / np.sqrt(pct.size)) if pct.size > 1 else 0.0
            ax.errorbar(i + 0.2, m, yerr=half, fmt="D", color="k", capsize=5, lw=2)
            ax.annotate(f"{m:+.2g} %\n±{half:.2g}", (i + 0.27, m), va="center", fontsize=8)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlim(0.6, n - 0.3)
        ax.set_xticks(range(1, n), names[1:], rotation=12, ha="right", fontsize=8)
        ax.set_ylabel(f"cost − {names[0]}'s, same seed\n[% of its mean {ref_mean:.4g}]" if ref_mean else
                      f"cost − {names[0]}'s, same seed")
        ax.set_title(f"paired with {names[0]} (same seed):\nmean, 95 % CI (paired t)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("greedy closed loops, the same seeds for every θ", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(), time.perf_counter() - start
