"""Exploration strategies: random perturbations of the action an MPC policy returns.

Every strategy maps ``(action, rng, k)`` to a new float64 array of the action's shape, where ``rng``
is a `numpy.random.Generator` owned (and checkpointed) by the caller and ``k`` the step index fed to
the strategy's schedules.  Each call consumes a fixed amount of randomness, independent of the
outcome (ε-greedy always draws its uniform sample), so the caller's random stream does not depend on
exploration decisions.  Strategies do not clip: the caller clips to the action bounds.

Configuration (`exploration_from_config`); schedule-valued entries are numbers or schedule dicts
(see `rlmpc.toolkit.rl.schedules`), ``scale`` is a number or one non-negative number per action dimension::

    None or {"type": "none"}
    {"type": "epsilon_greedy", "epsilon": sched, "low": [...], "high": [...]}  # default box: action bounds
    {"type": "gaussian", "std": sched, "scale": [...]}                          # scale optional (1)
    {"type": "ou", "sigma": sched, "theta": 0.15, "dt": 1.0, "scale": [...]}    # all but sigma optional
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rlmpc.toolkit.rl.checks import (
    FloatArray,
    as_array,
    check_keys,
    config_type,
    finite,
    nonnegative,
    positive,
    prefixed,
    step_index,
)
from rlmpc.toolkit.rl.schedules import Schedule, schedule_from_config

__all__ = [
    "EpsilonGreedy",
    "Exploration",
    "Gaussian",
    "NoExploration",
    "OrnsteinUhlenbeck",
    "exploration_from_config",
]


def _scale_array(scale: npt.ArrayLike | None, name: str = "scale") -> FloatArray | None:
    if scale is None:
        return None
    arr = as_array(scale, name)
    if (arr < 0).any():
        raise ValueError(f"{name}: expected non-negative numbers, got {scale!r}")
    return arr


def _fit(arr: FloatArray | None, action: FloatArray, name: str) -> FloatArray | float:
    """``arr`` (scalar or one entry per action component) reshaped to the action's shape."""
    if arr is None:
        return 1.0
    if arr.size == 1:
        return float(arr.reshape(-1)[0])
    if arr.size != action.size:
        raise ValueError(f"{name}: expected 1 or {action.size} entries (the action size), got {arr.size}")
    return arr.reshape(action.shape)


