"""The plant protocol and an adapter turning continuous-action gymnasium envs into plants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Plant(Protocol):
    """What the toolkit needs from a plant: a gymnasium-style env reporting its cost.

    ``step`` must return ``info["cost"]`` (a float, the stage cost to minimise, equal to
    −reward); ``state`` is the current true state as a float64 array of shape (nx,),
    which may differ from the observation, and may be unavailable (AttributeError)
    before the first ``reset``.
    """

    @property
    def action_space(self) -> gym.spaces.Space[Any]:
        """The (continuous) action space."""
        ...

    @property
    def observation_space(self) -> gym.spaces.Space[Any]:
        """The observation space."""
        ...

    @property
    def state(self) -> NDArray[np.float64]:
        """The current true state."""
        ...

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode; returns (observation, info)."""
        ...

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Returns (observation, reward, terminated, truncated, info) with info["cost"]."""
        ...


StateFn = Callable[[gym.Env[Any, Any]], NDArray[np.float64]]


class GymPlant(gym.Wrapper[Any, Any, Any, Any]):
    """Adapter making any continuous-action gymnasium env a `Plant`.

    Adds ``info["cost"] = −reward`` and ``info["state"]`` (the true state) to the infos
    of ``reset`` (state only) and ``step``; observations and rewards pass through.

    Parameters
    ----------
    env
        The env to wrap; its action space must be a ``gymnasium.spaces.Box``.
    state_fn
        ``state_fn(env) -> np.ndarray`` reading the true state from the wrapped env
        (called with ``env`` as passed here). Default: the last observation.

    Raises
    ------
    ValueError
        If the action space is not a Box.
    """

    def __init__(self, env: gym.Env[Any, Any], state_fn: StateFn | None = None) -> None:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError("GymPlant: expected a continuous (Box) action space, "
                             f"got {env.action_space!r}")
        super().__init__(env)
        self.state_fn = state_fn
        self._last_obs: Any = None

    @property
    def state(self) -> NDArray[np.float64]:
        """The current true state, via ``state_fn`` or the last observation.

        Raises AttributeError before the first ``reset`` (as Pendulum-v1 does).
        """
        if self.state_fn is not None:
            raw = self.state_fn(self.env)
        elif self._last_obs is None:
            raise AttributeError("GymPlant.state: call reset() before reading the state")
        else:
            raw = self._last_obs
        return np.array(raw, dtype=np.float64).reshape(-1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the wrapped env; ``info["state"]`` holds the initial true state."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        return obs, {**info, "state": self.state}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env; adds ``info["cost"] = −reward`` and ``info["state"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._last_obs = obs
        info = {**info, "cost": -float(reward), "state": self.state}
        return obs, reward, terminated, truncated, info


def _pendulum_state(env: gym.Env[Any, Any]) -> NDArray[np.float64]:
    """(θ, θdot) of Pendulum-v1; θ is not wrapped to [−π, π)."""
    return np.array(env.unwrapped.state, dtype=np.float64)  # type: ignore[attr-defined]


def pendulum_plant(**kwargs: Any) -> GymPlant:
    """``Pendulum-v1`` (``gymnasium.make(..., **kwargs)``) with state (θ, θdot).

    Pendulum observes (cos θ, sin θ, θdot); the plant state is read from
    ``env.unwrapped.state``.
    """
    return GymPlant(gym.make("Pendulum-v1", **kwargs), state_fn=_pendulum_state)
