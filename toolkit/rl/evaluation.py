"""Greedy closed-loop evaluation of a θ on fixed noise realisations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.rl import plant_io


def greedy_cost(fns: ProblemFunctions, options: SolverOptions, theta: FloatArray,
                make_env: Callable[[], gym.Env[Any, Any]], episodes: int, steps: int,
                seed: int, plant: str = "plant") -> float:
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
            s = plant_io.reset(env, plant, fns.nx, seed + e)
            total, last = 0.0, np.zeros(fns.nu)
            for t in range(steps):
                sol = mpc.value(s)
                action = sol.u0 if np.all(np.isfinite(sol.u0)) else last
                action = np.clip(action, fns.u_lb, fns.u_ub)
                s, cost, terminated = plant_io.step(env, plant, fns.nx, action,
                                                    f"evaluation episode {e}, step {t}")
                total += cost
                last = action
                if terminated:
                    break
            totals.append(total)
    finally:
        mpc.close()
    return float(np.mean(totals))
