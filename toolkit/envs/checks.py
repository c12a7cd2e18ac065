"""Input checks shared by the plant environments: strict (a value of the wrong type is refused,
never coerced), each error one line naming the plant and the field."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def is_number(value: Any) -> bool:
    """A real number that is not a boolean (``True`` is not 1.0 here)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _numeric_array(env: str, what: str, value: Any) -> NDArray[np.float64]:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise ValueError(f"{env}: expected {what} of numbers, got an array of {value.dtype}")
        return value.astype(np.float64)
    if is_number(value):
        return np.array(float(value))

    def ok(v: Any) -> bool:
        return is_number(v) or (isinstance(v, list | tuple) and all(ok(x) for x in v))

    if not isinstance(value, list | tuple) or not ok(value):
        raise ValueError(f"{env}: expected {what} of numbers, got {value!r}")
    try:
        return np.array(value, dtype=np.float64)
    except ValueError:  # ragged nesting
        raise ValueError(f"{env}: expected {what} of numbers, got the ragged {value!r}") from None


def as_vector(env: str, what: str, value: ArrayLike, n: int) -> NDArray[np.float64]:
    """``value`` as a float64 vector of ``n`` entries, else a ValueError naming env and field."""
    arr = _numeric_array(env, what, value)
    if arr.size != n or (arr.ndim > 1 and max(arr.shape) != n):
        raise ValueError(f"{env}: expected {what} of shape ({n},), got {np.shape(value)}")
    out = arr.reshape(-1)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{env}: expected {what} of finite numbers, got {value!r}")
    return out


def as_matrix(env: str, what: str, value: Any, shape: tuple[int, int]) -> NDArray[np.float64]:
    """``value`` (nested lists) as a finite float64 matrix of ``shape``; a vector is accepted for a
    single column or row."""
    arr = _numeric_array(env, what, value)
    if arr.size != shape[0] * shape[1] or (arr.ndim == 2 and arr.shape != shape) or arr.ndim > 2:
        rows = "[" + ", ".join(["[" + ", ".join(["…"] * shape[1]) + "]"] * shape[0]) + "]"
        raise ValueError(f"{env}: expected {what} of shape {shape} ({rows}), got shape {np.shape(value)}")
    out = arr.reshape(shape)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{env}: expected {what} of finite numbers, got {value!r}")
    return out


def as_number(env: str, what: str, value: Any, *, positive: bool = False,
              non_negative: bool = False) -> float:
    """A finite real number (booleans and strings refused)."""
    if not is_number(value) or not np.isfinite(float(value)):
        raise ValueError(f"{env}: expected {what} (a number), got {value!r}")
    x = float(value)
    if positive and x <= 0.0:
        raise ValueError(f"{env}: expected {what} > 0, got {value!r}")
    if non_negative and x < 0.0:
        raise ValueError(f"{env}: expected {what} ≥ 0, got {value!r}")
    return x


def as_int(env: str, what: str, value: Any, *, minimum: int = 1) -> int:
    """An integer ≥ ``minimum`` (booleans and floats refused)."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{env}: expected {what} (an integer ≥ {minimum}), got {value!r}")
    return int(value)


def as_flag(env: str, what: str, value: Any) -> bool:
    """``True`` or ``False`` only (1, "yes", [..] refused)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{env}: expected {what} (true or false), got {value!r}")
    return bool(value)
