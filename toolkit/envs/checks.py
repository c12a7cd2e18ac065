"""Input checks shared by the plant environments."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def as_vector(env: str, what: str, value: ArrayLike, n: int) -> NDArray[np.float64]:
    """``value`` as a float64 vector of ``n`` entries, else a ValueError naming env and field."""
    arr = np.array(value, dtype=np.float64).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{env}: expected {what} of shape ({n},), got {np.shape(value)}")
    return arr
