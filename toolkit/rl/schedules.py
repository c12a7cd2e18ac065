"""Schedules of a scalar (learning rate, exploration strength) over an update or step index ``k``.

Schedules are stateless functions of ``k``: whoever owns the counter (an optimiser, an agent)
checkpoints it, so a schedule never needs a ``state_dict``.

Configuration (`schedule_from_config`) accepts a plain number (a `Constant`) or a dict::

    {"type": "constant", "value": v}
    {"type": "exponential", "initial": a, "rate": r, "minimum": m}   # max(a·r^k, m); minimum optional, 0
    {"type": "linear", "initial": a, "final": b, "steps": n}         # a → b over k = 0..n, then b
    {"type": "step", "initial": a, "factor": f, "every": n}          # a·f^(k // n)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlmpc.toolkit.rl.checks import (
    check_keys,
    config_type,
    finite,
    integer,
    is_number,
    positive,
    prefixed,
    step_index,
)

__all__ = [
    "Constant",
    "ExponentialDecay",
    "LinearDecay",
    "Schedule",
    "StepDecay",
    "schedule_from_config",
]


# ---------------------------------------------------------------- schedules


class Schedule(ABC):
    """A scalar as a function of a non-negative integer index ``k``."""

    @abstractmethod
    def __call__(self, k: int) -> float:
        """The value at index ``k`` (``ValueError`` if ``k`` is not a non-negative integer)."""

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The config dict that `schedule_from_config` turns back into this schedule."""


@dataclass(frozen=True)
class Constant(Schedule):
    """Always ``value``."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", finite(self.value, "value"))

    def __call__(self, k: int) -> float:
        step_index(k)
        return self.value

    def to_config(self) -> dict[str, Any]:
        return {"type": "constant", "value": self.value}


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """``max(initial · rate^k, minimum)`` with ``0 < rate <= 1``."""

    initial: float
    rate: float
    minimum: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial", finite(self.initial, "initial"))
        rate = finite(self.rate, "rate")
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate: expected a number in (0, 1], got {self.rate!r}")
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "minimum", finite(self.minimum, "minimum"))

    def __call__(self, k: int) -> float:
        return max(self.initial * self.rate ** step_index(k), self.minimum)

    def to_config(self) -> dict[str, Any]:
        return {"type": "exponential", "initial": self.initial, "rate": self.rate, "minimum": self.minimum}


@dataclass(frozen=True)
class LinearDecay(Schedule):
    """Linear from ``initial`` (k = 0) to ``final`` (k = ``steps``), then constant ``final``."""

    initial: float
    final: float
    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial", finite(self.initial, "initial"))
        object.__setattr__(self, "final", finite(self.final, "final"))
        object.__setattr__(self, "steps", integer(self.steps, "steps", 1))

    def __call__(self, k: int) -> float:
        k = step_index(k)
        if k >= self.steps:
            return self.final
        return self.initial + (self.final - self.initial) * (k / self.steps)

    def to_config(self) -> dict[str, Any]:
        return {"type": "linear", "initial": self.initial, "final": self.final, "steps": self.steps}


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``initial · factor^(k // every)`` (piecewise constant) with ``factor > 0``."""

    initial: float
    factor: float
    every: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial", finite(self.initial, "initial"))
        object.__setattr__(self, "factor", positive(self.factor, "factor"))
        object.__setattr__(self, "every", integer(self.every, "every", 1))

    def __call__(self, k: int) -> float:
        return self.initial * self.factor ** (step_index(k) // self.every)

    def to_config(self) -> dict[str, Any]:
        return {"type": "step", "initial": self.initial, "factor": self.factor, "every": self.every}


_SCHEDULES: dict[str, tuple[type[Schedule], set[str], set[str]]] = {
    # type: (class, required keys, optional keys)
    "constant": (Constant, {"value"}, set()),
    "exponential": (ExponentialDecay, {"initial", "rate"}, {"minimum"}),
    "linear": (LinearDecay, {"initial", "final", "steps"}, set()),
    "step": (StepDecay, {"initial", "factor", "every"}, set()),
}


def schedule_from_config(value: float | int | Mapping[str, Any] | Schedule, field: str) -> Schedule:
    """Build a schedule from a number (→ `Constant`) or a config dict (see the module docstring).

    A `Schedule` instance is returned unchanged.  Errors are ``ValueError`` messages starting
    with ``field``, e.g. ``"agent.optimizer.learning_rate.rate: expected a number in (0, 1], got 2"``.
    """
    if isinstance(value, Schedule):
        return value
    if is_number(value):
        try:
            return Constant(value)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"{field}: expected a finite number or a schedule dict, got {value!r}") from None
    if not isinstance(value, Mapping):
        kinds = list(_SCHEDULES)
        raise ValueError(
            f"{field}: expected a number or a schedule dict {{'type': {kinds}, ...}}, got {value!r}"
        )
    kind = config_type(value, field, tuple(_SCHEDULES))
    cls, required, optional = _SCHEDULES[kind]
    check_keys(value, field, f"schedule type '{kind}'", required, optional)
    kwargs = {key: val for key, val in value.items() if key != "type"}
    with prefixed(field):
        return cls(**kwargs)
