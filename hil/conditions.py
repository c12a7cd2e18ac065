"""Test conditions of a HIL run: measurement noise, input disturbances, real-time pacing.

The noise and disturbance sequences are drawn once per run from their own seeded generator, so
the device loop and the workstation reference loop see exactly the same realisations (step k of
both loops gets the same noise), and a run is repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NOISE_SEED_OFFSET = 0x51D0  # the noise generator's seed is the plant seed plus this


def _std(name: str, value: float | Sequence[float], n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected one standard deviation or {n}, got {np.shape(value)}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: expected finite values >= 0, got {arr.tolist()}")
    return np.array(arr)


@dataclass(frozen=True)
class Conditions:
    """What the plant adds to the ideal closed loop.

    Attributes
    ----------
    measurement_noise : float or sequence
        Standard deviation of zero-mean Gaussian noise on the state sent to the controller (per
        state, or one for all); the plant's true state is unaffected.
    input_disturbance : float or sequence
        Standard deviation of zero-mean Gaussian noise added to the controller's action before the
        plant applies it (per input, or one for all).
    period : float, optional
        Real-time pacing: one step every ``period`` seconds (e.g. the bundle's sampling time);
        steps whose round trip and plant step did not fit are counted as late.
    """

    measurement_noise: float | Sequence[float] = 0.0
    input_disturbance: float | Sequence[float] = 0.0
    period: float | None = None

    def __post_init__(self) -> None:
        if self.period is not None and not (np.isfinite(self.period) and self.period > 0):
            raise ValueError(f"period: expected a positive number of seconds, got {self.period}")

    def draw(self, seed: int, steps: int, nx: int, nu: int) -> tuple[np.ndarray, np.ndarray]:
        """The noise (``steps × nx``) and disturbance (``steps × nu``) sequences of a run."""
        sx = _std("measurement_noise", self.measurement_noise, nx)
        su = _std("input_disturbance", self.input_disturbance, nu)
        rng = np.random.default_rng(seed + NOISE_SEED_OFFSET)
        noise = rng.standard_normal((steps, nx)) * sx
        dist = rng.standard_normal((steps, nu)) * su
        return noise, dist

    def as_dict(self, nx: int, nu: int) -> dict[str, Any]:
        """The conditions with one standard deviation per state and per input."""
        return {"measurement_noise": _std("measurement_noise", self.measurement_noise, nx).tolist(),
                "input_disturbance": _std("input_disturbance", self.input_disturbance, nu).tolist(),
                "period": self.period}


__all__ = ["Conditions"]
