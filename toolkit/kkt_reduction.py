"""The reduced KKT system of the parametric sensitivities, and cached reduction plans.

At a solution with a fixed active set the derivatives of the primal-dual solution in θ solve

    [H  Jeqᵀ  JAᵀ] [dw ]     [Hwθ  ]
    [Jeq  0    0 ] [dμ ] = − [Jeqθ ]
    [JA   0    0 ] [dλA]     [JAθ  ]

(``JA``: the active inequality rows).  Rows that pin one variable without depending on θ (a bound
on a single variable: ``x_0 = s``, an active input bound) fix that variable's derivative at zero; they
and their variable are eliminated (:func:`reduce_kkt`).

The elimination depends only on the sparsity pattern and the active set, not on the values.  A
:class:`ReductionPlan` records, for one pattern and active set, where each nonzero of the KKT blocks
goes in the reduced matrix and right-hand side, so a solution with the same structure (common in a
closed loop: the active set changes rarely) assembles its reduced system with two fancy-indexing
assignments instead of the index work of :func:`reduce_kkt`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rlmpc.toolkit.native_build import address, native_library, numpy_lapack
from rlmpc.toolkit.parameters import FloatArray


@dataclass(frozen=True)
class Coo:
    """The nonzeros of a sparse matrix: ``data[k]`` at ``(row[k], col[k])``."""

    data: FloatArray
    row: np.ndarray
    col: np.ndarray
    shape: tuple[int, int]

    def rows_mapped(self, new_row: np.ndarray, n: int) -> Coo:
        """The rows ``i`` with ``new_row[i] >= 0``, renumbered ``new_row[i]`` (``n`` rows)."""
        m = new_row[self.row] >= 0
        return Coo(self.data[m], new_row[self.row[m]], self.col[m], (n, self.shape[1]))

    def csr(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.data, (self.row, self.col)), shape=self.shape)


def pins(J: Coo, J_theta: Coo) -> tuple[np.ndarray, FloatArray]:
    """For each constraint row: the variable it pins (one nonzero, no θ-dependence), else -1; and each
    pinning row's nonzero."""
    n = J.shape[0]
    out, pivot = np.full(n, -1), np.zeros(n)
    single = (np.bincount(J.row, minlength=n) == 1) & (np.bincount(J_theta.row, minlength=n) == 0)
    m = single[J.row]
    out[J.row[m]] = J.col[m]
    pivot[J.row[m]] = J.data[m]
    return out, pivot


@dataclass(frozen=True)
class Reduction:
    """The reduced system ``K dz = rhs`` as triplets, and the maps back to (w, μ, λA)."""

    n: int  # size of K
    keep_w: np.ndarray  # the variables (rows 0..n1-1 of dz), the equality rows, the active rows kept
    keep_eq: np.ndarray
    keep_in: np.ndarray
    wmap: np.ndarray  # variable -> row of dz (-1: pinned)
    pinned: np.ndarray  # bool per variable
    eq_pin: np.ndarray
    eq_pivot: FloatArray
    in_pin: np.ndarray
    in_pivot: FloatArray
    k_rows: np.ndarray  # K's nonzeros (no duplicates)
    k_cols: np.ndarray
    k_vals: FloatArray
    r_rows: np.ndarray  # rhs's nonzeros (no duplicates)
    r_cols: np.ndarray
    r_vals: FloatArray


