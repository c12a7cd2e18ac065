"""The MPC as one CasADi NLP, transcribed from the same :class:`ProblemFunctions`.

It mirrors the acados OCP variable for variable (states, inputs, and a lower
and an upper slack per soft constraint row and stage) so that the acados
primal-dual solution can be dropped into its Lagrangian::

    L(w, μ, λ; s, a, θ, p) = J(w; θ, p) + μᵀ g_eq(w; s, a, θ, p) + λᵀ g_in(w; θ, p),

with ``g_eq = 0`` (initial state, dynamics, and for Q(s,a) the fixed first
input) and ``g_in ≤ 0``, ``λ ≥ 0``.  The same NLP, solved with IPOPT, is the
reference the tests compare acados against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import casadi as cs
import numpy as np

from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions


@dataclass
class InequalityRow:
    """Where an inequality of the NLP comes from (for the acados multiplier map)."""

    stage: int
    kind: str  # "lbu" | "ubu" | "lh" | "uh" | "lsl" | "lsu"
    index: int  # input index, row of h at that stage, or slack index at that stage


@dataclass
class Transcription:
    """Symbols, expressions and bookkeeping of the NLP for V (``fix_u0=False``) or Q."""

    fns: ProblemFunctions
    fix_u0: bool
    w: cs.SX
    s: cs.SX
    a: cs.SX
    theta: cs.SX
    p: cs.SX
    cost: cs.SX
    g_eq: cs.SX
    g_in: cs.SX
    x_index: list[np.ndarray]  # per stage: indices of x_k in w
    u_index: list[np.ndarray]
    sl_index: list[np.ndarray]  # per stage: indices of the lower slacks in w
    su_index: list[np.ndarray]
    h_rows: list[np.ndarray]  # per stage: which rows of the acados h vector exist here
    ineq_rows: list[InequalityRow] = field(default_factory=list)

    @property
    def nw(self) -> int:
        return int(self.w.shape[0])

    def lagrangian(self, mu: cs.SX, lam: cs.SX) -> cs.SX:
        return self.cost + cs.dot(mu, self.g_eq) + cs.dot(lam, self.g_in)


def stage_h_rows(fns: ProblemFunctions, k: int) -> np.ndarray:
    """Rows of the acados ``h`` vector that are real constraints at stage k.

    acados stacks ``h = [h_state; h_path]`` on stages 0..N-1 and ``h_state`` at N.
    State rows at stage 0 are relaxed (x_0 is fixed), so they are not part of the NLP.
    """
    ns, npath = fns.state_rows.n, fns.path_rows.n
    if k == 0:
        return np.arange(ns, ns + npath)
    if k == fns.horizon:
        return np.arange(ns)
    return np.arange(ns + npath)


def stage_soft_rows(fns: ProblemFunctions, k: int) -> np.ndarray:
    """Rows of ``h`` at stage k (acados numbering) that carry slacks, in acados' order."""
    soft = fns.state_rows.soft if k == fns.horizon else np.concatenate(
        [fns.state_rows.soft, fns.path_rows.soft])
    return np.where(soft)[0]


def slack_weights(fns: ProblemFunctions, k: int) -> tuple[FloatArray, FloatArray]:
    """(linear, quadratic) slack penalties at stage k, discounted as in the problem docstring."""
    g = fns.discount
    sr, pr = fns.state_rows, fns.path_rows
    ks = max(k - 1, 0)  # state rows at stage k are charged γ^(k-1)
    if k == fns.horizon:
        wl, wq = sr.w_lin * g ** ks, sr.w_quad * g ** ks
    else:
        wl = np.concatenate([sr.w_lin * g ** ks, pr.w_lin * g ** k])
        wq = np.concatenate([sr.w_quad * g ** ks, pr.w_quad * g ** k])
    soft = stage_soft_rows(fns, k)
    return wl[soft], wq[soft]


