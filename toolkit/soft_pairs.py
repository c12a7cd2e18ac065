"""One-sided soft state rows merged in pairs into two-sided rows of the workstation's acados OCP.

acados 0.2.2 gives every softened row of ``h`` both slacks ``sl`` and ``su``, and an open side a
finite bound ``BIG_BOUND`` away.  A problem that bounds a quantity from below with one soft row
and from above with another (the LTI MPC: ``x - (x_lb + …) >= 0`` and ``x - (x_ub + …) <= 0``)
therefore hands HPIPM four slacks and two far-away inequalities per quantity and stage where
two slacks and no far bound would do.  When the two rows differ by a function of (θ, p) only,
``h_i - h_j = c(θ, p)``, they are one row ``lb_i - sl <= h_i <= ub_j + c(θ, p) + su`` with
``sl`` priced as row i's lower slack and ``su`` as row j's upper slack: the same optimisation
problem, half the slacks.  ``c`` moves the upper bound, so it is set at run time whenever θ or
p change (:meth:`SoftPairs.upper_bounds`).

Everything outside the workstation's solver keeps the problem's own rows: the NLP of the
sensitivities, the exported solvers, the iterate layout of an :class:`~rlmpc.toolkit.mpc.MpcSolution`.
:class:`IterateExpansion` maps the merged solver's primal-dual iterate back to the layout of
the unmerged one (the dropped slacks at 0, their bound multipliers at their penalty weights, as
the unmerged solver's KKT conditions give them).
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as cs
import numpy as np

from rlmpc.toolkit.acados_build import finite_bounds
from rlmpc.toolkit.acados_instance import IterateLayout
from rlmpc.toolkit.fast_function import FastFunction
from rlmpc.toolkit.nlp import slack_weights, stage_soft_rows
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions


@dataclass(frozen=True)
class SoftPairs:
    """Pairs (lower[i], upper[i]) of state rows: row ``lower[i]`` has only a lower bound, row
    ``upper[i]`` only an upper bound, both soft, and they differ by ``offset(θ, p)[i]``."""

    n_rows: int  # state rows of the problem
    lower: tuple[int, ...]
    upper: tuple[int, ...]
    offset: cs.Function | None  # (θ, p) -> h_lower - h_upper, one entry per pair

    @property
    def n(self) -> int:
        return len(self.lower)

    @property
    def kept(self) -> np.ndarray:
        """State rows of the merged ``h`` (the upper partners dropped), in the problem's order."""
        dropped = set(self.upper)
        return np.array([r for r in range(self.n_rows) if r not in dropped], dtype=int)

    def merged_row(self, row: int) -> int:
        """Position in the merged state rows of a problem state row (a partner: its pair's)."""
        if row in self.upper:
            row = self.lower[self.upper.index(row)]
        return int(np.searchsorted(self.kept, row))

    def upper_bounds(self, fns: ProblemFunctions) -> FastFunction:
        """(θ, p) -> (uh on stages 1..N-1, uh on stage N) of the merged solver, open sides made
        finite as in :func:`rlmpc.toolkit.acados_build.finite_bounds` (~1 µs per evaluation)."""
        assert self.offset is not None
        th, p = self.offset.sx_in(0), self.offset.sx_in(1)
        c = self.offset(th, p)
        sr, pr = fns.state_rows, fns.path_rows
        _, ub_static = finite_bounds(sr.lb, sr.ub)
        state = [c[self.lower.index(r)] + sr.ub[self.upper[self.lower.index(r)]] if r in self.lower
                 else cs.SX(ub_static[r]) for r in self.kept]
        _, ub_path = finite_bounds(pr.lb, pr.ub)
        end = cs.vertcat(*state)
        mid = cs.vertcat(end, cs.SX(cs.DM(ub_path)))
        return FastFunction(cs.Function("soft_pair_uh", [th, p], [mid, end]))