def reduce_kkt(H: Coo, Jeq: Coo, JA: Coo, Hwt: Coo, Jeq_t: Coo, JA_t: Coo) -> Reduction:
    """Eliminate the pinning rows and their variables; the reduced matrix and right-hand side."""
    nw, neq, na = H.shape[0], Jeq.shape[0], JA.shape[0]
    eq_pin, eq_pivot = pins(Jeq, Jeq_t)
    in_pin, in_pivot = pins(JA, JA_t)
    pinned = np.zeros(nw, dtype=bool)
    pinned[eq_pin[eq_pin >= 0]] = True
    pinned[in_pin[in_pin >= 0]] = True
    keep_w, keep_eq, keep_in = np.flatnonzero(~pinned), np.flatnonzero(eq_pin < 0), np.flatnonzero(in_pin < 0)
    n1, n2, n3 = keep_w.size, keep_eq.size, keep_in.size
    wmap, eqmap, inmap = np.full(nw, -1), np.full(neq, -1), np.full(na, -1)
    wmap[keep_w] = np.arange(n1)
    eqmap[keep_eq] = n1 + np.arange(n2)
    inmap[keep_in] = n1 + n2 + np.arange(n3)
    rows, cols, vals = [], [], []
    m = (wmap[H.row] >= 0) & (wmap[H.col] >= 0)
    rows.append(wmap[H.row[m]])
    cols.append(wmap[H.col[m]])
    vals.append(H.data[m])
    for J, cmap in ((Jeq, eqmap), (JA, inmap)):
        m = (cmap[J.row] >= 0) & (wmap[J.col] >= 0)
        r, c, d = cmap[J.row[m]], wmap[J.col[m]], J.data[m]
        rows += [r, c]
        cols += [c, r]
        vals += [d, d]
    r_rows, r_cols, r_vals = [], [], []
    for B, bmap in ((Hwt, wmap), (Jeq_t, eqmap), (JA_t, inmap)):
        m = bmap[B.row] >= 0
        r_rows.append(bmap[B.row[m]])
        r_cols.append(B.col[m])
        r_vals.append(-B.data[m])
    return Reduction(n1 + n2 + n3, keep_w, keep_eq, keep_in, wmap, pinned, eq_pin, eq_pivot, in_pin,
                     in_pivot, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals),
                     np.concatenate(r_rows), np.concatenate(r_cols), np.concatenate(r_vals))


@dataclass(frozen=True)
class ReductionPlan:
    """Where the KKT blocks' nonzeros (all six blocks' full-pattern data, concatenated) go in the dense
    reduced system of one sparsity pattern and active set; and which rows of its solution are u_0."""

    n: int
    k_src: np.ndarray  # K.flat[k_dst] = data[k_src]
    k_dst: np.ndarray
    r_src: np.ndarray  # rhs.flat[r_dst] = −data[r_src]
    r_dst: np.ndarray
    u_rows: np.ndarray  # rows of dz holding the unpinned entries of u_0 ...
    u_out: np.ndarray  # ... and which entries of u_0 they are


def make_plan(patterns: list[tuple[np.ndarray, np.ndarray, tuple[int, int]]], nonzero: np.ndarray,
              active: np.ndarray, u_index: np.ndarray, nth: int) -> ReductionPlan:
    """The plan of the blocks ``(H, Jeq, Jin, Hwt, Jeq_t, Jin_t)`` with full patterns ``(row, col,
    shape)``, of which the entries ``nonzero`` (over the concatenated data) are nonzero at this point,
    and the active inequality rows ``active`` (indices)."""
    blocks, offset = [], 0
    for row, col, shape in patterns:
        ids = np.arange(offset, offset + row.size, dtype=np.float64)  # (exact: far below 2⁵³)
        keep = nonzero[offset:offset + row.size]
        blocks.append(Coo(ids[keep], row[keep], col[keep], shape))
        offset += row.size
    H, Jeq, Jin, Hwt, Jeq_t, Jin_t = blocks
    amap = np.full(Jin.shape[0], -1)
    amap[active] = np.arange(active.size)
    red = reduce_kkt(H, Jeq, Jin.rows_mapped(amap, active.size), Hwt, Jeq_t,
                     Jin_t.rows_mapped(amap, active.size))
    n = red.n
    u_red = red.wmap[u_index]
    keep_u = u_red >= 0
    def ints(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.int64)

    return ReductionPlan(n, ints(red.k_vals), ints(red.k_rows * n + red.k_cols), ints(-red.r_vals),
                         ints(red.r_rows * nth + red.r_cols), ints(u_red[keep_u]), ints(np.flatnonzero(keep_u)))


class LuCache(ctypes.Structure):
    """``rlmpc_lu_cache``: the LU factors of the last planned system, reused for the same plan and K."""

    _fields_ = [("plan", ctypes.c_void_p), ("n", ctypes.c_int), ("n_k", ctypes.c_int),
                ("capacity_n", ctypes.c_int), ("capacity_k", ctypes.c_int), ("k_vals", ctypes.c_void_p),
                ("lu", ctypes.c_void_p), ("ipiv", ctypes.c_void_p)]

    @classmethod
    def sized(cls, capacity_n: int, capacity_k: int) -> tuple[LuCache, list[np.ndarray]]:
        """An empty cache and the arrays behind it (keep them alive as long as the cache)."""
        arrays = [np.zeros(max(capacity_k, 1)), np.zeros(max(capacity_n, 1) ** 2),
                  np.zeros(max(capacity_n, 1), dtype=np.int64)]
        cache = cls(None, 0, 0, capacity_n, capacity_k, *(int(a.ctypes.data) for a in arrays))
        return cache, arrays


