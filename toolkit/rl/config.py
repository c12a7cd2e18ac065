"""The training configuration (TOML), validated key by key.

Every error names the file, the key and what was expected, e.g.
``lti.toml: agent.order: expected 1 or 2, got 3``.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.registry import ENVS, PROBLEMS, plugin_hint
from rlmpc.toolkit.rl.evaluation import GUARD_ACTIONS, Guard


class ConfigError(ValueError):
    """A malformed training configuration."""


_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
          dict: "a table", list: "a list"}


class _Table:
    """Read keys of one TOML table, remembering which were used."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'top level'}: expected a table, got {type(data).__name__}")
        self.data, self.path = data, path
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type, default: Any = ..., *, positive: bool = False,
            non_negative: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                close = difflib.get_close_matches(key, [str(k) for k in self.data], n=1)
                hint = f"; found {self._key(close[0])!r}: a typo?" if close else ""
                raise ConfigError(f"{self._key(key)}: missing (expected {_TYPES[kind]}){hint}")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{self._key(key)}: expected {_TYPES[kind]}, got {value!r}")
        if positive and value <= 0:
            raise ConfigError(f"{self._key(key)}: expected a positive value, got {value!r}")
        if non_negative and value < 0:
            raise ConfigError(f"{self._key(key)}: expected a value >= 0, got {value!r}")
        return value

    def table(self, key: str, required: bool = False) -> _Table:
        self.used.add(key)
        if key not in self.data and required:
            raise ConfigError(f"{self._key(key)}: missing table [{self._key(key)}]")
        return _Table(self.data.get(key, {}), self._key(key))

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self._key(unknown[0])}: unknown key"
                              + (f" (also {unknown[1:]})" if len(unknown) > 1 else "")
                              + f"; expected some of {sorted(self.used)}")


@dataclass(frozen=True)
class EnvConfig:
    name: str
    params: dict[str, Any]


@dataclass(frozen=True)
class MpcConfig:
    problem: str
    params: dict[str, Any]
    solver: SolverOptions
    theta: dict[str, Any]


@dataclass(frozen=True)
class AgentConfig:
    type: str
    discount: float | None
    order: int
    hessian: str
    update_every: int
    rollout_length: int | None
    critic: str
    on_failure: str
    optimizer: dict[str, Any]
    exploration: dict[str, Any] | None
    replay: dict[str, int]
    bayes: dict[str, Any] | None = None  # agent.type = "bayes": [agent.bayes] (trials, tune, seed)
    native: bool = True  # the compiled learning step where it applies (false: the Python path only)


@dataclass(frozen=True)
class EvaluationConfig:
    episodes: int = 5
    steps: int = 100
    seed: int = 1000
    every: int = 0  # greedy evaluation every so many training steps (0: initial and final θ only)
    guard: Guard | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, from ``rlmpc train CONFIG.toml``."""

    source: Path
    seed: int
    episodes: int
    steps: int
    checkpoint_every: int
    output: Path
    env: EnvConfig
    mpc: MpcConfig
    agent: AgentConfig
    evaluation: EvaluationConfig
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def digest(self) -> str:
        """Hash of the configuration content (a resumed run must match it), without the keys that do not
        change a run's numbers (`RESUME_FREE`: e.g. ``agent.native``, the same bits either way)."""
        return hashlib.sha256(json.dumps(resume_relevant(self.raw), sort_keys=True,
                                         default=str).encode()).hexdigest()


RESUME_FREE = (("agent", "native"),)
"""Configuration keys a run may change between a checkpoint and its ``--resume``."""


