"""The training loop: episodes of agent-environment interaction, checkpoints, outputs.

A checkpoint holds everything the future of the run depends on: θ, the
optimiser, exploration and replay state, the agent's random generator, the
environment (pickled, with its own random generator and state), the acados
warm starts and the history.  A run killed at any point and resumed from its
last checkpoint therefore reaches the same θ, bit for bit, as an uninterrupted
run with the same seed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from rlmpc.toolkit.blas_threads import single_threaded_blas
from rlmpc.toolkit.mpc import MPC, Verification
from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.registry import make_env, make_problem
from rlmpc.toolkit.rl import plant_io
from rlmpc.toolkit.rl.agent import MpcAgent
from rlmpc.toolkit.rl.config import ConfigError, TrainConfig, resume_relevant
from rlmpc.toolkit.rl.dpg import DeterministicPolicyGradient
from rlmpc.toolkit.rl.evaluation import EvaluationHistory, greedy_cost, worse
from rlmpc.toolkit.rl.exploration import exploration_from_config
from rlmpc.toolkit.rl.optimizers import optimizer_from_config
from rlmpc.toolkit.rl.plant_io import plant_state
from rlmpc.toolkit.rl.q_learning import LstdQLearning
from rlmpc.toolkit.rl.replay import ReplayBuffer

CHECKPOINT_NAME = "checkpoint.pkl"
CHECKPOINT_VERSION = 1
TRAIN_PROGRESS = (CHECKPOINT_NAME, "study.db")
"""What an unfinished ``rlmpc train`` run (learning or a Bayesian study) leaves for ``--resume``."""


def build_agent(config: TrainConfig, mpc: MPC, rng: np.random.Generator) -> MpcAgent:
    ag = config.agent
    discount = ag.discount if ag.discount is not None else mpc.fns.discount
    optimizer = optimizer_from_config(ag.optimizer, mpc.fns.theta.lower(), mpc.fns.theta.upper(),
                                      field="agent.optimizer")
    exploration = exploration_from_config(ag.exploration, mpc.fns.u_lb, mpc.fns.u_ub,
                                          field="agent.exploration")
    if ag.type == "lstd_q":
        replay = ReplayBuffer(ag.replay["capacity"], ag.replay["sample_size"],
                              ag.replay["include_latest"])
        return LstdQLearning(mpc, discount, optimizer, exploration, rng, replay, order=ag.order,
                             hessian=ag.hessian, update_every=ag.update_every,
                             failure_action=ag.on_failure, native=ag.native)
    return DeterministicPolicyGradient(mpc, discount, optimizer, exploration, rng,
                                       rollout_length=ag.rollout_length, critic=ag.critic,
                                       failure_action=ag.on_failure, native=ag.native)


@dataclass
class History:
    """What the run records, per step and per episode."""

    step_cost: list[float] = field(default_factory=list)
    td_error: list[float] = field(default_factory=list)
    theta: list[list[float]] = field(default_factory=list)
    episode_cost: list[float] = field(default_factory=list)


@dataclass
class Progress:
    """Where the loop is: enough to continue after a checkpoint."""

    episode: int = 0
    t: int = 0  # step within the episode
    total: int = 0
    state: FloatArray | None = None
    action: FloatArray | None = None
    episode_cost: float = 0.0
    initial_eval: float | None = None
    wall_time: float = 0.0
    cpu_time: float = 0.0  # this process' CPU time in training (less sensitive to other jobs than wall)
    stopped: str | None = None  # why the guard stopped the run early


def _last_finite(values: list[float], look_back: int = 10_000) -> float:
    """The last finite value among the last ``look_back`` (NaN if none): agents that update every
    so many steps (DPG) leave the steps between their updates without a TD error."""
    for v in reversed(values[-look_back:]):
        if np.isfinite(v):
            return v
    return float("nan")


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configurations (empty if ``old`` is unknown)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [prefix.rstrip(".")] if prefix and old != new else []
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


@contextlib.contextmanager
def _section(config: TrainConfig, key: str) -> Iterator[None]:
    """A ValueError while setting up from ``key`` names the configuration file and the key."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        text = str(exc)
        named = text.startswith(key.split(".")[0])  # (already names its key, e.g. agent.optimizer…)
        raise ConfigError(f"{config.source}: {text if named else f'{key}: {text}'}") from None