class PlannedSolve:
    """The reduced system of a plan assembled and solved for the rows of u_0, in C
    (``rlmpc_planned_u_rows`` of ``toolkit/native/rlmpc_learning_step.c``: ``K^T Y = E_u`` as
    ``numpy.linalg.solve`` has LAPACK solve it, with numpy's LAPACK, then ``Yᵀ rhs`` summed in row order,
    the LU factors kept for the next point of the same plan and K) — the one implementation for the
    Python path and the compiled DPG step.  ``available`` is False without a C compiler or numpy's
    LAPACK library; :func:`planned_u_rows` then computes the same with numpy."""

    def __init__(self) -> None:
        lib, lapack = native_library("rlmpc_learning_step"), numpy_lapack()
        self.available = lib is not None and lapack is not None
        if lib is None or lapack is None:
            return
        i, p = ctypes.c_int, ctypes.c_void_p
        self.fn = lib.rlmpc_planned_u_rows
        self.fn.argtypes = [i, i, i, p, p, i, p, p, i, p, p, p, p, p, p, p, p, p, p]
        self.fn.restype = i
        self.getrf, self.getrs = address(lapack.scipy_dgetrf_64_), address(lapack.scipy_dgetrs_64_)
        self._size = (0, 0, 0, 0)
        self._buffers: tuple[np.ndarray, ...] = ()
        self._cache: tuple[LuCache, list[np.ndarray]] | None = None

    def buffers(self, n: int, nth: int, n_u: int, n_k: int) -> tuple[np.ndarray, ...]:
        """K, rhs, Y, ipiv, du of at least these sizes (kept between calls), and a matching cache."""
        if n > self._size[0] or nth > self._size[1] or n_u > self._size[2] or n_k > self._size[3]:
            n, nth = max(n, self._size[0]), max(nth, self._size[1])
            n_u, n_k = max(n_u, self._size[2]), max(n_k, self._size[3])
            self._size = (n, nth, n_u, n_k)
            self._buffers = (np.zeros(n * n), np.zeros(n * nth), np.zeros(n * n_u),
                             np.zeros(n, dtype=np.int64), np.zeros(n_u * nth))
            self._cache = LuCache.sized(n, n_k)
        return self._buffers

    def __call__(self, plan: ReductionPlan, data: FloatArray, nth: int) -> FloatArray | None:
        n_u = plan.u_rows.size
        K, rhs, Y, ipiv, du = self.buffers(plan.n, nth, n_u, plan.k_src.size)
        assert self._cache is not None
        status = self.fn(plan.n, nth, plan.k_src.size, plan.k_src.ctypes.data, plan.k_dst.ctypes.data,
                         plan.r_src.size, plan.r_src.ctypes.data, plan.r_dst.ctypes.data, n_u,
                         plan.u_rows.ctypes.data, data.ctypes.data, K.ctypes.data, rhs.ctypes.data,
                         Y.ctypes.data, ipiv.ctypes.data, self.getrf, self.getrs,
                         ctypes.addressof(self._cache[0]), du.ctypes.data)
        return None if status != 0 else du[:n_u * nth].reshape(n_u, nth).copy()


_SOLVER: list[PlannedSolve] = []


def planned_solve() -> PlannedSolve:
    """The process' :class:`PlannedSolve` (built on first use)."""
    if not _SOLVER:
        _SOLVER.append(PlannedSolve())
    return _SOLVER[0]


def planned_u_rows(plan: ReductionPlan, data: FloatArray, nth: int) -> FloatArray | None:
    """The rows of u_0 (unpinned entries) of the reduced system's solution, assembled by ``plan`` from
    the blocks' nonzeros ``data``; None if singular or not finite."""
    solver = planned_solve()
    contiguous = data if data.flags.c_contiguous and data.dtype == np.float64 else np.ascontiguousarray(data, float)
    if solver.available:
        return solver(plan, contiguous, nth)
    n = plan.n  # (no compiler: the same steps in numpy, summed in numpy's order)
    K = np.zeros(n * n)
    K[plan.k_dst] = contiguous[plan.k_src]
    rhs = np.zeros(n * nth)
    rhs[plan.r_dst] = -contiguous[plan.r_src]
    select = np.zeros((n, plan.u_rows.size))
    select[plan.u_rows, np.arange(plan.u_rows.size)] = 1.0
    try:
        y = np.linalg.solve(K.reshape(n, n).T, select)
    except np.linalg.LinAlgError:
        return None
    du: FloatArray = y.T @ rhs.reshape(n, nth)
    return du if np.all(np.isfinite(du)) else None
