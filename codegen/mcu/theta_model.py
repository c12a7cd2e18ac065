"""CasADi-generated C (double) of the stage models with θ and p as inputs, for the linear MCU
solver's on-device precomputation after SET_THETA (``rlmpc_solver_theta.c.in``)::

    rlmpc_lin_stage(x, u, γ^k, θ, p) -> F, Aᵀ, Bᵀ, W, ∇cost, h, Jhᵀ     (stages 0..N-1)
    rlmpc_lin_terminal(x, θ, p)      -> W_N, ∇ℓ_N, h_N, Jh_Nᵀ

Transposed outputs (CasADi stores column-major) read row-major in C: A[i][j] = At[i·nx + j].
The same definitions as :mod:`rlmpc.codegen.mcu.linearise`, so the device condenses the problem
that the export condensed.
"""

from __future__ import annotations

import casadi as cs

from rlmpc.codegen.mcu.casadi_functions import PROLOGUE
from rlmpc.toolkit.problem import ProblemFunctions

FILE = "rlmpc_lin_model.c"


def theta_model(fns: ProblemFunctions) -> tuple[str, int, int]:
    """(C source, largest iw size, largest w size) of the two functions."""
    x, u = cs.SX.sym("x", fns.nx), cs.SX.sym("u", fns.nu)
    th, p, gk = fns.theta.sym(), fns.params.sym(), cs.SX.sym("discount_k")
    z = cs.vertcat(x, u)
    f = fns.dynamics(x, u, th, p)
    cost = gk * fns.stage_cost(x, u, th, p) + fns.stage_cost_undiscounted(x, u, th, p)
    W, g = cs.hessian(cost, z)
    h = cs.vertcat(fns.h_state(x, th, p), fns.h_path(x, u, th, p))
    d = cs.densify
    stage = cs.Function("rlmpc_lin_stage", [x, u, gk, th, p],
                        [d(f), d(cs.jacobian(f, x).T), d(cs.jacobian(f, u).T), d(W), d(g), d(h),
                         d(cs.jacobian(h, z).T)])
    costN = fns.terminal_cost(x, th, p)
    WN, gN = cs.hessian(costN, x)
    hN = fns.h_state(x, th, p)
    terminal = cs.Function("rlmpc_lin_terminal", [x, th, p], [d(WN), d(gN), d(hN), d(cs.jacobian(hN, x).T)])
    cg = cs.CodeGenerator("rlmpc_lin_model", {"casadi_real": "double", "casadi_int": "int"})
    cg.add(stage)
    cg.add(terminal)
    fs = (stage, terminal)
    return (PROLOGUE + cg.dump(), max(int(fn.sz_iw()) for fn in fs), max(int(fn.sz_w()) for fn in fs))
