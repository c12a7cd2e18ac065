"""The run-time settings a generated acados solver needs besides its code.

Applied by :class:`rlmpc.toolkit.mpc.MPC` and written as C constants into exported bundles:
the stage parameters ``[θ; p; γ^k]`` for k = 0..N, the input bounds, at stage 0
the constraint bounds ``lh/uh`` with the state rows relaxed to ±BIG_BOUND
(acados 0.2.2 has no separate ``h`` at stage 0 and x_0 is fixed), and the
per-stage slack penalties of :func:`rlmpc.toolkit.nlp.slack_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlmpc.toolkit.acados_build import BIG_BOUND, finite_bounds
from rlmpc.toolkit.nlp import slack_weights, stage_soft_rows
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions


@dataclass(frozen=True)
class StageSlacks:
    """Slack penalties of one stage: ``zl = zu = linear``, ``Zl = Zu = quadratic``."""

    linear: FloatArray
    quadratic: FloatArray


@dataclass(frozen=True)
class StartupSettings:
    """Everything a standalone solver sets once after creation (and x_0 per solve)."""

    stage_parameters: FloatArray  # (N+1, nθ + np + 1)
    lbu: FloatArray
    ubu: FloatArray
    lh0: FloatArray | None  # None when the problem has no h rows
    uh0: FloatArray | None
    slacks: tuple[StageSlacks | None, ...]  # per stage 0..N, None where no soft rows

    @property
    def np_stage(self) -> int:
        return int(self.stage_parameters.shape[1])


def startup_settings(fns: ProblemFunctions, theta: FloatArray, p: FloatArray) -> StartupSettings:
    """The settings of ``MPC(fns, theta=theta, p=p)``, computed as ``MPC`` computes them."""
    N = fns.horizon
    weights = fns.discount ** np.arange(N + 1)
    block = np.concatenate([np.asarray(theta, dtype=float), np.asarray(p, dtype=float)])
    stage_parameters = np.hstack([np.tile(block, (N + 1, 1)), weights[:, None]])
    lbu, ubu = finite_bounds(fns.u_lb, fns.u_ub)
    lh0 = uh0 = None
    if fns.state_rows.n + fns.path_rows.n:
        big = np.full(fns.state_rows.n, BIG_BOUND)
        path_lb, path_ub = finite_bounds(fns.path_rows.lb, fns.path_rows.ub)
        lh0 = np.concatenate([-big, path_lb])
        uh0 = np.concatenate([big, path_ub])
    slacks: list[StageSlacks | None] = []
    for k in range(N + 1):
        soft = stage_soft_rows(fns, k)
        if len(soft) == 0:
            slacks.append(None)
            continue
        wl, wq = slack_weights(fns, k)
        if k == 0 and fns.state_rows.n:
            wl = np.where(soft < fns.state_rows.n, np.maximum(wl, 1.0), wl)
        slacks.append(StageSlacks(np.asarray(wl, dtype=float), np.asarray(wq, dtype=float)))
    return StartupSettings(stage_parameters, lbu, ubu, lh0, uh0, tuple(slacks))
