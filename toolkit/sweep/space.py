"""A sweep file (TOML): the search space over training-configuration keys and how to run it.

Example::

    [space]                                   # any key of the training configuration, dotted
    "agent.optimizer.learning_rate" = { loguniform = [1e-3, 1e-1] }
    seed = { grid = [1, 2, 3, 4] }            # seeds are a dimension like any other
    "agent.order" = { choice = [1, 2] }

    [sweep]
    samples = 8          # draws of the random dimensions (uniform, loguniform, choice) per grid point
    seed = 0             # seeds those draws: the trial list is the same on every run and --resume
    metric = "greedy_cost_final"                 # from each trial's summary.json (lower is better)
    max_retries = 1      # a failed trial is run again this many times
    asha = { grace_period = 1, reduction_factor = 2 }   # optional early stopping on [evaluation] every

The trial list is expanded here, once, deterministically (grid points × samples), so a resumed
sweep and an uninterrupted one run exactly the same trials.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.toolkit.registry import make_env, make_problem
from rlmpc.toolkit.rl.config import ConfigError, TrainConfig, load_config
from rlmpc.toolkit.rl.exploration import exploration_from_config
from rlmpc.toolkit.rl.optimizers import optimizer_from_config

KINDS = ("grid", "choice", "uniform", "loguniform")
SWEEP_KEYS = ("samples", "seed", "metric", "max_retries", "asha")
METRICS = ("greedy_cost_final", "greedy_cost_ratio", "evaluation_best")


class SweepError(ValueError):
    """A malformed sweep file (the message names the file and the key)."""


@dataclass(frozen=True)
class Dimension:
    key: str
    kind: str
    values: tuple[Any, ...]  # grid/choice: the values; uniform/loguniform: (low, high)


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep: its index, name and the configuration keys it sets."""

    index: int
    overrides: dict[str, Any]

    @property
    def name(self) -> str:
        digest = hashlib.sha256(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:8]
        return f"trial_{self.index:04d}_{digest}"


@dataclass(frozen=True)
class SweepSpec:
    source: Path
    dimensions: tuple[Dimension, ...]
    samples: int = 1
    seed: int = 0
    metric: str = "greedy_cost_final"
    max_retries: int = 1
    asha: dict[str, float] | None = None
    trials: tuple[Trial, ...] = field(default=())


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SweepError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _dimension(key: str, spec: Any) -> Dimension:
    where = f"space.{key}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise SweepError(f"{where}: expected a table with one of {list(KINDS)}, e.g. "
                         f"{{ grid = [1, 2] }}, got {spec!r}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list):
        raise SweepError(f"{where}.{kind}: expected a list, got {values!r}")
    if kind in ("grid", "choice"):
        if not values:
            raise SweepError(f"{where}.{kind}: empty list (expected at least one value)")
        return Dimension(key, kind, tuple(values))
    if len(values) != 2:
        raise SweepError(f"{where}.{kind}: expected [low, high], got {values!r}")
    low, high = (_number(f"{where}.{kind}", v) for v in values)
    if not low < high:
        raise SweepError(f"{where}.{kind}: empty range [{low}, {high}] (expected low < high)")
    if kind == "loguniform" and low <= 0:
        raise SweepError(f"{where}.loguniform: expected 0 < low, got {low}")
    return Dimension(key, kind, (low, high))


def _draw(dim: Dimension, rng: np.random.Generator) -> Any:
    if dim.kind == "choice":
        return dim.values[int(rng.integers(len(dim.values)))]
    low, high = dim.values
    if dim.kind == "uniform":
        return float(rng.uniform(low, high))
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def expand(dimensions: tuple[Dimension, ...], samples: int, seed: int) -> tuple[Trial, ...]:
    """Every grid point × ``samples`` draws of the random dimensions (draws seeded by ``seed``); a
    configuration drawn twice (``choice``) is one trial."""
    grid = [d for d in dimensions if d.kind == "grid"]
    random_dims = [d for d in dimensions if d.kind != "grid"]
    rng = np.random.default_rng(seed)
    trials: list[Trial] = []
    seen: set[str] = set()
    for point in itertools.product(*(d.values for d in grid)):
        for _ in range(samples if random_dims else 1):
            overrides = {d.key: v for d, v in zip(grid, point, strict=True)}
            overrides.update({d.key: _draw(d, rng) for d in random_dims})
            key = json.dumps(overrides, sort_keys=True)
            if key in seen:  # (a choice drawn twice: the same training run, not run twice)
                continue
            seen.add(key)
            trials.append(Trial(len(trials), dict(sorted(overrides.items()))))
    return tuple(trials)


