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

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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
    return ReductionPlan(n, red.k_vals.astype(np.int64), red.k_rows * n + red.k_cols,
                         (-red.r_vals).astype(np.int64), red.r_rows * nth + red.r_cols,
                         u_red[keep_u], np.flatnonzero(keep_u))
