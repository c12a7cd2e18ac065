"""Validation helpers of the RL configuration: each raises ``ValueError("field: ...")``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]




def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def finite(value: object, name: str) -> float:
    """``value`` as a finite float, else ``ValueError("name: ...")``."""
    if not is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def positive(value: object, name: str) -> float:
    x = finite(value, name)
    if x <= 0.0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return x


def nonnegative(value: object, name: str) -> float:
    x = finite(value, name)
    if x < 0.0:
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    return x


def integer(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool | np.bool_) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


@contextmanager
def prefixed(field: str) -> Iterator[None]:
    """Prefix ``ValueError`` messages raised by constructors (``"name: ..."``) with ``field + "."``."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{field}.{err}") from None


def check_keys(
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


def config_type(cfg: object, field: str, choices: tuple[str, ...]) -> str:
    """The ``"type"`` entry of a config dict, checked against ``choices``."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{field}: expected a dict with a 'type' key, got {cfg!r}")
    kind = cfg.get("type")
    if kind not in choices:
        raise ValueError(f"{field}.type: expected one of {list(choices)}, got {kind!r}")
    return str(kind)


def as_array(value: object, name: str, *, allow_inf: bool = False) -> FloatArray:
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


def step_index(k: int) -> int:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool | np.bool_) or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")
    return int(k)
