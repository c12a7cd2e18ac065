"""Talking to a plant (a Gymnasium ``Env``) under the contract of the README: ``reset`` and
``step`` as Gymnasium's; the MPC's state is ``info["state"]`` (else the observation), the cost
``info["cost"]`` (else −reward).  A plant that breaks it is named in a one-line error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlmpc.toolkit.parameters import FloatArray


def plant_state(obs: Any, info: dict[str, Any]) -> FloatArray:
    """The MPC's state: ``info["state"]`` when the plant gives it, else the observation."""
    return np.asarray(info.get("state", obs), dtype=float).ravel()


def plant_cost(reward: float, info: dict[str, Any]) -> float:
    return float(info["cost"]) if "cost" in info else -float(reward)


class PlantError(ValueError):
    """A plant broke its contract."""


def _state(name: str, where: str, obs: Any, info: Any, nx: int) -> FloatArray:
    if (type(obs) is np.ndarray and obs.dtype == np.float64 and obs.shape == (nx,) and type(info) is dict
            and "state" not in info and np.isfinite(obs).all()):
        return obs  # fast path: the observation is the state, already as the checks below want it
    if not isinstance(info, dict):
        raise PlantError(f"plant {name}: {where}: info: expected a dict, got {type(info).__name__}")
    try:
        s = plant_state(obs, info)
    except (TypeError, ValueError) as exc:
        raise PlantError(f"plant {name}: {where}: state (info['state'] or the observation): {exc}") from None
    if s.size != nx or not np.all(np.isfinite(s)):
        raise PlantError(f"plant {name}: {where}: state (info['state'] or the observation): expected "
                         f"{nx} finite numbers, got {s.tolist()}")
    return s


def reset(env: Any, name: str, nx: int, seed: int | None) -> FloatArray:
    """Reset the plant; the MPC's initial state."""
    out = env.reset(seed=seed)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise PlantError(f"plant {name}: reset: expected (observation, info), got {type(out).__name__}")
    return _state(name, "reset", out[0], out[1], nx)


def step(env: Any, name: str, nx: int, action: FloatArray, where: str) -> tuple[FloatArray, float, bool]:
    """One plant step: (the MPC's next state, the step's cost, terminated)."""
    out = env.step(action)
    if not (isinstance(out, tuple) and len(out) == 5):
        raise PlantError(f"plant {name}: {where}: step: expected (observation, reward, terminated, "
                         f"truncated, info), got {len(out) if isinstance(out, tuple) else type(out).__name__}"
                         " values")
    obs, reward, terminated, _, info = out
    s = _state(name, where, obs, info, nx)
    if type(info) is dict and type(info.get("cost")) is float:  # fast path of plant_cost
        cost = info["cost"]
        if math.isfinite(cost):
            return s, cost, bool(terminated)
    try:
        cost = plant_cost(float(reward), info)
    except (TypeError, ValueError) as exc:
        raise PlantError(f"plant {name}: {where}: cost (info['cost'] or −reward): expected a number "
                         f"({exc})") from None
    if not np.isfinite(cost):
        raise PlantError(f"plant {name}: {where}: cost: expected a finite number, got {cost}")
    return s, cost, bool(terminated)
