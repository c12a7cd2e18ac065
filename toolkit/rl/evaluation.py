"""Greedy closed-loop evaluation of a θ on fixed noise realisations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from toolkit.mpc import MPC
from toolkit.options import SolverOptions
from toolkit.parameters import FloatArray
from toolkit.problem import ProblemFunctions


def greedy_cost(fns: ProblemFunctions, options: SolverOptions, theta: FloatArray,
                make_env: Callable[[], gym.Env[Any, Any]], episodes: int, steps: int,
                seed: int) -> float:
    """Mean over episodes of the summed stage cost of the greedy MPC policy.

    Episode e resets the plant with seed ``seed + e``, so two θ are compared on the
    same initial states and disturbances.  A separate MPC instance is used so that
    evaluation leaves the learner's warm starts untouched.
    """
    mpc = MPC(fns, options, theta=theta)
    totals = []
    try:
        for e in range(episodes):
            env = make_env()
            obs, info = env.reset(seed=seed + e)
            s = np.asarray(info.get("state", obs), dtype=float).ravel()
            total, last = 0.0, np.zeros(fns.nu)
            for _ in range(steps):
                sol = mpc.value(s)
                action = sol.u0 if np.all(np.isfinite(sol.u0)) else last
                action = np.clip(action, fns.u_lb, fns.u_ub)
                obs, reward, terminated, _, info = env.step(action)
                total += float(info["cost"]) if "cost" in info else -float(reward)
                s = np.asarray(info.get("state", obs), dtype=float).ravel()
                last = action
                if terminated:
                    break
            totals.append(total)
    finally:
        mpc.close()
    return float(np.mean(totals))