def resume_relevant(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without the `RESUME_FREE` keys."""
    out = dict(raw)
    for table, key in RESUME_FREE:
        if isinstance(out.get(table), dict) and key in out[table]:
            out[table] = {k: v for k, v in out[table].items() if k != key}
    return out


AGENT_TYPES = ("lstd_q", "dpg", "bayes")


def load_config(path: str | Path, output: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a training configuration; raises ConfigError naming file and key.
    ``overrides``: keys replaced, dotted for nested tables (``{"steps": 2000}`` from ``rlmpc train
    --steps``, ``{"agent.optimizer.learning_rate": 0.1}`` from a sweep; a resumed run must be given
    the same)."""
    src = Path(path)
    try:
        data = tomllib.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{src}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{src}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{src}: not a text file (not UTF-8); expected a TOML configuration") from None
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read it ({exc.strerror or exc})") from None
    try:
        if any(v is not None for v in (overrides or {}).values()):
            _parse(copy.deepcopy(data), src, output)  # the file is valid as written, whatever overrides it
        for key, value in (overrides or {}).items():
            if value is not None:
                _set_dotted(data, key, value)
        return _parse(data, src, output)
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}") from None
    except ValueError as exc:  # from SolverOptions and friends
        raise ConfigError(f"{src}: {exc}") from None


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["agent"]["optimizer"]["learning_rate"] = value`` for ``key = "agent.optimizer.learning_rate"``
    (tables created on the way; a key under a value that is not a table is refused)."""
    *tables, last = key.split(".")
    node = data
    for i, name in enumerate(tables):
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(tables[:i + 1])}: expected a table to set {key!r} in, got {child!r}")
        node = child
    node[last] = value


def _bayes(table: _Table, seed: int) -> dict[str, Any]:
    """``[agent.bayes]``: ``trials`` (closed-loop scores), ``tune`` (the θ names searched; default all),
    ``seed`` (of the sampler; default the run's seed)."""
    trials = table.get("trials", int, 60, positive=True)
    tune = table.raw("tune", None)
    if tune is not None and not (isinstance(tune, list) and tune and all(isinstance(n, str) for n in tune)):
        raise ConfigError(f"agent.bayes.tune: expected a non-empty list of θ names, got {tune!r}")
    sampler_seed = table.get("seed", int, seed, non_negative=True)
    table.done()
    return {"trials": trials, "tune": tune, "seed": sampler_seed}


def _guard(table: _Table) -> Guard:
    """``[evaluation] guard = { worse_than_initial = 2.0, action = "rollback" | "stop", shrink = 0.5 }``."""
    factor = table.get("worse_than_initial", float, 2.0)
    if not factor >= 1.0:
        raise ConfigError(f"{table.path}.worse_than_initial: expected a number >= 1, got {factor!r}")
    action = table.get("action", str, "rollback")
    if action not in GUARD_ACTIONS:
        raise ConfigError(f"{table.path}.action: expected one of {list(GUARD_ACTIONS)}, got {action!r}")
    shrink = table.get("shrink", float, 0.5)
    if not 0.0 < shrink <= 1.0:
        raise ConfigError(f"{table.path}.shrink: expected a number in (0, 1], got {shrink!r}")
    table.done()
    return Guard(factor, action, shrink)


def _parse(data: dict[str, Any], src: Path, output: str | Path | None) -> TrainConfig:
    top = _Table(data, "")
    seed = top.get("seed", int, 0, non_negative=True)
    episodes = top.get("episodes", int, 1, positive=True)
    steps = top.get("steps", int, positive=True)
    checkpoint_every = top.get("checkpoint_every", int, 1000, positive=True)
    out = top.get("output", str, f"runs/{src.stem}")

    env_t = top.table("env", required=True)
    env_name = env_t.get("name", str)
    if env_name not in ENVS and not env_name.endswith(("-v0", "-v1", "-v2", "-v3", "-v4", "-v5")):
        raise ConfigError(f"env.name: unknown environment {env_name!r}; expected one of "
                          f"{sorted(ENVS)} or a gymnasium id {plugin_hint()}")
    env = EnvConfig(env_name, dict(env_t.table("params").data))
    env_t.done()

    mpc_t = top.table("mpc", required=True)
    problem = mpc_t.get("problem", str)
    if problem not in PROBLEMS:
        raise ConfigError(f"mpc.problem: unknown problem {problem!r}; expected one of {sorted(PROBLEMS)} "
                          f"{plugin_hint()}")
    solver = SolverOptions.from_dict(dict(mpc_t.table("solver").data), source="mpc.solver")
    mpc = MpcConfig(problem, dict(mpc_t.table("params").data), solver,
                    dict(mpc_t.table("theta").data))
    mpc_t.done()

    ag = top.table("agent", required=True)
    kind = ag.get("type", str)
    if kind not in AGENT_TYPES:
        raise ConfigError(f"agent.type: expected one of {list(AGENT_TYPES)}, got {kind!r}")
    discount = ag.get("discount", float, None)
    order = ag.get("order", int, 2)
    if order not in (1, 2):
        raise ConfigError(f"agent.order: expected 1 or 2, got {order}")
    hessian = ag.get("hessian", str, "approx")
    update_every = ag.get("update_every", int, 1, positive=True)
    rollout_length = ag.get("rollout_length", int, None)
    critic = ag.get("critic", str, "lstd")
    on_failure = ag.get("on_failure", str, "solution")
    optimizer = ag.get("optimizer", dict, {"type": "newton" if order == 2 else "sgd",
                                           "learning_rate": 1e-2})
    exploration = ag.get("exploration", dict, None)
    replay_t = ag.table("replay")
    replay = {"capacity": replay_t.get("capacity", int, 1, positive=True),
              "sample_size": replay_t.get("sample_size", int, 1, positive=True),
              "include_latest": replay_t.get("include_latest", int, 1)}
    replay_t.done()
    bayes = _bayes(ag.table("bayes"), seed) if kind == "bayes" else None
    native = ag.get("native", bool, True)
    ag.done()
    agent = AgentConfig(kind, discount, order, hessian, update_every, rollout_length, critic,
                        on_failure, optimizer, exploration, replay, bayes, native)

    ev = top.table("evaluation")
    evaluation = EvaluationConfig(ev.get("episodes", int, 5, positive=True),
                                  ev.get("steps", int, 100, positive=True),
                                  ev.get("seed", int, 1000, non_negative=True),
                                  ev.get("every", int, 0, non_negative=True),
                                  _guard(ev.table("guard")) if "guard" in ev.data else ev.raw("guard"))
    ev.done()
    if kind == "bayes" and (evaluation.every or evaluation.guard):
        raise ConfigError("evaluation.every/guard: only for learning agents (agent.type = \"bayes\" scores "
                          "every trial already)")
    if evaluation.guard is not None and not evaluation.every:
        raise ConfigError("evaluation.guard: needs evaluation.every = K (the guard acts on the periodic "
                          "evaluations)")
    top.done()
    return TrainConfig(src, seed, episodes, steps, checkpoint_every,
                       Path(output) if output is not None else Path(out), env, mpc, agent,
                       evaluation, raw=data)
