"""Stage-wise linear-quadratic model of the MPC around a trajectory, evaluated with CasADi.

For fixed θ and p, each stage k of the problem in :mod:`rlmpc.toolkit.problem` is
replaced by its first-order dynamics and constraints and its second-order cost
(all exact for a QP)::

    x_{k+1} = A_k x_k + B_k u_k + c_k
    cost_k  = ½ z_kᵀ W_k z_k + w_kᵀ z_k + const,   z_k = (x_k, u_k)
    lower_k ≤ C_k x_k + D_k u_k ≤ upper_k           (soft rows: per-row slack penalties)

The cost includes the discount γ^k of the stage cost and the undiscounted term;
the constraint rows of stage k are acados': the state rows for k = 1..N (charged
γ^(k-1)) and the path rows for k = 0..N-1 (charged γ^k); at k = 0 the state rows
are dropped because x_0 is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as cs
import numpy as np

from rlmpc.toolkit.nlp import slack_weights, stage_soft_rows
from rlmpc.toolkit.parameters import FloatArray, ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions, fix_theta


@dataclass(frozen=True)
class StageRows:
    """Affine constraint rows ``lower ≤ C x + D u ≤ upper`` of one stage, with slack penalties."""

    C: FloatArray
    D: FloatArray
    lower: FloatArray
    upper: FloatArray
    soft: np.ndarray
    w_lin: FloatArray
    w_quad: FloatArray
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """One stage: affine dynamics (absent at k = N), quadratic cost and constraint rows."""

    A: FloatArray
    B: FloatArray
    c: FloatArray
    W: FloatArray
    w: FloatArray
    rows: StageRows


@dataclass(frozen=True)
class LinearisedOcp:
    """The stages 0..N of the problem (stage N has no input: B, D have nu = 0 columns)."""

    name: str
    nx: int
    nu: int
    horizon: int
    stages: tuple[Stage, ...]
    u_lb: FloatArray
    u_ub: FloatArray


def _stage_rows(fns: ProblemFunctions, k: int, C: FloatArray, D: FloatArray,
                h: FloatArray) -> StageRows:
    """Rows of stage k in acados' order; bounds shifted by the constant part ``h − C x̄ − D ū``."""
    sr, pr = fns.state_rows, fns.path_rows
    last = k == fns.horizon
    names = [*(f"{n}@{k}" for n in sr.names), *([] if last else (f"{n}@{k}" for n in pr.names))]
    lb = np.concatenate([sr.lb] + ([] if last else [pr.lb]))
    ub = np.concatenate([sr.ub] + ([] if last else [pr.ub]))
    nrow = lb.size
    soft = np.zeros(nrow, dtype=bool)
    w_lin, w_quad = np.zeros(nrow), np.zeros(nrow)
    idx = stage_soft_rows(fns, k)
    wl, wq = slack_weights(fns, k)
    soft[idx], w_lin[idx], w_quad[idx] = True, wl, wq
    keep = np.arange(nrow) if k > 0 else np.arange(sr.n, nrow)  # x_0 is fixed: no state rows
    return StageRows(C=C[keep], D=D[keep], lower=(lb - h)[keep], upper=(ub - h)[keep],
                     soft=soft[keep], w_lin=w_lin[keep], w_quad=w_quad[keep],
                     labels=tuple(names[i] for i in keep))


def _functions(fns: ProblemFunctions) -> tuple[cs.Function, cs.Function]:
    """CasADi functions of (x, u, p, γ^k) giving every first and second derivative needed."""
    x, u = fns.dynamics.sx_in(0), fns.dynamics.sx_in(1)
    th, p = cs.SX(0, 1), fns.params.sym()
    gk = cs.SX.sym("discount_k")
    z = cs.vertcat(x, u)
    f = fns.dynamics(x, u, th, p)
    cost = gk * fns.stage_cost(x, u, th, p) + fns.stage_cost_undiscounted(x, u, th, p)
    h = cs.vertcat(fns.h_state(x, th, p), fns.h_path(x, u, th, p))
    hess, grad = cs.hessian(cost, z)
    jh = cs.jacobian(h, z)
    stage = cs.Function("mcu_stage", [x, u, p, gk],
                        [f, cs.jacobian(f, x), cs.jacobian(f, u), hess, grad, h, jh])
    costN = fns.terminal_cost(x, th, p)
    hN = fns.h_state(x, th, p)
    hessN, gradN = cs.hessian(costN, x)
    terminal = cs.Function("mcu_terminal", [x, p], [hessN, gradN, hN, cs.jacobian(hN, x)])
    return stage, terminal


def linearise(fns: ProblemFunctions, theta: ParameterValues | None = None,
              p: ParameterValues | None = None, x_bar: FloatArray | None = None,
              u_bar: FloatArray | None = None) -> LinearisedOcp:
    """Evaluate the stage models at θ, p and the trajectory (x̄, ū) (default: zero).

    Parameters
    ----------
    fns : ProblemFunctions
        The problem; θ is baked in with :func:`~rlmpc.toolkit.problem.fix_theta`.
    theta, p : mapping or vector, optional
        Parameter values (defaults from the definition).
    x_bar, u_bar : array, optional
        Linearisation trajectory, shapes (N+1, nx) and (N, nu).
    """
    N, nx, nu = fns.horizon, fns.nx, fns.nu
    fixed = fix_theta(fns, fns.theta.flatten(theta)) if fns.ntheta else fns
    pv = fns.params.flatten(p, check_bounds=False)
    xs = np.zeros((N + 1, nx)) if x_bar is None else np.asarray(x_bar, dtype=float)
    us = np.zeros((N, nu)) if u_bar is None else np.asarray(u_bar, dtype=float)
    stage_fn, terminal_fn = _functions(fixed)
    stages: list[Stage] = []
    for k in range(N):
        zb = np.concatenate([xs[k], us[k]])
        f, A, B, W, g, h, J = (np.asarray(v, dtype=float)
                               for v in stage_fn(xs[k], us[k], pv, fns.discount ** k))
        C, D = J[:, :nx], J[:, nx:]
        rows = _stage_rows(fns, k, C, D, h.ravel() - J @ zb)
        stages.append(Stage(A=A, B=B, c=f.ravel() - A @ xs[k] - B @ us[k], W=W,
                            w=g.ravel() - W @ zb, rows=rows))
    WN, gN, hN, CN = (np.asarray(v, dtype=float) for v in terminal_fn(xs[N], pv))
    rowsN = _stage_rows(fns, N, CN, np.zeros((CN.shape[0], 0)), hN.ravel() - CN @ xs[N])
    stages.append(Stage(A=np.zeros((0, nx)), B=np.zeros((0, 0)), c=np.zeros(0), W=WN,
                        w=gN.ravel() - WN @ xs[N], rows=rowsN))
    return LinearisedOcp(name=fns.name, nx=nx, nu=nu, horizon=N, stages=tuple(stages),
                         u_lb=fns.u_lb.copy(), u_ub=fns.u_ub.copy())