def find_pairs(fns: ProblemFunctions) -> SoftPairs:
    """Soft state rows to merge: each lower-only row with the first unpaired upper-only row whose
    expression differs from it by a function of (θ, p) only."""
    rows = fns.state_rows
    x = fns.h_state.sx_in(0)
    th, p = fns.h_state.sx_in(1), fns.h_state.sx_in(2)
    h = fns.h_state(x, th, p)
    lower_only = [i for i in range(rows.n) if rows.soft[i] and np.isfinite(rows.lb[i])
                  and not np.isfinite(rows.ub[i])]
    upper_only = [j for j in range(rows.n) if rows.soft[j] and np.isfinite(rows.ub[j])
                  and not np.isfinite(rows.lb[j])]
    lower: list[int] = []
    upper: list[int] = []
    for i in lower_only:
        for j in upper_only:
            if j in upper:
                continue
            jac = cs.jacobian(h[i] - h[j], x)
            if all(jac.nz[k].is_zero() for k in range(jac.nnz())):
                lower.append(i)
                upper.append(j)
                break
    offset = None
    if lower:
        diff = cs.vertcat(*[h[i] - h[j] for i, j in zip(lower, upper, strict=True)])
        # (it does not depend on x: evaluate it at x = 0, which also drops x from the graph)
        offset = cs.Function("soft_pair_offset", [th, p], [cs.substitute(diff, x, cs.SX.zeros(x.shape))])
    return SoftPairs(rows.n, tuple(lower), tuple(upper), offset)


@dataclass(frozen=True)
class MergedSlacks:
    """Slack penalties of one stage of the merged solver, per merged soft row and side."""

    zl: FloatArray
    zu: FloatArray
    Zl: FloatArray
    Zu: FloatArray


def merged_soft_rows(fns: ProblemFunctions, pairs: SoftPairs, k: int) -> list[int]:
    """Rows of the merged ``h`` at stage k that carry slacks, in acados' order."""
    n_kept = pairs.kept.size
    out = [pairs.merged_row(int(r)) if r < pairs.n_rows else n_kept + int(r) - pairs.n_rows
           for r in stage_soft_rows(fns, k) if int(r) not in pairs.upper]
    return out


def merged_slacks(fns: ProblemFunctions, pairs: SoftPairs, k: int, linear: FloatArray,
                  quadratic: FloatArray) -> MergedSlacks:
    """The merged stage's penalties from the unmerged stage's (``linear``, ``quadratic``: one entry
    per soft row of :func:`rlmpc.toolkit.nlp.stage_soft_rows`, as in the startup settings)."""
    soft = [int(r) for r in stage_soft_rows(fns, k)]
    zl, zu, ql, qu = [], [], [], []
    for q, r in enumerate(soft):
        if r in pairs.upper:
            continue
        partner = soft.index(pairs.upper[pairs.lower.index(r)]) if r in pairs.lower else q
        zl.append(linear[q])
        ql.append(quadratic[q])
        zu.append(linear[partner])
        qu.append(quadratic[partner])
    return MergedSlacks(np.array(zl), np.array(zu), np.array(ql), np.array(qu))


def unmerged_layout(fns: ProblemFunctions) -> IterateLayout:
    """The iterate layout of the problem's unmerged acados solver."""
    N, nx, nu = fns.horizon, fns.nx, fns.nu
    sizes = np.zeros((N + 1, 6), dtype=np.intc)
    for k in range(N + 1):
        ns = len(stage_soft_rows(fns, k))
        nbu = nu if k < N else 0
        nbx = nx if k == 0 else 0
        nh = fns.state_rows.n + (fns.path_rows.n if k < N else 0)
        sizes[k] = (nx, nbu, ns, ns, nx if k < N else 0, 2 * (nbu + nbx + nh + ns))
    return IterateLayout.from_sizes(sizes)