def load_sweep(path: str | Path, config: str | Path) -> SweepSpec:
    """Read a sweep file and check every trial's configuration against the training configuration
    ``config`` (an unknown key or a value of the wrong type is refused here, before Ray starts)."""
    src = Path(path)
    try:
        data = tomllib.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{src}: no such file") from None
    except UnicodeDecodeError:
        raise SweepError(f"{src}: not a text file (expected TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{src}: not valid TOML ({exc})") from None
    try:
        return _parse(data, src, Path(config))
    except SweepError as exc:
        raise SweepError(f"{src}: {exc}") from None


def _parse(data: dict[str, Any], src: Path, config: Path) -> SweepSpec:
    unknown = sorted(set(data) - {"space", "sweep"})
    if unknown:
        raise SweepError(f"{unknown[0]}: unknown table; expected [space] and [sweep]")
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise SweepError("space: missing or empty (expected at least one key to sweep)")
    dims = tuple(_dimension(str(k), v) for k, v in space.items())
    opts = data.get("sweep", {})
    if not isinstance(opts, dict):
        raise SweepError(f"sweep: expected a table, got {opts!r}")
    bad = sorted(set(opts) - set(SWEEP_KEYS))
    if bad:
        raise SweepError(f"sweep.{bad[0]}: unknown key; expected some of {list(SWEEP_KEYS)}")
    samples = opts.get("samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(f"sweep.samples: expected an integer >= 1, got {samples!r}")
    seed = opts.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"sweep.seed: expected an integer >= 0, got {seed!r}")
    metric = opts.get("metric", "greedy_cost_final")
    if metric not in METRICS:
        raise SweepError(f"sweep.metric: expected one of {list(METRICS)}, got {metric!r}")
    retries = opts.get("max_retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise SweepError(f"sweep.max_retries: expected an integer >= 0, got {retries!r}")
    asha = opts.get("asha")
    if asha is not None:
        if not isinstance(asha, dict) or set(asha) - {"grace_period", "reduction_factor"}:
            raise SweepError(f"sweep.asha: expected {{ grace_period = 1, reduction_factor = 2 }}, got {asha!r}")
        asha = {"grace_period": int(_number("sweep.asha.grace_period", asha.get("grace_period", 1))),
                "reduction_factor": _number("sweep.asha.reduction_factor", asha.get("reduction_factor", 2))}
        if asha["grace_period"] < 1 or asha["reduction_factor"] <= 1:
            raise SweepError("sweep.asha: expected grace_period >= 1 and reduction_factor > 1")
    trials = expand(dims, samples, seed)
    problems: dict[str, Any] = {}
    for trial in trials:  # every configuration the sweep will run is valid, or nothing runs
        try:
            check_trial(load_config(config, overrides=trial.overrides), problems)
        except (ConfigError, ValueError) as exc:
            keys = ", ".join(f"{k} = {v!r}" for k, v in trial.overrides.items())
            raise SweepError(f"space: the configuration with {keys} is refused: {exc}") from None
    return SweepSpec(src, dims, samples, seed, metric, retries, asha, trials)


def check_trial(cfg: TrainConfig, problems: dict[str, Any]) -> None:
    """What a training run checks at its start, without building a solver: the problem and plant
    parameters, the optimiser and the exploration (``problems`` caches built problems)."""
    key = json.dumps([cfg.mpc.problem, cfg.mpc.params], sort_keys=True, default=str)
    if key not in problems:
        problems[key] = make_problem(cfg.mpc.problem, cfg.mpc.params).build()
    fns = problems[key]
    optimizer_from_config(cfg.agent.optimizer, fns.theta.lower(), fns.theta.upper(), field="agent.optimizer")
    exploration_from_config(cfg.agent.exploration, fns.u_lb, fns.u_ub, field="agent.exploration")
    make_env(cfg.env.name, cfg.env.params).close()