def transcribe(fns: ProblemFunctions, fix_u0: bool) -> Transcription:
    """Build the NLP for V(s) (``fix_u0=False``) or Q(s,a) (``fix_u0=True``)."""
    N, nx, nu = fns.horizon, fns.nx, fns.nu
    th, p = fns.theta.sym(), fns.params.sym()
    s = cs.SX.sym("s", nx)
    a = cs.SX.sym("a", nu)
    lb_h_all = np.concatenate([fns.state_rows.lb, fns.path_rows.lb])
    ub_h_all = np.concatenate([fns.state_rows.ub, fns.path_rows.ub])

    w_parts: list[cs.SX] = []
    count = 0

    def new(name: str, n: int) -> tuple[cs.SX, np.ndarray]:
        nonlocal count
        sym = cs.SX.sym(name, n)
        w_parts.append(sym)
        idx = np.arange(count, count + n)
        count += n
        return sym, idx

    xs, us, sls, sus = [], [], [], []
    x_index, u_index, sl_index, su_index, h_rows = [], [], [], [], []
    for k in range(N + 1):
        xk, ix = new(f"x_{k}", nx)
        xs.append(xk)
        x_index.append(ix)
        if k < N:
            uk, iu = new(f"u_{k}", nu)
            us.append(uk)
            u_index.append(iu)
        nsoft = len(stage_soft_rows(fns, k))
        slk, isl = new(f"sl_{k}", nsoft)
        suk, isu = new(f"su_{k}", nsoft)
        sls.append(slk)
        sus.append(suk)
        sl_index.append(isl)
        su_index.append(isu)
        h_rows.append(stage_h_rows(fns, k))

    cost = fns.initial_cost(th, p)
    for k in range(N):
        cost += fns.discount ** k * fns.stage_cost(xs[k], us[k], th, p)
        cost += fns.stage_cost_undiscounted(xs[k], us[k], th, p)
    cost += fns.terminal_cost(xs[N], th, p)

    g_eq = [xs[0] - s]
    for k in range(N):
        g_eq.append(xs[k + 1] - fns.dynamics(xs[k], us[k], th, p))
    if fix_u0:
        g_eq.append(us[0] - a)

    g_in: list[cs.SX] = []
    rows: list[InequalityRow] = []
    for k in range(N + 1):
        if k < N and not (fix_u0 and k == 0):
            for i in range(nu):
                if np.isfinite(fns.u_lb[i]):
                    g_in.append(fns.u_lb[i] - us[k][i])
                    rows.append(InequalityRow(k, "lbu", i))
                if np.isfinite(fns.u_ub[i]):
                    g_in.append(us[k][i] - fns.u_ub[i])
                    rows.append(InequalityRow(k, "ubu", i))
        if k == N:
            h = fns.h_state(xs[k], th, p)
            lb_h, ub_h = fns.state_rows.lb, fns.state_rows.ub
        else:
            h = cs.vertcat(fns.h_state(xs[k], th, p), fns.h_path(xs[k], us[k], th, p))
            lb_h, ub_h = lb_h_all, ub_h_all
        soft = list(stage_soft_rows(fns, k))
        wl, wq = slack_weights(fns, k)
        for j in range(len(soft)):
            cost += wl[j] * (sls[k][j] + sus[k][j]) + 0.5 * wq[j] * (sls[k][j] ** 2 + sus[k][j] ** 2)
        for r in h_rows[k]:
            slack_l = sls[k][soft.index(r)] if r in soft else 0
            slack_u = sus[k][soft.index(r)] if r in soft else 0
            if np.isfinite(lb_h[r]):
                g_in.append(lb_h[r] - slack_l - h[r])
                rows.append(InequalityRow(k, "lh", int(r)))
            if np.isfinite(ub_h[r]):
                g_in.append(h[r] - ub_h[r] - slack_u)
                rows.append(InequalityRow(k, "uh", int(r)))
        for j in range(len(soft)):
            g_in.append(-sls[k][j])
            rows.append(InequalityRow(k, "lsl", j))
            g_in.append(-sus[k][j])
            rows.append(InequalityRow(k, "lsu", j))

    return Transcription(
        fns=fns, fix_u0=fix_u0, w=cs.vertcat(*w_parts), s=s, a=a, theta=th, p=p,
        cost=cost, g_eq=cs.vertcat(*g_eq), g_in=cs.vertcat(*g_in) if g_in else cs.SX(0, 1),
        x_index=x_index, u_index=u_index, sl_index=sl_index, su_index=su_index,
        h_rows=h_rows, ineq_rows=rows,
    )


@dataclass(frozen=True)
class IpoptSolution:
    """Reference solution of the NLP by IPOPT."""

    cost: float
    w: FloatArray
    u0: FloatArray
    success: bool


def solve_with_ipopt(tr: Transcription, s: FloatArray, theta: FloatArray, p: FloatArray,
                     a: FloatArray | None = None, tol: float = 1e-12) -> IpoptSolution:
    """Solve the NLP with IPOPT (reference for tests; not used at run time)."""
    par = cs.vertcat(tr.s, tr.a, tr.theta, tr.p)
    g = cs.vertcat(tr.g_eq, tr.g_in)
    neq = int(tr.g_eq.shape[0])
    solver = cs.nlpsol("ref", "ipopt", {"x": tr.w, "p": par, "f": tr.cost, "g": g}, {
        "print_time": False,
        "ipopt": {"print_level": 0, "sb": "yes", "tol": tol, "acceptable_tol": tol,
                  "max_iter": 3000, "bound_relax_factor": 0.0, "mu_strategy": "adaptive"},
    })
    aval = np.zeros(tr.fns.nu) if a is None else a
    lbg = np.concatenate([np.zeros(neq), np.full(g.shape[0] - neq, -np.inf)])
    ubg = np.zeros(g.shape[0])
    res = solver(x0=np.zeros(tr.nw), p=np.concatenate([s, aval, theta, p]), lbg=lbg, ubg=ubg)
    w = np.asarray(res["x"]).ravel()
    return IpoptSolution(float(res["f"]), w, w[tr.u_index[0]], bool(solver.stats()["success"]))