class IterateExpansion:
    """Maps the merged solver's iterate to the unmerged layout (and back, for warm starts)."""

    def __init__(self, fns: ProblemFunctions, pairs: SoftPairs, merged: IterateLayout) -> None:
        full = unmerged_layout(fns)
        self.layout = full
        consts: list[float] = [0.0]
        source = np.full(full.total, -1, dtype=int)
        N, nx, nu = fns.horizon, fns.nx, fns.nu
        ns_rows, n_kept = pairs.n_rows, pairs.kept.size

        def const(value: float) -> int:
            consts.append(float(value))
            return merged.total + len(consts) - 1

        zero = merged.total  # consts[0]
        for k in range(N + 1):
            for field in ("x", "u", "pi"):
                source[full.index(field, k)] = merged.index(field, k)
            soft = [int(r) for r in stage_soft_rows(fns, k)]
            msoft = merged_soft_rows(fns, pairs, k)
            weights = slack_weights(fns, k)[0]  # the NLP's: its stationarity fixes these multipliers
            nbu = nu if k < N else 0
            nbx = nx if k == 0 else 0
            nb = nbu + nbx
            nh = ns_rows + (fns.path_rows.n if k < N else 0)
            mnh = n_kept + (fns.path_rows.n if k < N else 0)
            ns, mns = len(soft), len(msoft)
            lam, mlam = full.index("lam", k), merged.index("lam", k)
            sl, su, msl, msu = full.index("sl", k), full.index("su", k), merged.index("sl", k), merged.index("su", k)
            for i in range(nbu):  # lbu, ubu
                source[lam[i]] = mlam[i]
                source[lam[nb + nh + i]] = mlam[nb + mnh + i]
            for i in range(nbx):  # lbx, ubx
                source[lam[nbu + i]] = mlam[nbu + i]
                source[lam[nb + nh + nbu + i]] = mlam[nb + mnh + nbu + i]
            for r in range(nh):  # lh, uh
                m = pairs.merged_row(r) if r < ns_rows else n_kept + r - ns_rows
                is_lower, is_upper = r in pairs.lower, r in pairs.upper
                source[lam[nb + r]] = zero if is_upper else mlam[nb + m]
                source[lam[2 * nb + nh + r]] = zero if is_lower else mlam[2 * nb + mnh + m]
            for q, r in enumerate(soft):  # sl, su and their bounds' multipliers
                qm = msoft.index(pairs.merged_row(r) if r < ns_rows else n_kept + r - ns_rows)
                lower_side = r not in pairs.upper  # this row's lower slack is the merged row's
                upper_side = r not in pairs.lower
                source[sl[q]] = msl[qm] if lower_side else zero
                source[su[q]] = msu[qm] if upper_side else zero
                source[lam[2 * (nb + nh) + q]] = mlam[2 * (nb + mnh) + qm] if lower_side else const(weights[q])
                source[lam[2 * (nb + nh) + ns + q]] = (mlam[2 * (nb + mnh) + mns + qm] if upper_side
                                                       else const(weights[q]))
        if np.any(source < 0):
            raise RuntimeError("soft pairs: the unmerged iterate layout is not covered")
        self._source = source
        self._consts = np.array(consts)
        back = np.full(merged.total, -1, dtype=int)
        for pos in range(full.total - 1, -1, -1):  # the first position that reads each entry
            if source[pos] < merged.total:
                back[source[pos]] = pos
        if np.any(back < 0):
            raise RuntimeError("soft pairs: the merged iterate layout is not covered")
        self._back = back
        self.merged_total = merged.total

    def expand(self, iterate: FloatArray) -> FloatArray:
        """The unmerged iterate of a merged one."""
        return np.concatenate([iterate, self._consts])[self._source]

    def compress(self, iterate: FloatArray) -> FloatArray:
        """The merged iterate of an unmerged one (e.g. a solution's, as a warm start)."""
        return np.asarray(iterate, dtype=float)[self._back]
