"""Central finite differences, the reference the sensitivity tests compare against."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

FD_STEP = 1e-5  # relative step (absolute below 1)


def central_difference(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """∂f/∂x by central differences: shape f(x).shape + (x.size,), or (x.size,) for a scalar f."""
    cols = []
    for i in range(x.size):
        h = FD_STEP * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        cols.append((np.atleast_1d(f(xp)) - np.atleast_1d(f(xm))) / (2 * h))
    jac = np.stack(cols, axis=-1)
    return jac[0] if jac.shape[0] == 1 and np.ndim(f(x)) == 0 else jac
