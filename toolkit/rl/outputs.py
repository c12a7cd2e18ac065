"""What a training run writes: θ file, history, learning curves, summary."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlmpc.toolkit.rl.evaluation import worse
from rlmpc.toolkit.theta_file import save_theta, theta_document

if TYPE_CHECKING:
    from rlmpc.toolkit.rl.training import Trainer

def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(trainer: Trainer, final_eval: float, restored: bool = False) -> dict[str, Any]:
    """θ files, history, evaluation history, plots and the summary of a finished run.

    ``restored``: the guard replaced a learned θ worse than θ0 by the best θ evaluated (then
    ``theta.json`` holds that θ, and ``final_eval`` is the learned θ's score).
    """
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    fns, hist, pr, agent = trainer.mpc.fns, trainer.history, trainer.progress, trainer.agent
    evals = trainer.evaluations
    theta = trainer.mpc.theta
    cfg = trainer.config.mpc
    env = trainer.config.env

    def document(values: np.ndarray) -> dict[str, Any]:
        return theta_document(cfg.problem, cfg.params, fns, values, plant={"name": env.name, "params": env.params})

    save_theta(out / "theta.json", document(theta))
    best = np.asarray(evals.best_theta if evals.best_theta is not None else theta)
    save_theta(out / "theta_best.json", document(best))
    evals.save_json(out / "evaluation.json")
    np.savez_compressed(out / "history.npz", step_cost=np.array(hist.step_cost),
                        td_error=np.array(hist.td_error), theta=np.array(hist.theta),
                        episode_cost=np.array(hist.episode_cost),
                        theta_labels=np.array(fns.theta.labels()), theta0=np.asarray(trainer.theta0, dtype=float),
                        theta_lower=np.asarray(fns.theta.lower(), dtype=float),
                        theta_upper=np.asarray(fns.theta.upper(), dtype=float))
    if trainer.plots:
        write_plots(out)
    initial = pr.initial_eval if pr.initial_eval is not None else float("nan")
    written_cost = evals.best_cost if restored else final_eval
    summary = {
        "config": str(trainer.config.source),
        "agent": trainer.config.agent.type,
        "seed": trainer.config.seed,
        "steps": pr.total,
        "episodes": len(hist.episode_cost),
        "wall_time_s": pr.wall_time,
        "ms_per_step": 1e3 * pr.wall_time / max(pr.total, 1),
        "cpu_ms_per_step": 1e3 * pr.cpu_time / max(pr.total, 1),
        "greedy_cost_initial": initial,
        "greedy_cost_final": final_eval,
        "greedy_cost_ratio": final_eval / initial if initial else float("nan"),
        "greedy_cost_best": evals.best_cost,
        "best_step": evals.best_step,
        "learned_worse_than_initial": worse(final_eval, initial),
        "theta_json": "best θ (the learned θ was worse than θ0)" if restored else "learned θ",
        "theta_json_worse_than_initial": worse(written_cost, initial),
        "guard_events": [{"step": r["step"], "cost": r["cost"], "action": r["guard"]}
                         for r in evals.records if r["guard"]],
        "stopped": pr.stopped,
        "evaluation": {k: (vars(v) if k == "guard" and v is not None else v)
                       for k, v in vars(trainer.config.evaluation).items()},
        "updates": agent.updates,
        "mpc_failures": {"V": agent.failures.value, "Q": agent.failures.q_value,
                         "skipped_updates": agent.failures.skipped_updates,
                         "messages": agent.failures.messages},
        # solves whose QP stopped at its iteration limit (acados reports success) and how many of
        # them the fallback HPIPM mode solved (in this process: a resumed run counts from the resume)
        "mpc_verification": {"unverified": trainer.mpc.verification.unverified,
                             "solved_again": trainer.mpc.verification.resolved,
                             "fallback_hpipm_mode": trainer.mpc.options.fallback_hpipm_mode},
        # the compiled learning step (docs/theory.md): null where the Python path ran alone
        "compiled_step": agent.compiled_step_report(),
        "theta_initial": {k: v.tolist() for k, v in fns.theta.unflatten(trainer.theta0).items()},
        "theta_final": {k: v.tolist() for k, v in fns.theta.unflatten(theta).items()},
        "outputs": {"theta": "theta.json", "theta_best": "theta_best.json", "history": "history.npz",
                    "evaluation": "evaluation.json", "plot": "learning_curves.png", "evaluation_plot": "evaluation.png",
                    "checkpoint": "checkpoint.pkl"},
    }
    _write_json(out / "summary.json", summary)
    return summary


def theta_scale(theta0: np.ndarray, lower: np.ndarray | None = None,
                upper: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Per component, the fixed yardstick its change is drawn in and its name: ``|θ₀|`` where
    θ₀ ≠ 0 (relative change), else the width of its bounds ``ub − lb`` where finite, else 1
    (absolute change).  It never depends on how far θ moved: a tiny change stays tiny."""
    theta0 = np.asarray(theta0, dtype=float).ravel()
    width = (np.asarray(upper, dtype=float) - np.asarray(lower, dtype=float) if lower is not None
             and upper is not None else np.full(theta0.size, np.inf))
    scale, how = np.ones(theta0.size), []
    for i, (t0, w) in enumerate(zip(theta0, width, strict=True)):
        if t0 != 0.0:
            scale[i], name = abs(t0), "|θ₀|"
        elif np.isfinite(w) and w > 0:
            scale[i], name = w, "ub − lb"
        else:
            name = "absolute ×100"
        how.append(name)
    return scale, how


def relative_change(theta: np.ndarray, theta0: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``100 (θ − θ₀) / scale`` per component: the change from θ₀ in % of its yardstick."""
    return np.asarray(100.0 * (theta - theta0) / scale)


def theta_legend(labels: list[str], theta0: np.ndarray, final: np.ndarray, how: list[str]) -> list[str]:
    """Legend entries ``name (θ₀→final, ±x %)``, or ``name (θ₀→final) [yardstick]`` where the
    yardstick (:func:`theta_scale`) is not ``|θ₀|``."""
    out = []
    for i, label in enumerate(labels):
        if how[i] == "|θ₀|":
            out.append(f"{label} ({theta0[i]:.3g}→{final[i]:.3g}, {100 * (final[i] / theta0[i] - 1):+.3g} %)")
        else:
            out.append(f"{label} ({theta0[i]:.3g}→{final[i]:.3g}) [{how[i]}]")
    return out


def write_plots(out: Path) -> list[Path]:
    """``learning_curves.png`` and ``evaluation.png`` of the run in ``out``, from its saved
    ``history.npz`` and ``evaluation.json`` (what ``rlmpc plot OUT`` does after ``--no-plots``)."""
    from types import SimpleNamespace

    from rlmpc.toolkit.rl.evaluation import EvaluationHistory, Guard

    try:
        with np.load(out / "history.npz") as data:
            hist = SimpleNamespace(**{k: data[k] for k in ("step_cost", "td_error", "theta", "episode_cost")})
            labels = [str(v) for v in data["theta_labels"]]
            extra = {k: data[k] for k in ("theta0", "theta_lower", "theta_upper") if k in data}
        doc = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{out}: not a finished training run ({type(exc).__name__}: {exc})") from None
    if "theta0" not in extra:  # (a run saved before history.npz held θ₀: its initial evaluation's θ)
        initial = [r for r in doc["records"] if r.get("kind") == "initial"]
        if initial:
            extra["theta0"] = np.asarray(initial[0]["theta"], dtype=float)
    hist.episode_cost = list(hist.episode_cost)
    evals = EvaluationHistory(Guard(**doc["guard"]) if doc.get("guard") else None, doc["records"],
                              doc["best_theta"], doc["best_cost"], doc["best_step"])
    return [plot_learning_curves(out / "learning_curves.png", hist, labels, extra.get("theta0"),
                                 extra.get("theta_lower"), extra.get("theta_upper")),
            evals.plot(out / "evaluation.png")]


MAX_POINTS = 1500
"""Points drawn per curve: longer histories are reduced (a plot of 5000 or 500 000 steps costs the same)."""


def _reduce(values: np.ndarray, how: str = "stride") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) with at most MAX_POINTS rows: every k-th row ("stride"), or the bin means ("mean")."""
    n = values.shape[0]
    k = max(1, -(-n // MAX_POINTS))
    if k == 1:
        return np.arange(n), values
    if how == "mean":
        m = n // k
        return np.arange(m) * k + (k - 1) / 2, values[: m * k].reshape(m, k, *values.shape[1:]).mean(axis=1)
    return np.arange(0, n, k), values[::k]


def plot_learning_curves(path: Path, hist: Any, labels: list[str], theta0: Any = None,
                         lower: Any = None, upper: Any = None) -> Path:
    """Cost per step, TD error, cost per episode (or cumulative) and θ, each curve reduced to at most
    MAX_POINTS points.

    ``hist.theta[k]`` is θ after step k; ``theta0`` is θ before the first update (without it, the
    first row stands in for it and the legend says so).  Each θ component is drawn as its change
    from θ₀ in % of a fixed yardstick (:func:`theta_scale`, from ``lower``/``upper``, the θ bounds).
    """
    from rlmpc.toolkit import figures

    cost = np.array(hist.step_cost)
    td = np.array(hist.td_error)
    theta = np.array(hist.theta)
    fig = figures.figure(figsize=(11, 8))  # (a fixed layout: constrained_layout doubles the cost)
    margins = {"left": 0.07, "bottom": 0.06, "top": 0.96, "hspace": 0.45}
    grid = fig.add_gridspec(3, 2, right=0.98, wspace=0.18, **margins)
    legend_right = max(0.45, 0.97 - 0.19 * (1 + len(labels) // 12))  # (the θ legend sits to its right)
    ax = fig.add_subplot(grid[0, 0])
    ax.semilogy(*_reduce(np.maximum(cost, 1e-12)), ".", ms=1, alpha=0.4, label="stage cost")
    if cost.size >= 50:
        kernel = np.ones(50) / 50
        at, mean = _reduce(np.convolve(cost, kernel, "valid"))
        ax.semilogy(at + 49, mean, lw=1.5, label="moving mean (50)")
    ax.set_title("cost per step")
    ax.set_xlabel("step")
    ax.legend()
    ax = fig.add_subplot(grid[0, 1])
    at = np.flatnonzero(np.isfinite(td))  # (DPG: only at its updates)
    sparse = at.size < td.size / 10
    _, vals = _reduce(np.column_stack([at, td[at]]) if at.size else np.zeros((0, 2)))
    ax.plot(vals[:, 0], vals[:, 1], "o-" if sparse else ".", ms=3 if sparse else 1)
    ax.set_title("TD error" + (" (at each update)" if sparse else ""))
    ax.set_xlabel("step")
    ax = fig.add_subplot(grid[1, :])
    if len(hist.episode_cost) > 1:
        ax.plot(*_reduce(np.array(hist.episode_cost)), "o-", ms=3)
        ax.set_title("cost per episode")
        ax.set_xlabel("episode")
    else:  # one long episode: how the cost accumulates shows the learning
        ax.plot(*_reduce(np.cumsum(cost)))
        ax.set_title("cumulative cost (one episode)")
        ax.set_xlabel("step")
    ax = fig.add_subplot(fig.add_gridspec(3, 1, right=legend_right, **margins)[2, 0])
    if theta.size:
        t0 = np.asarray(theta0, dtype=float).ravel() if theta0 is not None else theta[0]
        scale, how = theta_scale(t0, lower, upper)
        steps, rel = _reduce(relative_change(theta, t0, scale))
        # θ after step k drawn at k + 1 (steps done), θ₀ at 0
        steps, rel = np.concatenate([[0], steps + 1]), np.vstack([np.zeros((1, t0.size)), rel])
        styles = ["-", "--", ":", "-."]
        for i, text in enumerate(theta_legend(labels, t0, theta[-1], how)):
            ax.plot(steps, rel[:, i], lw=1.2, ls=styles[(i // 10) % 4], label=text)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.legend(ncol=1 + len(labels) // 12, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_ylabel("100 (θ − θ₀) / |θ₀|  [%]" if all(h == "|θ₀|" for h in how) else
                      "100 (θ − θ₀) / scale  [%]")
    note = "" if theta0 is not None or not theta.size else " (θ₀ not saved: θ after step 0 stands in)"
    ax.set_title("θ: change from θ₀ in % of |θ₀| (scale; where θ₀ = 0: its bound range, [ub − lb]); legend: θ₀ → final"
                 + note,
                 loc="left")
    ax.set_xlabel("steps done (θ₀ at 0)")
    fig.savefig(path, dpi=100)
    return path
