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

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Constant",
    "ExponentialDecay",
    "LinearDecay",
    "Schedule",
    "StepDecay",
    "schedule_from_config",
]

FloatArray = npt.NDArray[np.float64]

# ---------------------------------------------------------------- validation helpers (used package-wide)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _finite(value: object, name: str) -> float:
    """``value`` as a finite float, else ``ValueError("name: ...")``."""
    if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _positive(value: object, name: str) -> float:
    x = _finite(value, name)
    if x <= 0.0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return x


def _nonnegative(value: object, name: str) -> float:
    x = _finite(value, name)
    if x < 0.0:
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    return x


def _integer(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool | np.bool_) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


@contextmanager
def _field(field: str) -> Iterator[None]:
    """Prefix ``ValueError`` messages raised by constructors (``"name: ..."``) with ``field + "."``."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{field}.{err}") from None


def _check_keys(
    cfg: Mapping[str, Any], field: str, what: str, required: set[str], optional: set[str]
) -> None:
    """Reject unknown keys and report missing ones, naming the allowed keys."""
    allowed = required | optional | {"type"}
    expected = ", ".join(sorted(allowed))
    unknown = sorted(set(cfg) - allowed, key=str)
    if unknown:
        raise ValueError(f"{field}: unknown key(s) {unknown} for {what}; expected keys: {expected}")
    missing = sorted(required - set(cfg))
    if missing:
        raise ValueError(f"{field}: missing key(s) {missing} for {what}; expected keys: {expected}")


def _type_of(cfg: object, field: str, choices: tuple[str, ...]) -> str:
    """The ``"type"`` entry of a config dict, checked against ``choices``."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{field}: expected a dict with a 'type' key, got {cfg!r}")
    kind = cfg.get("type")
    if kind not in choices:
        raise ValueError(f"{field}.type: expected one of {list(choices)}, got {kind!r}")
    return str(kind)


def _array(value: object, name: str, *, allow_inf: bool = False) -> FloatArray:
    """``value`` as a float64 array without NaN (and without ±inf unless ``allow_inf``)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {value!r}") from None
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        what = "numbers (±inf allowed, no NaN)" if allow_inf else "finite numbers"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return arr


def _index(k: int) -> int:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool | np.bool_) or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")
    return int(k)


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
        object.__setattr__(self, "value", _finite(self.value, "value"))

    def __call__(self, k: int) -> float:
        _index(k)
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
        object.__setattr__(self, "initial", _finite(self.initial, "initial"))
        rate = _finite(self.rate, "rate")
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate: expected a number in (0, 1], got {self.rate!r}")
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "minimum", _finite(self.minimum, "minimum"))

    def __call__(self, k: int) -> float:
        return max(self.initial * self.rate ** _index(k), self.minimum)

    def to_config(self) -> dict[str, Any]:
        return {"type": "exponential", "initial": self.initial, "rate": self.rate, "minimum": self.minimum}


@dataclass(frozen=True)
class LinearDecay(Schedule):
    """Linear from ``initial`` (k = 0) to ``final`` (k = ``steps``), then constant ``final``."""

    initial: float
    final: float
    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial", _finite(self.initial, "initial"))
        object.__setattr__(self, "final", _finite(self.final, "final"))
        object.__setattr__(self, "steps", _integer(self.steps, "steps", 1))

    def __call__(self, k: int) -> float:
        k = _index(k)
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
        object.__setattr__(self, "initial", _finite(self.initial, "initial"))
        object.__setattr__(self, "factor", _positive(self.factor, "factor"))
        object.__setattr__(self, "every", _integer(self.every, "every", 1))

    def __call__(self, k: int) -> float:
        return self.initial * self.factor ** (_index(k) // self.every)

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
    if _is_number(value):
        try:
            return Constant(value)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"{field}: expected a finite number or a schedule dict, got {value!r}") from None
    if not isinstance(value, Mapping):
        kinds = list(_SCHEDULES)
        raise ValueError(
            f"{field}: expected a number or a schedule dict {{'type': {kinds}, ...}}, got {value!r}"
        )
    kind = _type_of(value, field, tuple(_SCHEDULES))
    cls, required, optional = _SCHEDULES[kind]
    _check_keys(value, field, f"schedule type '{kind}'", required, optional)
    kwargs = {key: val for key, val in value.items() if key != "type"}
    with _field(field):
        return cls(**kwargs)
