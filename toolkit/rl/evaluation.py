"""Greedy closed-loop evaluation of θ on fixed noise realisations; its history over a run, the best θ
and the divergence guard."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.rl import plant_io


def greedy_cost(fns: ProblemFunctions, options: SolverOptions, theta: FloatArray,
                make_env: Callable[[], gym.Env[Any, Any]], episodes: int, steps: int,
                seed: int, plant: str = "plant") -> float:
    """Mean over episodes of the summed stage cost of the greedy MPC policy.

    Episode e resets the plant with seed ``seed + e``, so two θ are compared on the
    same initial states and disturbances.  A separate MPC instance is used so that
    evaluation leaves the learner's warm starts untouched.
    """
    mpc = MPC(fns, options, theta=theta)
    totals = []
    try:
        for e in range(episodes):
            env = make_env()
            s = plant_io.reset(env, plant, fns.nx, seed + e)
            total, last = 0.0, np.zeros(fns.nu)
            for t in range(steps):
                sol = mpc.value(s)
                action = sol.u0 if np.all(np.isfinite(sol.u0)) else last
                action = np.clip(action, fns.u_lb, fns.u_ub)
                s, cost, terminated = plant_io.step(env, plant, fns.nx, action,
                                                    f"evaluation episode {e}, step {t}")
                total += cost
                last = action
                if terminated:
                    break
            totals.append(total)
    finally:
        mpc.close()
    return float(np.mean(totals))


GUARD_ACTIONS = ("rollback", "stop")


def _percent(change: float) -> str:
    """A relative change with two decimals, or two significant digits where it is smaller (a change is
    never shown as +0.00 %)."""
    return f"{change:+.2f}" if change == 0.0 or abs(change) >= 0.005 else f"{change:+.2g}"


@dataclass(frozen=True)
class Guard:
    """Divergence guard: when a periodic evaluation scores worse than ``worse_than_initial`` × the
    initial θ's cost, roll back to the best θ so far and multiply the learning rate by ``shrink``
    (``action = "rollback"``), or roll back and stop (``"stop"``)."""

    worse_than_initial: float = 2.0
    action: str = "rollback"
    shrink: float = 0.5

    def tripped(self, cost: float, initial: float) -> bool:
        """``cost`` beyond the threshold (costs of either sign: the excess over the initial cost
        is compared with ``(worse_than_initial − 1)·|initial|``); a non-finite cost always trips."""
        if not np.isfinite(cost):
            return True
        return bool(cost - initial > (self.worse_than_initial - 1.0) * abs(initial))


def worse(cost: float, reference: float) -> bool:
    """``cost`` worse than ``reference`` beyond rounding (the same noise each time: no other slack)."""
    return bool(not np.isfinite(cost) or cost > reference + 1e-9 * max(1.0, abs(reference)))


@dataclass
class Verdict:
    """What one periodic evaluation found."""

    step: int
    cost: float
    best: bool
    action: str | None  # the guard's action, if it tripped


@dataclass
class EvaluationHistory:
    """Greedy closed-loop scores of θ over a run: the initial θ, every K steps, the final θ; the best
    θ so far and the guard's decisions.

    ``score(θ)`` is a deterministic greedy closed-loop cost (same initial states and noise each
    call, e.g. :func:`greedy_cost`), so scores are comparable.  Reusable outside `Trainer` (a
    sweep trial calls :meth:`evaluate` and reports the cost); :meth:`to_dict` is what
    ``evaluation.json`` holds.
    """

    guard: Guard | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    best_theta: list[float] | None = None
    best_cost: float = float("inf")
    best_step: int = -1

    @property
    def initial_cost(self) -> float:
        return float(self.records[0]["cost"]) if self.records else float("nan")

    def evaluate(self, score: Callable[[FloatArray], float], theta: FloatArray, step: int,
                 kind: str = "periodic") -> Verdict:
        """Score ``theta`` at ``step`` (``kind``: "initial", "periodic" or "final"), record it, update
        the best θ, and say whether the guard trips (never on the initial θ)."""
        cost = float(score(theta))
        best = bool(np.isfinite(cost) and cost < self.best_cost)
        if best:
            self.best_cost, self.best_step = cost, step
            self.best_theta = [float(v) for v in theta]
        action = None
        if self.guard is not None and self.records and self.guard.tripped(cost, self.initial_cost):
            action = self.guard.action
        self.records.append({"step": step, "kind": kind, "cost": cost, "best": best, "guard": action,
                             "theta": [float(v) for v in theta]})
        return Verdict(step, cost, best, action)

    def to_dict(self) -> dict[str, Any]:
        return {"guard": None if self.guard is None else vars(self.guard).copy(),
                "initial_cost": self.initial_cost, "best_cost": self.best_cost, "best_step": self.best_step,
                "best_theta": self.best_theta, "records": self.records}

    def save_json(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def plot(self, path: Path) -> Path:
        """Greedy cost against training step, the initial θ's level, the best θ and guard events."""
        from rlmpc.toolkit import figures

        steps = np.array([r["step"] for r in self.records], dtype=float)
        cost = np.array([r["cost"] for r in self.records], dtype=float)
        fig, ax = figures.subplots(figsize=(7, 3.8), constrained_layout=True)
        periodic = any(r["kind"] == "periodic" for r in self.records)
        if periodic:  # a history: joined
            ax.plot(steps, cost, "o-", ms=4, label="greedy closed-loop cost")
        else:  # only θ₀ and the final θ: two points, no trend between them
            ax.plot(steps, cost, "o", ms=7, label="greedy closed-loop cost (θ₀, final θ)")
            if len(cost) == 2 and np.isfinite(cost).all() and cost[0] != 0:
                ax.annotate(f"{_percent(100 * (cost[1] / cost[0] - 1))} % vs θ₀", (steps[1], cost[1]),
                            xytext=(-10, 12), textcoords="offset points", ha="right", fontsize=9)
        ax.axhline(self.initial_cost, color="0.4", ls="--", lw=1, label="initial θ")
        if self.guard is not None and np.isfinite(self.initial_cost):
            limit = self.initial_cost + (self.guard.worse_than_initial - 1.0) * abs(self.initial_cost)
            ax.axhline(limit, color="tab:red", ls=":", lw=1,
                       label=f"guard ({self.guard.worse_than_initial:g} × initial)")
        if self.best_step >= 0:
            ax.plot([self.best_step], [self.best_cost], "*", ms=14, color="tab:green", label="best θ")
        for kind, marker in (("rollback", "v"), ("stop", "X")):
            at = [i for i, r in enumerate(self.records) if r["guard"] == kind]
            if at:
                ax.plot(steps[at], cost[at], marker, ms=9, color="tab:red", label=f"guard: {kind}")
        finite = cost[np.isfinite(cost)]
        if finite.size and np.all(finite > 0) and finite.max() > 20 * finite.min():
            ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("greedy cost (same noise each time)")
        ax.set_title("periodic evaluation" if periodic else
                     "θ₀ and the final θ (no [evaluation] every: nothing evaluated in between)", fontsize=10)
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=100)
        return path
