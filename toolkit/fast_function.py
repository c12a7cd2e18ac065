"""Zero-copy evaluation of CasADi functions on numpy arrays.

Calling a ``casadi.Function`` with numpy arguments converts every argument to a
``DM`` and every sparse result back (tens of microseconds to milliseconds per
call).  ``Function.buffer()`` instead evaluates straight from and into numpy
memory: about a microsecond of overhead.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import casadi as cs
import numpy as np

from rlmpc.toolkit.parameters import FloatArray


class FastFunction:
    """A CasADi function evaluated through its buffer interface.

    Inputs are copied into preallocated float64 arrays; outputs are dense
    arrays (column vectors become 1-D, except the outputs listed in ``matrix_outputs``,
    e.g. a Jacobian that may have one column) that the next call overwrites, so copy a
    result you want to keep.
    """

    def __init__(self, fn: cs.Function, matrix_outputs: Collection[int] = ()) -> None:
        if not fn.is_a("SXFunction"):
            raise ValueError(f"FastFunction: expected an SX function, got {fn.class_name()}")
        inputs = fn.sx_in()
        outs: list[cs.SX] = [cs.densify(o) for o in fn.call(inputs)]
        self.fn = cs.Function(fn.name() + "_dense", inputs, outs)
        self._buf, self._eval = self.fn.buffer()
        self._inputs = [np.zeros(self.fn.nnz_in(i)) for i in range(self.fn.n_in())]
        self._outputs: list[FloatArray] = []
        self._views: list[FloatArray] = []
        for i in range(self.fn.n_out()):
            rows, cols = self.fn.size_out(i)
            raw = np.zeros((cols, rows))  # CasADi stores column-major
            self._outputs.append(raw)
            self._views.append(raw.T if cols > 1 or i in matrix_outputs else raw.reshape(rows))
        # the SWIG typemap takes (buffer, size) from one memoryview argument
        for i, arr in enumerate(self._inputs):
            self._buf.set_arg(i, memoryview(arr))  # type: ignore[call-arg, arg-type]
        for i, out in enumerate(self._outputs):
            self._buf.set_res(i, memoryview(out))  # type: ignore[call-arg, arg-type]

    @property
    def inputs(self) -> list[FloatArray]:
        """The input buffers (each input flattened column-major): write into them in place and
        call :meth:`evaluate` to skip the argument copies of ``__call__``."""
        return self._inputs

    def evaluate(self) -> list[FloatArray]:
        """Evaluate on the current contents of :attr:`inputs`."""
        self._eval()
        return self._views

    def __call__(self, *args: FloatArray) -> list[FloatArray]:
        if len(args) != len(self._inputs):
            raise ValueError(f"{self.fn.name()}: expected {len(self._inputs)} arguments, "
                             f"got {len(args)}")
        for dst, src in zip(self._inputs, args, strict=True):
            dst[:] = np.ravel(src, order="F")
        self._eval()
        return self._views


class SparseFunction:
    """A CasADi function whose outputs stay sparse: evaluated through its buffer interface into the
    nonzeros, returned as ``scipy.sparse.csc_matrix`` on the fixed sparsity pattern (no dense copy:
    the cost grows with the nonzeros, not with rows × columns)."""

    def __init__(self, fn: cs.Function) -> None:
        self.fn = fn
        self._buf, self._eval = fn.buffer()
        self._inputs = [np.zeros(fn.nnz_in(i)) for i in range(fn.n_in())]
        self._outputs = [np.zeros(fn.nnz_out(i)) for i in range(fn.n_out())]
        self._patterns = []
        self._coo = []
        for i in range(fn.n_out()):
            sp = fn.sparsity_out(i)
            rows, colind = np.array(sp.row(), dtype=np.int32), np.array(sp.colind(), dtype=np.int32)
            self._patterns.append((rows, colind, (sp.size1(), sp.size2())))
            self._coo.append((rows.astype(np.int64), np.repeat(np.arange(sp.size2()), np.diff(colind))))
        for i, arr in enumerate(self._inputs):
            self._buf.set_arg(i, memoryview(arr))  # type: ignore[call-arg, arg-type]
        for i, out in enumerate(self._outputs):
            self._buf.set_res(i, memoryview(out))  # type: ignore[call-arg, arg-type]

    def coo(self, *args: FloatArray) -> list[tuple[FloatArray, np.ndarray, np.ndarray, tuple[int, int]]]:
        """The outputs as ``(data, row, col, shape)`` of their nonzeros (data copied; row and col shared:
        do not modify them)."""
        self._load(args)
        return [(data.copy(), row, col, shape) for data, (row, col), (_, _, shape)
                in zip(self._outputs, self._coo, self._patterns, strict=True)]

    def nonzeros(self, *args: FloatArray) -> list[FloatArray]:
        """The outputs' nonzeros on their patterns (:attr:`patterns`), in the function's own buffers: the
        next call overwrites them (copy what you keep)."""
        self._load(args)
        return self._outputs

    @property
    def patterns(self) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
        """Per output ``(row, col, shape)`` of its nonzeros (shared arrays: do not modify them)."""
        return [(row, col, shape) for (row, col), (_, _, shape) in zip(self._coo, self._patterns, strict=True)]

    def _load(self, args: tuple[FloatArray, ...]) -> None:
        if len(args) != len(self._inputs):
            raise ValueError(f"{self.fn.name()}: expected {len(self._inputs)} arguments, got {len(args)}")
        for dst, src in zip(self._inputs, args, strict=True):
            dst[:] = np.ravel(src, order="F")
        self._eval()

    def __call__(self, *args: FloatArray) -> list[Any]:
        """The outputs as new ``csc_matrix`` objects (data and pattern copied: safe to keep and to
        modify, e.g. ``eliminate_zeros``)."""
        import scipy.sparse

        self._load(args)
        return [scipy.sparse.csc_matrix((data.copy(), rows.copy(), colind.copy()), shape=shape)
                for data, (rows, colind, shape) in zip(self._outputs, self._patterns, strict=True)]
