"""Names that configuration files may use for problems and plant environments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from toolkit.envs import CartPole, GymPlant, LtiGrosZanon, pendulum_plant
from toolkit.envs.cartpole_incline import CartPoleIncline
from toolkit.problem import ParametricMPC
from toolkit.problems import cartpole_mpc, lti_mpc, pendulum_mpc
from toolkit.problems.cartpole_incline import cartpole_incline_mpc

PROBLEMS: dict[str, Callable[..., ParametricMPC]] = {
    "lti": lti_mpc, "cartpole": cartpole_mpc, "pendulum": pendulum_mpc,
    "cartpole_incline": cartpole_incline_mpc}
ENVS: dict[str, Callable[..., gym.Env[Any, Any]]] = {
    "LtiGrosZanon": LtiGrosZanon,
    "CartPole": CartPole,
    "CartPoleIncline": CartPoleIncline,
    "Pendulum-v1": pendulum_plant,
}


def make_problem(name: str, params: dict[str, Any]) -> ParametricMPC:
    """Build a registered problem; bad keyword arguments name the problem."""
    try:
        return PROBLEMS[name](**params)
    except TypeError as exc:
        raise ValueError(f"mpc.params: {exc}") from None


def make_env(name: str, params: dict[str, Any]) -> gym.Env[Any, Any]:
    """A registered plant, or any gymnasium id wrapped as a plant (cost = −reward)."""
    try:
        if name in ENVS:
            return ENVS[name](**params)
        return GymPlant(gym.make(name, **params))
    except TypeError as exc:
        raise ValueError(f"env.params: {exc}") from None
    except gym.error.Error as exc:
        raise ValueError(f"env.name: {exc}") from None