class Exploration(ABC):
    """Base class of exploration strategies."""

    kind: ClassVar[str]
    """The ``"type"`` of the strategy in configs and state dicts."""

    @abstractmethod
    def perturb(self, action: npt.ArrayLike, rng: np.random.Generator, k: int) -> FloatArray:
        """The explored action (a new float64 array; the input is not modified)."""

    def reset(self) -> None:  # noqa: B027 - optional hook, a no-op for memoryless strategies
        """Start of an episode (clears any temporally correlated noise)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable internal state."""
        return {"type": self.kind}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by `state_dict`."""
        if not isinstance(state, Mapping) or state.get("type") != self.kind:
            got = state.get("type") if isinstance(state, Mapping) else state
            raise ValueError(f"state_dict.type: expected {self.kind!r}, got {got!r}")


class NoExploration(Exploration):
    """Returns the action unchanged (as a float64 copy)."""

    kind = "none"

    def perturb(self, action: npt.ArrayLike, rng: np.random.Generator, k: int) -> FloatArray:
        return np.array(action, dtype=np.float64)


class EpsilonGreedy(Exploration):
    """With probability ε(k), replace the action by a uniform sample in the finite box [low, high]."""

    kind = "epsilon_greedy"

    def __init__(self, epsilon: Schedule | float, low: npt.ArrayLike, high: npt.ArrayLike) -> None:
        self.epsilon = schedule_from_config(epsilon, "epsilon")
        self.low = as_array(low, "low")
        self.high = as_array(high, "high")
        if self.low.shape != self.high.shape:
            raise ValueError(f"high: expected the shape of low {self.low.shape}, got {self.high.shape}")
        if (self.low > self.high).any():
            raise ValueError(f"high: expected high >= low elementwise, got low={low!r}, high={high!r}")

    def perturb(self, action: npt.ArrayLike, rng: np.random.Generator, k: int) -> FloatArray:
        a = np.array(action, dtype=np.float64)
        if a.size != self.low.size:
            raise ValueError(f"action: expected {self.low.size} entries (the size of low), got {a.size}")
        eps = self.epsilon(k)
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"epsilon: expected a probability in [0, 1], got {eps} at k={k}")
        explore = rng.random() < eps
        sample = rng.uniform(self.low, self.high).reshape(a.shape)
        return sample if explore else a


class Gaussian(Exploration):
    """Adds independent N(0, (scale · std(k))²) noise to each action component."""

    kind = "gaussian"

    def __init__(self, std: Schedule | float, scale: npt.ArrayLike | None = None) -> None:
        self.std = schedule_from_config(std, "std")
        self.scale = _scale_array(scale)

    def perturb(self, action: npt.ArrayLike, rng: np.random.Generator, k: int) -> FloatArray:
        a = np.array(action, dtype=np.float64)
        std = self.std(k)
        if std < 0.0:
            raise ValueError(f"std: expected a non-negative value, got {std} at k={k}")
        return a + _fit(self.scale, a, "scale") * std * rng.standard_normal(a.shape)


class OrnsteinUhlenbeck(Exploration):
    """Temporally correlated noise ``n ← n − θ·n·dt + σ(k)·√dt·N(0, 1)``; returns ``action + scale·n``.

    ``n`` starts at zero, is cleared by `reset` and is part of the state dict; ``θ·dt`` must lie
    in [0, 1] (mean-reverting Euler–Maruyama discretisation).
    """

    kind = "ou"

    def __init__(
        self,
        sigma: Schedule | float,
        theta: float = 0.15,
        dt: float = 1.0,
        scale: npt.ArrayLike | None = None,
    ) -> None:
        self.sigma = schedule_from_config(sigma, "sigma")
        self.theta = nonnegative(theta, "theta")
        self.dt = positive(dt, "dt")
        if self.theta * self.dt > 1.0:
            raise ValueError(f"theta: expected theta·dt <= 1, got theta={theta!r} with dt={dt!r}")
        self.scale = _scale_array(scale)
        self.noise: FloatArray | None = None

    def perturb(self, action: npt.ArrayLike, rng: np.random.Generator, k: int) -> FloatArray:
        a = np.array(action, dtype=np.float64)
        sigma = self.sigma(step_index(k))
        if sigma < 0.0:
            raise ValueError(f"sigma: expected a non-negative value, got {sigma} at k={k}")
        n = np.zeros(a.shape) if self.noise is None else self.noise
        if n.shape != a.shape:
            raise ValueError(f"action: expected shape {n.shape} (that of the noise state), got {a.shape}")
        self.noise = n - self.theta * n * self.dt + sigma * np.sqrt(self.dt) * rng.standard_normal(a.shape)
        return a + _fit(self.scale, a, "scale") * self.noise

    def reset(self) -> None:
        self.noise = None

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "noise": None if self.noise is None else self.noise.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        noise = state.get("noise")
        self.noise = None if noise is None else as_array(noise, "state_dict.noise")


# ---------------------------------------------------------------- configuration

_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "none": (set(), set()),
    "epsilon_greedy": ({"epsilon"}, {"low", "high"}),
    "gaussian": ({"std"}, {"scale"}),
    "ou": ({"sigma"}, {"theta", "dt", "scale"}),
}


def _config_scale(cfg: Mapping[str, Any], field: str, nu: int) -> FloatArray | None:
    if cfg.get("scale") is None:
        return None
    scale = _scale_array(cfg["scale"], f"{field}.scale")
    if scale is not None and scale.size not in (1, nu):
        raise ValueError(
            f"{field}.scale: expected a number or {nu} entries (the action size), got {scale.size}"
        )
    return scale


def _non_negative_at_start(cfg: Any, field: str) -> Schedule:
    """A schedule of a standard deviation, checked at k = 0 (later values when they are used)."""
    schedule = schedule_from_config(cfg, field)
    if schedule(0) < 0.0:
        raise ValueError(f"{field}: expected a non-negative value, got {schedule(0)}")
    return schedule


def exploration_from_config(
    cfg: Mapping[str, Any] | None,
    action_low: npt.ArrayLike,
    action_high: npt.ArrayLike,
    field: str = "agent.exploration",
) -> Exploration:
    """Build an exploration strategy from a config dict (see the module docstring).

    ``action_low``/``action_high`` (±inf allowed) give the action size and the default ε-greedy
    box, which must then be finite.
    """
    low = as_array(action_low, "action_low", allow_inf=True).reshape(-1)
    high = as_array(action_high, "action_high", allow_inf=True).reshape(-1)
    if low.shape != high.shape:
        raise ValueError(
            f"action_high: expected {low.size} entries (the size of action_low), got {high.size}"
        )
    if cfg is None:
        return NoExploration()
    kind = config_type(cfg, field, tuple(_KEYS))
    check_keys(cfg, field, f"exploration type '{kind}'", *_KEYS[kind])
    nu = low.size
    if kind == "none":
        return NoExploration()
    if kind == "epsilon_greedy":
        epsilon = schedule_from_config(cfg["epsilon"], f"{field}.epsilon")
        box = {}
        for name, default in (("low", low), ("high", high)):
            value = cfg.get(name)
            arr = as_array(default if value is None else value, f"{field}.{name}", allow_inf=True).reshape(-1)
            if arr.size == 1:
                arr = np.full(nu, arr[0])
            if arr.size != nu:
                raise ValueError(f"{field}.{name}: expected {nu} entries (the action size), got {arr.size}")
            if not np.isfinite(arr).all():
                hint = "" if value is not None else f" (the action bounds are not finite: give '{name}')"
                raise ValueError(f"{field}.{name}: expected finite numbers{hint}, got {arr.tolist()}")
            box[name] = arr
        with prefixed(field):
            return EpsilonGreedy(epsilon, box["low"], box["high"])
    scale = _config_scale(cfg, field, nu)
    if kind == "gaussian":
        return Gaussian(_non_negative_at_start(cfg["std"], f"{field}.std"), scale)
    sigma = _non_negative_at_start(cfg["sigma"], f"{field}.sigma")
    theta = finite(cfg.get("theta", 0.15), f"{field}.theta")
    dt = finite(cfg.get("dt", 1.0), f"{field}.dt")
    with prefixed(field):
        return OrnsteinUhlenbeck(sigma, theta=theta, dt=dt, scale=scale)
