"""Gradient-free tuning of θ by closed-loop episodes: Bayesian optimisation with Optuna's TPE sampler
(``agent.type = "bayes"``).

A trial proposes the θ entries named in ``[agent.bayes] tune`` (inside their bounds; the rest of θ
stays at θ0) and scores it by the greedy closed-loop cost of the ``[evaluation]`` episodes, the same
seeds for every trial, so trials compare on the same noise.  The first trial is θ0 itself.  With a
real-time budget, a trial whose worst cost per step (``worst_step(θ)``, e.g. instructions on the
device) exceeds it is infeasible: Optuna's constraint handling steers away from it and the result
is the best *feasible* θ.  ``score`` replaces the workstation's greedy closed loop (e.g. the same
episodes with the device computing the actions, :mod:`rlmpc.hil.device_bayes`); ``worst_step``
without a budget is recorded for every trial but constrains nothing.  The study lives in
``study.db`` (SQLite) in the run folder: ``--resume`` continues it (the trials already scored are
kept; the sampler's random stream restarts, so the trials that follow differ from an uninterrupted
run's).  The study's user attribute ``extra`` holds what a caller put in :attr:`BayesTuner.checkpoint_extra`
(e.g. the device a study ran through, checked before a resume: :mod:`rlmpc.hil.train_checks`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.registry import make_env, make_problem
from rlmpc.toolkit.rl.config import TrainConfig, resume_relevant
from rlmpc.toolkit.rl.evaluation import greedy_cost
from rlmpc.toolkit.rl.training import TRAIN_PROGRESS, changed_keys
from rlmpc.toolkit.theta_file import save_theta, theta_document

BAYES_OUTPUTS = ("theta.json", "trials.csv", "trials.md", "bayes.png", "summary.json", "study.db",
                 "device", "device.json")  # (the last two with --device/--port)
STUDY = "rlmpc-bayes"
EXTRA = "extra"  # the study's user attribute holding BayesTuner.checkpoint_extra
CONFIG = "config"  # ... and the one holding the configuration it was started with (a resume must match it)


def _study_relevant(raw: dict[str, Any]) -> dict[str, Any]:
    """What a resumed study must share with the one it continues: all but `RESUME_FREE` keys and the
    number of trials (more trials continue the study)."""
    out = resume_relevant(raw)
    agent = out.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("bayes"), dict):
        out["agent"] = {**agent, "bayes": {k: v for k, v in agent["bayes"].items() if k != "trials"}}
    return out


class BayesTuner:
    """Run (or resume) a Bayesian tuning of θ described by a :class:`TrainConfig` whose
    ``agent.type`` is ``"bayes"``; same interface as :class:`~rlmpc.toolkit.rl.training.Trainer`."""

    def __init__(self, config: TrainConfig, progress_bar: bool = True,
                 worst_step: Callable[[FloatArray], float] | None = None, budget: float | None = None,
                 score: Callable[[FloatArray], float] | None = None, cost_unit: str = "") -> None:
        if config.agent.bayes is None:
            raise ValueError("agent.type: BayesTuner needs agent.type = \"bayes\"")
        if budget is not None and worst_step is None:
            raise ValueError("--budget: a budget needs a measure of the worst cost per step (a device)")
        self.config = config
        self.folder_claimed = False  # (True: a caller claimed the output folder and wrote into it first)
        self.checkpoint_extra: dict[str, Any] = {}  # (JSON; kept with the study, as a Trainer's checkpoint hooks)
        self.score_fn, self.cost_unit = score, cost_unit
        self.best_theta: FloatArray | None = None  # the θ written to theta.json (after run)
        self.out = config.output
        self.progress_bar = progress_bar
        self.worst_step, self.budget = worst_step, budget
        problem = make_problem(config.mpc.problem, config.mpc.params)
        mpc = MPC(problem, config.mpc.solver, theta=config.mpc.theta or None)
        self.fns, self.theta0 = mpc.fns, mpc.theta
        mpc.close()
        make_env(config.env.name, config.env.params).close()  # (plant parameters checked up front)
        self.entries = self._entries(config.agent.bayes.get("tune"))

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "study.db"

    def read_checkpoint(self) -> dict[str, Any]:
        """The study's progress as a :class:`~rlmpc.toolkit.rl.training.Trainer` checkpoint's: ``trials``
        (finished) and ``extra`` (None for a study written before it was recorded); nothing is changed."""
        import optuna

        path = self.checkpoint_path
        if not path.is_file():
            raise ValueError(f"--resume: no study at {path}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{path}")
            trials = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        except Exception as exc:  # (a damaged file or another program's database)
            raise ValueError(f"{path}: not a readable study ({type(exc).__name__}: {exc})") from None
        started = study.user_attrs.get(CONFIG)
        if isinstance(started, dict):  # (a study written before it was recorded: not checked)
            changed = changed_keys(_study_relevant(started), _study_relevant(self.config.raw))
            if changed:
                raise ValueError(f"{path}: the study belongs to a different configuration than "
                                 f"{self.config.source} (changed: {', '.join(changed)}; only agent.bayes.trials "
                                 "may change: more trials continue the study)")
        return {"trials": trials, "extra": study.user_attrs.get(EXTRA)}

    def finished(self, payload: dict[str, Any]) -> bool:
        """Whether the study ``payload`` (:meth:`read_checkpoint`) ran all its trials and wrote its outputs
        after them (summary.json, and device.json for a study through a device): a resume has nothing to do."""
        assert self.config.agent.bayes is not None
        if payload["trials"] < int(self.config.agent.bayes["trials"]):
            return False
        written = [self.out / "summary.json"] + ([self.out / "device.json"]
                                                 if (payload["extra"] or {}).get("device") else [])
        study = self.checkpoint_path.stat().st_mtime
        return all(f.is_file() and f.stat().st_mtime >= study for f in written)

    def _entries(self, names: list[str] | None) -> list[tuple[str, int]]:
        """(θ name, flat index) of every scalar searched, with finite bounds."""
        theta = self.fns.theta
        names = names or list(theta.names)
        unknown = [n for n in names if n not in theta.names]
        if unknown:
            raise ValueError(f"agent.bayes.tune: {unknown[0]!r} is not a parameter of θ; expected some of "
                             f"{list(theta.names)}")
        lower, upper, labels = theta.lower(), theta.upper(), theta.labels()
        entries = []
        for i, label in enumerate(labels):
            name = label.split("[")[0]
            if name in names:
                if not (math.isfinite(lower[i]) and math.isfinite(upper[i])):
                    raise ValueError(f"agent.bayes.tune: {label} has no finite bounds; give it lb and ub")
                entries.append((label, i))
        return entries

    def score(self, theta: FloatArray) -> float:
        if self.score_fn is not None:
            return float(self.score_fn(theta))
        ev = self.config.evaluation
        return greedy_cost(self.fns, self.config.mpc.solver, theta,
                           lambda: make_env(self.config.env.name, self.config.env.params),
                           ev.episodes, ev.steps, ev.seed, plant=self.config.env.name)

    def _theta(self, values: dict[str, float]) -> FloatArray:
        theta = np.array(self.theta0, dtype=float)
        for label, i in self.entries:
            theta[i] = values[label]
        return theta

    def run(self, resume: bool = False) -> dict[str, Any]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if not resume and self.checkpoint_path.exists():
            raise ValueError(f"{self.checkpoint_path} exists: pass --resume to continue that study, "
                             "or choose another output folder")
        if resume and not self.checkpoint_path.exists():
            raise ValueError(f"--resume: no study at {self.checkpoint_path}")
        if not self.folder_claimed:
            claim_output_folder(self.out, "train", BAYES_OUTPUTS, resume=resume, progress=TRAIN_PROGRESS)
        cfg = self.config.agent.bayes
        assert cfg is not None
        sampler = optuna.samplers.TPESampler(seed=int(cfg["seed"]),
                                             n_startup_trials=min(10, max(2, int(cfg["trials"]) // 6)))
        study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{self.checkpoint_path}",
                                    sampler=sampler, direction="minimize", load_if_exists=resume)
        if resume:
            self.read_checkpoint()  # (refuses a study of another configuration)
        study.set_user_attr(EXTRA, self.checkpoint_extra)
        if not resume or CONFIG not in study.user_attrs:
            study.set_user_attr(CONFIG, json.loads(json.dumps(self.config.raw, default=str)))
        if not study.trials:
            study.enqueue_trial({label: float(self.theta0[i]) for label, i in self.entries})  # θ0 first
        lower, upper = self.fns.theta.lower(), self.fns.theta.upper()
        start = time.perf_counter()
        total = int(cfg["trials"])

        def objective(trial: Any) -> float:
            values = {label: trial.suggest_float(label, float(lower[i]), float(upper[i]))
                      for label, i in self.entries}
            theta = self._theta(values)
            cost = self.score(theta)
            if self.worst_step is not None:
                worst = float(self.worst_step(theta))
                trial.set_user_attr("worst_step", worst)
                if self.budget is not None:
                    trial.set_constraint("budget", worst - self.budget)  # feasible when <= 0
            if self.progress_bar:
                ok = self.budget is None or float(trial.user_attrs.get("worst_step", math.inf)) <= self.budget
                best = min([t.value for t in study.trials if t.value is not None and self._feasible(t)]
                           + ([cost] if ok else []), default=math.nan)
                over = "" if ok else f" (worst step {trial.user_attrs['worst_step']:.0f} over the budget)"
                print(f"[bayes] trial {trial.number + 1}/{total}: cost {cost:.4g}{over}, best feasible {best:.4g}",
                      flush=True)
            return cost

        remaining = total - len([t for t in study.trials if t.state.is_finished()])
        if remaining > 0:
            study.optimize(objective, n_trials=remaining, catch=(RuntimeError,))
        return self._outputs(study, time.perf_counter() - start)

    def _feasible(self, trial: Any) -> bool:
        return self.budget is None or float(trial.user_attrs.get("worst_step", math.inf)) <= self.budget

    def _outputs(self, study: Any, wall: float) -> dict[str, Any]:
        done = [t for t in study.trials if t.value is not None]
        feasible = [t for t in done if self._feasible(t)]
        initial = done[0].value if done else math.nan
        best = min(feasible, key=lambda t: (t.value, t.number)) if feasible else None
        theta = self._theta(best.params) if best is not None else np.array(self.theta0)
        self.best_theta = theta
        cfg = self.config
        save_theta(self.out / "theta.json", theta_document(cfg.mpc.problem, cfg.mpc.params, self.fns, theta,
                                                           plant={"name": cfg.env.name, "params": cfg.env.params}))
        rows = [{"trial": t.number + 1, "cost": t.value, "feasible": self._feasible(t),
                 "worst_step": t.user_attrs.get("worst_step"), **t.params} for t in done]
        with open(self.out / "trials.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["trial"])
            writer.writeheader()
            writer.writerows(rows)
        head = ["trial", "cost", "feasible", "worst_step", *(label for label, _ in self.entries)]
        budget = "" if self.budget is None else f" (budget {self.budget:g} {self.cost_unit or 'device unit'} per step)"
        lines = [f"# Bayesian tuning: {len(done)} trials, best {best.value:.4g} (trial {best.number + 1}){budget}"
                 if best else f"# Bayesian tuning: {len(done)} trials, none feasible{budget}", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join("–" if r.get(h) is None else f"{r[h]:.0f}" if h == "worst_step" else
                                    (f"{r[h]:.4g}" if isinstance(r.get(h), float) else str(r[h])) for h in head)
                  + " |" for r in rows]
        (self.out / "trials.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._plot(done)
        final = float(best.value) if best is not None else math.nan
        summary = {
            "config": str(cfg.source), "agent": "bayes", "steps": len(done), "episodes": 0, "wall_time_s": wall,
            "ms_per_step": 1e3 * wall / max(len(done), 1), "greedy_cost_initial": initial,
            "greedy_cost_final": final, "greedy_cost_ratio": final / initial if initial else math.nan,
            "evaluation": vars(cfg.evaluation), "updates": len(done), "budget": self.budget,
            "feasible_trials": len(feasible), "best_trial": None if best is None else best.number + 1,
            "mpc_failures": {"V": 0, "Q": 0, "skipped_updates": 0, "messages": {}},
            "theta_initial": {k: v.tolist() for k, v in self.fns.theta.unflatten(self.theta0).items()},
            "theta_final": {k: v.tolist() for k, v in self.fns.theta.unflatten(theta).items()},
            "outputs": {"theta": "theta.json", "trials": "trials.md", "plot": "bayes.png", "study": "study.db"},
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
        complete_output_folder(self.out, "train")
        return summary

    def _plot(self, done: list[Any]) -> None:
        """Cost against trial (over-budget trials marked, the best feasible so far, θ0's level); with a
        measured worst step, a second panel of it against trial with the budget."""
        from rlmpc.toolkit import figures

        worst = [t.user_attrs.get("worst_step") for t in done]
        measured = any(w is not None for w in worst)
        fig, axes = figures.subplots(2 if measured else 1, 1, figsize=(8, 6.4 if measured else 4.2), sharex=True,
                                     squeeze=False, constrained_layout=True)
        ax = axes[0, 0]
        n = [t.number + 1 for t in done]
        cost = [float(t.value) for t in done]
        ok = [self._feasible(t) for t in done]
        ax.scatter([a for a, f in zip(n, ok, strict=True) if f], [c for c, f in zip(cost, ok, strict=True) if f],
                   s=18, color="tab:blue", label="trial" if self.budget is None else "trial (feasible)")
        if not all(ok):
            ax.scatter([a for a, f in zip(n, ok, strict=True) if not f],
                       [c for c, f in zip(cost, ok, strict=True) if not f], s=26, marker="x", color="tab:red",
                       label=f"trial over the budget ({self.budget:g})")
        best, line = math.inf, []
        for c, f in zip(cost, ok, strict=True):
            best = min(best, c) if f else best
            line.append(best)
        ax.step(n, line, where="post", color="k", lw=1.8, label="best feasible so far")
        if done:
            ax.axhline(cost[0], color="0.5", ls="--", lw=1, label=f"θ0: {cost[0]:.4g}")
        ax.set_yscale("log")
        ax.set_ylabel("greedy closed-loop cost\n(evaluation episodes)")
        ax.legend(loc="upper right", fontsize=9)
        ax.grid(alpha=0.3)
        if measured:
            ax2 = axes[1, 0]
            w = [math.nan if v is None else float(v) for v in worst]
            ax2.scatter([a for a, f in zip(n, ok, strict=True) if f], [v for v, f in zip(w, ok, strict=True) if f],
                        s=18, color="tab:blue", label="trial" if self.budget is None else "feasible")
            if not all(ok):
                ax2.scatter([a for a, f in zip(n, ok, strict=True) if not f],
                            [v for v, f in zip(w, ok, strict=True) if not f], s=26, marker="x", color="tab:red",
                            label="over the budget")
            if self.budget is not None:
                ax2.axhline(self.budget, color="tab:red", ls="--", lw=1.2, label=f"budget {self.budget:g}")
            ax2.set_ylabel(f"worst cost per step\n({self.cost_unit or 'device unit'})")
            ax2.set_yscale("log")
            ax2.legend(loc="upper right", fontsize=9)
            ax2.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("trial")
        fig.savefig(self.out / "bayes.png", dpi=110)