def _check_sizes(config: TrainConfig, env: gym.Env[Any, Any], mpc: MPC) -> None:
    """The plant's states (as the MPC sees them: ``info["state"]`` or the observation, after a
    reset with the run's seed, which the first episode repeats) and actions must be the MPC's."""
    obs, info = env.reset(seed=config.seed)
    shape = getattr(env.action_space, "shape", None)
    for what, size, n in (("states", plant_state(obs, info).size, mpc.fns.nx),
                          ("actions", None if shape is None else int(np.prod(shape)), mpc.fns.nu)):
        if size is not None and size != n:
            raise ConfigError(f"{config.source}: env.name: {config.env.name!r} has {what} of "
                              f"{size} entries, problem {config.mpc.problem!r} has {n}; expected "
                              "an environment of that problem")


TRAIN_OUTPUTS = ("checkpoint.pkl", "checkpoint.tmp", "theta.json", "theta.json.tmp", "history.npz",
                 "learning_curves.png", "theta_best.json", "theta_best.json.tmp", "evaluation.json",
                 "evaluation.json.tmp", "evaluation.png", "summary.json", "summary.json.tmp",
                 "device", "device_steps.npz", "device.json", "device_panel.png")  # (with --device/--port)


class Trainer:
    """Run (or resume) one training run described by a :class:`TrainConfig`."""

    def __init__(self, config: TrainConfig, progress_bar: bool = True, plots: bool = True) -> None:
        self.config = config
        self.plots = plots  # False: `rlmpc plot RUN` draws them later from the saved history
        self.folder_claimed = False  # (True: a caller claimed the output folder and wrote into it first)
        self.on_evaluation: Callable[[dict[str, Any]], None] | None = None
        """Called with each periodic evaluation's record (step, cost, best, guard, θ; e.g. a sweep
        reports the cost to Ray Tune)."""
        self.checkpoint_hooks: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
        """More state in the checkpoint: name -> (its state now, continue from a state) (e.g. the
        device's θ hash when learning through a device)."""
        self.out = config.output
        self.progress_bar = progress_bar
        with _section(config, "mpc.params"):
            problem = make_problem(config.mpc.problem, config.mpc.params)
        with _section(config, "mpc.theta"):
            self.mpc = MPC(problem, config.mpc.solver, theta=config.mpc.theta or None)
        self.theta0 = self.mpc.theta
        with _section(config, "env.params"):
            self.env: gym.Env[Any, Any] = make_env(config.env.name, config.env.params)
        _check_sizes(config, self.env, self.mpc)
        with _section(config, "agent"):
            self.agent = build_agent(config, self.mpc, np.random.default_rng(config.seed))
        self.history = History()
        self.progress = Progress()
        self.evaluations = EvaluationHistory(config.evaluation.guard)

    # --- checkpoints ----------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    def save_checkpoint(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": CHECKPOINT_VERSION, "config_digest": self.config.digest, "config": self.config.raw,
            "problem_hash": self.mpc.fns.problem_hash, "agent": self.agent.state_dict(),
            "env": self.env, "warm_start": self.mpc.warm_start_state(),
            "history": self.history, "progress": self.progress, "evaluations": self.evaluations,
            "verification": vars(self.mpc.verification).copy(),
            "extra": {name: state() for name, (state, _) in self.checkpoint_hooks.items()},
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint_path)  # atomic: a kill leaves the previous one intact

    def read_checkpoint(self) -> dict[str, Any]:
        """The checkpoint's content, checked against this run's configuration and problem (one-line
        ValueError); nothing is loaded (e.g. to refuse a resume before a device is started)."""
        path = self.checkpoint_path
        if not path.is_file():
            raise ValueError(f"--resume: no checkpoint at {path}")
        try:
            with open(path, "rb") as fh:
                payload = pickle.load(fh)  # the run's own file: trusted
        except Exception as exc:  # any unpickling failure: a damaged file
            raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
        version = payload.get("version") if isinstance(payload, dict) else None
        if version != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint format {version} is not supported")
        if payload["config_digest"] != self.config.digest:
            old = payload.get("config")
            changed = changed_keys(resume_relevant(old) if isinstance(old, dict) else old,
                                    resume_relevant(self.config.raw))
            raise ValueError(f"{path}: the checkpoint belongs to a different configuration "
                             f"than {self.config.source}"
                             + (f" (changed: {', '.join(changed)})" if changed else ""))
        if payload["problem_hash"] != self.mpc.fns.problem_hash:
            raise ValueError(f"{path}: the checkpoint belongs to a different MPC problem")
        return payload

    def finished(self, payload: dict[str, Any]) -> bool:
        """Whether the checkpoint ``payload`` is of a run that ended and wrote its outputs (a resume has
        nothing to do): its loop is done and summary.json was written after it."""
        pr = payload["progress"]
        summary = self.out / "summary.json"
        return bool((pr.episode >= self.config.episodes or pr.stopped) and summary.is_file()
                    and summary.stat().st_mtime >= self.checkpoint_path.stat().st_mtime)

    def load_checkpoint(self) -> None:
        payload = self.read_checkpoint()
        self.agent.load_state_dict(payload["agent"])
        self.env = payload["env"]
        self.mpc.load_warm_start_state(payload["warm_start"])
        self.history = payload["history"]
        self.progress = payload["progress"]
        self.evaluations = payload.get("evaluations") or EvaluationHistory(self.config.evaluation.guard)
        self.mpc.verification = Verification(**payload.get("verification", {}))
        extra = payload.get("extra") or {}
        for name, (_, load) in self.checkpoint_hooks.items():
            if name in extra:
                load(extra[name])

    # --- the loop ---------------------------------------------------------------------
    def evaluate(self, theta: FloatArray) -> float:
        ev = self.config.evaluation
        return greedy_cost(self.mpc.fns, self.config.mpc.solver, theta,
                           lambda: make_env(self.config.env.name, self.config.env.params),
                           ev.episodes, ev.steps, ev.seed, plant=self.config.env.name)

    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train (or continue from the checkpoint); the summary.  BLAS runs on one thread meanwhile
        (:func:`rlmpc.toolkit.blas_threads.single_threaded_blas`)."""
        with single_threaded_blas():
            return self._run(resume)

    def _run(self, resume: bool) -> dict[str, Any]:
        cfg = self.config
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_path.exists():
            raise ValueError(f"{self.checkpoint_path} exists: pass --resume to continue that run, "
                             "or choose another output folder")
        if not self.folder_claimed:
            claim_output_folder(self.out, "train", TRAIN_OUTPUTS, resume=resume, progress=TRAIN_PROGRESS)
        pr = self.progress
        if pr.initial_eval is None:
            pr.initial_eval = self.evaluations.evaluate(self.evaluate, self.theta0, 0, "initial").cost
        every = cfg.evaluation.every
        total = cfg.episodes * cfg.steps
        bar = tqdm(total=total, initial=pr.total, disable=not self.progress_bar, unit="step",
                   desc="training", dynamic_ncols=True)
        start = time.perf_counter() - pr.wall_time
        cpu_start = time.process_time() - pr.cpu_time
        try:
            while pr.episode < cfg.episodes:
                name, nx = cfg.env.name, self.mpc.fns.nx
                if pr.state is None:
                    pr.state = plant_io.reset(self.env, name, nx, cfg.seed if pr.episode == 0 else None)
                    pr.action = self.agent.begin_episode(pr.state)
                    pr.t, pr.episode_cost = 0, 0.0
                assert pr.action is not None
                s_next, cost, terminated = plant_io.step(self.env, name, nx, pr.action,
                                                         f"episode {pr.episode}, step {pr.t}")
                next_action, step_info = self.agent.observe(pr.state, pr.action, cost, s_next,
                                                            terminated)
                self.history.step_cost.append(cost)
                self.history.td_error.append(step_info.get("td_error", np.nan))
                self.history.theta.append(self.mpc.theta.tolist())
                pr.episode_cost += cost
                pr.t += 1
                pr.total += 1
                pr.state, pr.action = s_next, next_action
                if terminated or pr.t >= cfg.steps:
                    end_info = self.agent.end_episode()
                    if "td_error" in end_info:  # (an update at the episode's end, e.g. DPG's)
                        self.history.td_error[-1] = end_info["td_error"]
                    self.history.episode_cost.append(pr.episode_cost)
                    pr.episode += 1
                    pr.state = None
                    bar.update(cfg.steps - pr.t + 1 if terminated else 1)
                else:
                    bar.update(1)
                # (a disabled bar never advances bar.n: without this guard, every step)
                if self.progress_bar and (bar.n % 50 == 0 or pr.state is None):
                    td = _last_finite(self.history.td_error)
                    bar.set_postfix(episode=pr.episode + (pr.state is not None), cost=f"{cost:.3g}",
                                    td=f"{td:.2e}", failures=self.agent.failures.total)
                if every and pr.total % every == 0 and pr.total < total:
                    pr.wall_time = time.perf_counter() - start
                    pr.cpu_time = time.process_time() - cpu_start
                    self._periodic_evaluation(bar)
                    start = time.perf_counter() - pr.wall_time  # (evaluations are not training time)
                    cpu_start = time.process_time() - pr.cpu_time
                if pr.total % cfg.checkpoint_every == 0:
                    pr.wall_time = time.perf_counter() - start
                    pr.cpu_time = time.process_time() - cpu_start
                    self.save_checkpoint()
                if pr.stopped:
                    break
        finally:
            bar.close()
        pr.wall_time = time.perf_counter() - start
        pr.cpu_time = time.process_time() - cpu_start
        self.save_checkpoint()
        learned = self.mpc.theta
        final = self.evaluations.evaluate(self.evaluate, learned, pr.total, "final")
        restored = False
        if cfg.evaluation.guard is not None and worse(final.cost, pr.initial_eval):
            # with a guard, the run never ends on a θ worse than θ0: the best one evaluated
            self.mpc.theta = np.asarray(self.evaluations.best_theta)
            restored = True
        from rlmpc.toolkit.rl.outputs import write_outputs

        summary = write_outputs(self, final.cost, restored)
        complete_output_folder(self.out, "train")
        return summary

    def _periodic_evaluation(self, bar: Any) -> None:
        """Score θ greedily; with a guard that trips, roll back to the best θ (and shrink the
        learning rate, or stop)."""
        pr, hist = self.progress, self.evaluations
        verdict = hist.evaluate(self.evaluate, self.mpc.theta, pr.total)
        if self.on_evaluation is not None:
            self.on_evaluation(dict(hist.records[-1]))
        if verdict.action is None:
            return
        guard = self.config.evaluation.guard
        assert guard is not None and hist.best_theta is not None
        self.mpc.theta = np.asarray(hist.best_theta)
        reason = (f"greedy cost {verdict.cost:.4g} at step {pr.total} is more than "
                  f"{guard.worse_than_initial:g} × the initial {hist.initial_cost:.4g}")
        if verdict.action == "stop":
            pr.stopped = f"{reason}: stopped, θ rolled back to the best (step {hist.best_step})"
        else:
            self.agent.optimizer.lr_scale *= guard.shrink
            note = (f"{reason}: θ rolled back to the best (step {hist.best_step}), learning rate × "
                    f"{self.agent.optimizer.lr_scale:g}")
            if self.progress_bar:
                tqdm.write(f"guard: {note}")
