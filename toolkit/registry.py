"""Names that configuration files, θ files and bundles may use for problems and plants.

Your own: :func:`register_problem` / :func:`register_plant` in a module, and name the module in
``RLMPC_PLUGINS`` (comma-separated module names, importable from the working directory or
``PYTHONPATH``) so that every ``rlmpc`` command imports it first.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rlmpc.toolkit.envs import CartPole, GymPlant, LtiGrosZanon, pendulum_plant
from rlmpc.toolkit.envs.cartpole_incline import CartPoleIncline
from rlmpc.toolkit.envs.mass_chain import MassChain
from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc, lti_tracking_mpc, pendulum_mpc
from rlmpc.toolkit.problems.cartpole_incline import cartpole_incline_mpc
from rlmpc.toolkit.problems.mass_chain import mass_chain_mpc
from rlmpc.toolkit.problems.quadrotor import quadrotor_hover_mpc

PROBLEMS: dict[str, Callable[..., ParametricMPC]] = {
    "lti": lti_mpc, "lti_tracking": lti_tracking_mpc, "cartpole": cartpole_mpc, "pendulum": pendulum_mpc,
    "cartpole_incline": cartpole_incline_mpc, "quadrotor_hover": quadrotor_hover_mpc,
    "mass_chain": mass_chain_mpc}
ENVS: dict[str, Callable[..., gym.Env[Any, Any]]] = {
    "LtiGrosZanon": LtiGrosZanon,
    "CartPole": CartPole,
    "CartPoleIncline": CartPoleIncline,
    "Pendulum-v1": pendulum_plant,
    "MassChain": MassChain,
}


def register_problem(name: str, make: Callable[..., ParametricMPC]) -> None:
    """Make ``name`` usable in configurations (``[mpc] problem``), θ files and bundles."""
    PROBLEMS[name] = make


def register_plant(name: str, make: Callable[..., gym.Env[Any, Any]]) -> None:
    """Make ``name`` usable as a plant (``[env] name``, ``rlmpc hil --plant``)."""
    ENVS[name] = make


def load_plugins(names: str | None = None) -> None:
    """Import the modules named in ``RLMPC_PLUGINS`` (or ``names``): they register their own
    problems and plants."""
    text = os.environ.get("RLMPC_PLUGINS", "") if names is None else names
    for module in (m.strip() for m in text.split(",")):
        if not module:
            continue
        if "" not in sys.path:
            sys.path.insert(0, "")  # (the working directory, as for `python -m`)
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ValueError(f"RLMPC_PLUGINS: cannot import {module!r} "
                             f"({type(exc).__name__}: {exc})") from None


def plugin_hint() -> str:
    """What to say after an unknown problem or plant name: it may be a plugin's (RLMPC_PLUGINS)."""
    named = os.environ.get("RLMPC_PLUGINS", "").strip()
    if named:
        return (f"(a plugin's? RLMPC_PLUGINS={named} does not register it; README: "
                "\"Your own problem and plant\")")
    return "(a plugin's? set RLMPC_PLUGINS=module; README: \"Your own problem and plant\")"


def make_problem(name: str, params: dict[str, Any]) -> ParametricMPC:
    """Build a registered problem; bad keyword arguments name the problem."""
    if name not in PROBLEMS:
        raise ValueError(f"problem: unknown problem {name!r}; expected one of {sorted(PROBLEMS)} "
                         f"{plugin_hint()}")
    try:
        return PROBLEMS[name](**params)
    except TypeError as exc:
        raise ValueError(f"mpc.params: {exc}") from None


def plant_known(name: str) -> bool:
    """A registered plant or a gymnasium id."""
    return name in ENVS or name in gym.registry


def make_env(name: str, params: dict[str, Any]) -> gym.Env[Any, Any]:
    """A registered plant, or any gymnasium id wrapped as a plant (cost = −reward)."""
    try:
        if name in ENVS:
            accepted = _keywords(ENVS[name])
            unknown = sorted(set(params) - set(accepted)) if accepted is not None else []
            if unknown:
                raise ValueError(f"env.params: {name} has no parameter {unknown[0]!r}"
                                 + (f" (nor {unknown[1:]})" if len(unknown) > 1 else "")
                                 + f"; accepted keys: {', '.join(accepted or []) or '(none)'}")
            return ENVS[name](**params)
        return GymPlant(gym.make(name, **params))
    except TypeError as exc:
        raise ValueError(f"env.params: {exc}") from None
    except gym.error.Error as exc:
        raise ValueError(f"env.name: {exc}") from None


def _keywords(make: Callable[..., Any]) -> list[str] | None:
    """The keyword arguments ``make`` accepts (None if it takes ``**kwargs``: anything)."""
    try:
        sig = inspect.signature(make)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [n for n, p in sig.parameters.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
