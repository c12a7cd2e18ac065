"""What a training run writes: θ file, history, learning curves, summary."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlmpc.toolkit.theta_file import save_theta, theta_document

if TYPE_CHECKING:
    from rlmpc.toolkit.rl.training import Trainer

def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(trainer: Trainer, final_eval: float) -> dict[str, Any]:
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    fns, hist, pr, agent = trainer.mpc.fns, trainer.history, trainer.progress, trainer.agent
    theta = trainer.mpc.theta
    cfg = trainer.config.mpc
    env = trainer.config.env
    save_theta(out / "theta.json", theta_document(cfg.problem, cfg.params, fns, theta,
                                                  plant={"name": env.name, "params": env.params}))
    np.savez_compressed(out / "history.npz", step_cost=np.array(hist.step_cost),
                        td_error=np.array(hist.td_error), theta=np.array(hist.theta),
                        episode_cost=np.array(hist.episode_cost),
                        theta_labels=np.array(fns.theta.labels()))
    png = plot_learning_curves(out / "learning_curves.png", hist, fns.theta.labels())
    initial = pr.initial_eval if pr.initial_eval is not None else float("nan")
    summary = {
        "config": str(trainer.config.source),
        "agent": trainer.config.agent.type,
        "steps": pr.total,
        "episodes": len(hist.episode_cost),
        "wall_time_s": pr.wall_time,
        "ms_per_step": 1e3 * pr.wall_time / max(pr.total, 1),
        "greedy_cost_initial": initial,
        "greedy_cost_final": final_eval,
        "greedy_cost_ratio": final_eval / initial if initial else float("nan"),
        "evaluation": vars(trainer.config.evaluation),
        "updates": agent.updates,
        "mpc_failures": {"V": agent.failures.value, "Q": agent.failures.q_value,
                         "skipped_updates": agent.failures.skipped_updates,
                         "messages": agent.failures.messages},
        "theta_initial": {k: v.tolist() for k, v in fns.theta.unflatten(trainer.theta0).items()},
        "theta_final": {k: v.tolist() for k, v in fns.theta.unflatten(theta).items()},
        "outputs": {"theta": "theta.json", "history": "history.npz", "plot": png.name,
                    "checkpoint": "checkpoint.pkl"},
    }
    _write_json(out / "summary.json", summary)
    return summary


def relative_change(theta: np.ndarray) -> np.ndarray:
    """``(θ − θ₀) / max |θ − θ₀|`` per component: each one's path in [−1, 1] whatever its scale
    (a component that never changed stays at 0)."""
    change = theta - theta[:1]
    scale = np.max(np.abs(change), axis=0, initial=0.0)
    scale[scale == 0] = 1.0
    return np.asarray(change / scale)


def plot_learning_curves(path: Path, hist: Any, labels: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cost = np.array(hist.step_cost)
    td = np.array(hist.td_error)
    theta = np.array(hist.theta)
    fig = plt.figure(figsize=(11, 8), constrained_layout=True)
    grid = fig.add_gridspec(3, 2)
    ax = fig.add_subplot(grid[0, 0])
    ax.semilogy(np.maximum(cost, 1e-12), ".", ms=1, alpha=0.4, label="stage cost")
    if cost.size >= 50:
        kernel = np.ones(50) / 50
        ax.semilogy(np.arange(49, cost.size), np.convolve(cost, kernel, "valid"), lw=1.5,
                    label="moving mean (50)")
    ax.set_title("cost per step")
    ax.set_xlabel("step")
    ax.legend()
    ax = fig.add_subplot(grid[0, 1])
    at = np.flatnonzero(np.isfinite(td))  # (DPG: only at its updates)
    sparse = at.size < td.size / 10
    ax.plot(at, td[at], "o-" if sparse else ".", ms=3 if sparse else 1)
    ax.set_title("TD error" + (" (at each update)" if sparse else ""))
    ax.set_xlabel("step")
    ax = fig.add_subplot(grid[1, :])
    if len(hist.episode_cost) > 1:
        ax.plot(hist.episode_cost, "o-")
        ax.set_title("cost per episode")
        ax.set_xlabel("episode")
    else:  # one long episode: how the cost accumulates shows the learning
        ax.plot(np.cumsum(cost))
        ax.set_title("cumulative cost (one episode)")
        ax.set_xlabel("step")
    ax = fig.add_subplot(grid[2, :])
    if theta.size:  # components of different scales: each relative to its initial value
        rel = relative_change(theta)
        styles = ["-", "--", ":", "-."]
        for i, label in enumerate(labels):
            ax.plot(rel[:, i], lw=1.2, ls=styles[(i // 10) % 4],
                    label=f"{label} ({theta[0, i]:.3g}→{theta[-1, i]:.3g})")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.legend(ncol=1 + len(labels) // 12, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_ylabel("(θ − θ₀) / max|θ − θ₀|")
    ax.set_title("θ components: each one's change, normalised to its largest change (legend: initial → final)")
    ax.set_xlabel("step")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
