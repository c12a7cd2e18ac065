"""One live acados solver instance, driven through the rlmpc C glue with ctypes."""

from __future__ import annotations

import ctypes
import math
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from rlmpc.toolkit import acados_runtime
from rlmpc.toolkit.acados_build import BuiltSolver
from rlmpc.toolkit.parameters import FloatArray

_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
FIELDS = ("x", "u", "sl", "su", "pi", "lam")
_libraries: dict[str, ctypes.CDLL] = {}


def _ptr(arr: FloatArray) -> object:
    return arr.ctypes.data_as(_DOUBLE_P)


def _load(built: BuiltSolver) -> ctypes.CDLL:
    key = str(built.glue_library)
    if key not in _libraries:
        acados_runtime.ensure_acados()
        lib = ctypes.CDLL(key)
        vp, ip, dp, cp = ctypes.c_void_p, ctypes.c_int, _DOUBLE_P, ctypes.c_char_p
        signatures: dict[str, tuple[list[object], object]] = {
            "rlmpc_create": ([], vp),
            "rlmpc_free": ([vp], None),
            "rlmpc_horizon": ([vp], ip),
            "rlmpc_stage_sizes": ([vp, ctypes.POINTER(ctypes.c_int)], None),
            "rlmpc_set_params": ([vp, ip, dp, ip], ip),
            "rlmpc_set_params_all": ([vp, dp, ip], ip),
            "rlmpc_constraints_set": ([vp, ip, cp, dp], None),
            "rlmpc_cost_set": ([vp, ip, cp, dp], None),
            "rlmpc_solve": ([vp, dp, dp, dp, dp], ip),
            "rlmpc_solve_full": ([vp, dp, dp, dp, dp, dp, ip], ip),
            "rlmpc_get_iterate": ([vp, dp], None),
            "rlmpc_set_iterate": ([vp, dp], None),
            "rlmpc_reset": ([vp], ip),
            "rlmpc_get_stats": ([vp, dp], None),
            "rlmpc_set_uh_stages": ([vp, dp, dp], None),
            "rlmpc_set_qp_mu0": ([vp, ctypes.c_double], None),
            "rlmpc_solve_pair": ([vp, dp, dp, dp, dp, dp, ip, vp, dp, dp, dp, dp, dp, ip], None),
            "rlmpc_solve_policy": ([vp, dp, dp, dp, dp, dp, ip], ip),
            "rlmpc_cost": ([vp], ctypes.c_double),
        }
        for name, (args, res) in signatures.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = res
        _libraries[key] = lib
    return _libraries[key]


@dataclass(frozen=True)
class IterateLayout:
    """Offsets of each field and stage in the flat primal-dual iterate."""

    sizes: np.ndarray  # (N+1, 6) sizes per stage and field
    offsets: np.ndarray  # (N+1, 6) start of each block in the flat vector
    total: int

    @classmethod
    def from_sizes(cls, sizes: np.ndarray) -> IterateLayout:
        offsets = np.zeros_like(sizes)
        pos = 0
        for f in range(sizes.shape[1]):
            for k in range(sizes.shape[0]):
                offsets[k, f] = pos
                pos += int(sizes[k, f])
        return cls(sizes, offsets, pos)

    def index(self, field: str, stage: int) -> np.ndarray:
        f = FIELDS.index(field)
        start = int(self.offsets[stage, f])
        return np.arange(start, start + int(self.sizes[stage, f]))


@dataclass(frozen=True)
class SolveStats:
    """What one acados call reported."""

    status: int
    sqp_iter: int
    time_tot: float
    cost: float
    qp_status: int = 0  # acados status of the last QP (2: it stopped at its iteration limit)
    qp_iter: int = 0


class AcadosInstance:
    """A capsule of a compiled solver: parameters, bounds, solve, iterate."""

    def __init__(self, built: BuiltSolver) -> None:
        self._lib = _load(built)
        with acados_runtime.captured_output() as log:
            handle = self._lib.rlmpc_create()
        if not handle:
            raise RuntimeError(f"acados could not create solver {built.model_name}: {''.join(log)}")
        self._handle = handle
        self.horizon = int(self._lib.rlmpc_horizon(handle))
        sizes = np.zeros((self.horizon + 1) * len(FIELDS), dtype=np.intc)
        self._lib.rlmpc_stage_sizes(handle, sizes.ctypes.data_as(ctypes.POINTER(ctypes.c_int)))
        self.layout = IterateLayout.from_sizes(sizes.reshape(self.horizon + 1, len(FIELDS)))
        self._iterate = np.zeros(self.layout.total)
        self._stats = np.zeros(7)  # status, sqp_iter, time_tot, cost, bytes printed, qp_status, qp_iter
        # persistent buffers with cached pointers: ctypes' data_as costs microseconds per call
        nx = int(self.layout.sizes[0, 0])
        nu = int(self.layout.sizes[0, 1])
        self._x0, self._lbu0, self._ubu0 = np.zeros(nx), np.zeros(nu), np.zeros(nu)
        self._p_x0, self._p_lbu0, self._p_ubu0 = _ptr(self._x0), _ptr(self._lbu0), _ptr(self._ubu0)
        self._p_stats, self._p_iterate = _ptr(self._stats), _ptr(self._iterate)
        self._params_buf: FloatArray | None = None
        self._uh_pointers: tuple[FloatArray, FloatArray, object, object] | None = None
        self._p_params: object = None
        # the solves redirect file descriptor 1 in C, to this file (cf. acados_runtime.StdoutTrap)
        self._trap_file = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - lives with us
        self._trap_fd = self._trap_file.fileno()
        self.last_output = ""

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.rlmpc_free(self._handle)
            self._handle = None
        trap_file = getattr(self, "_trap_file", None)
        if trap_file is not None:
            trap_file.close()

    def __del__(self) -> None:
        self.close()

    def set_params_all(self, p_all: FloatArray) -> None:
        """Set stage parameters; ``p_all`` has one row per stage 0..N."""
        arr = np.ascontiguousarray(p_all, dtype=float)
        buf = self._params_buf
        if buf is None or buf.shape != arr.shape:  # a persistent buffer with a cached pointer
            buf = self._params_buf = np.empty(arr.shape)
            self._p_params = _ptr(buf)
        buf[...] = arr
        status = self._lib.rlmpc_set_params_all(self._handle, self._p_params, arr.shape[1])
        if status != 0:
            raise RuntimeError(f"acados rejected the stage parameters (status {status})")

    def set_qp_mu0(self, mu0: float) -> None:
        """HPIPM's initial barrier parameter for the following solves (HPIPM solvers only)."""
        self._lib.rlmpc_set_qp_mu0(self._handle, ctypes.c_double(mu0))

    def constraints_set(self, stage: int, field: str, value: FloatArray) -> None:
        arr = np.ascontiguousarray(value, dtype=float)
        self._lib.rlmpc_constraints_set(self._handle, stage, field.encode(), _ptr(arr))

    def set_uh_stages(self, uh_mid: FloatArray, uh_end: FloatArray) -> None:
        """Upper bounds of ``h`` on stages 1..N-1 and on stage N (contiguous float64 arrays; the
        pointers of the last pair of arrays are kept: pass persistent buffers)."""
        cached = self._uh_pointers
        if cached is None or cached[0] is not uh_mid or cached[1] is not uh_end:
            cached = self._uh_pointers = (uh_mid, uh_end, _ptr(uh_mid), _ptr(uh_end))
        self._lib.rlmpc_set_uh_stages(self._handle, cached[2], cached[3])

    def cost_set(self, stage: int, field: str, value: FloatArray) -> None:
        arr = np.ascontiguousarray(value, dtype=float)
        self._lib.rlmpc_cost_set(self._handle, stage, field.encode(), _ptr(arr))

    def solve(self, x0: FloatArray, lbu0: FloatArray, ubu0: FloatArray) -> SolveStats:
        """Solve with x_0 = x0 and lbu0 <= u_0 <= ubu0; inputs must be float64 arrays.

        What acados prints during the solve is kept in :attr:`last_output`.
        """
        return self.solve_full(x0, lbu0, ubu0)[0]

    def solve_full(self, x0: FloatArray, lbu0: FloatArray,
                   ubu0: FloatArray) -> tuple[SolveStats, FloatArray]:
        """:meth:`solve`, then :meth:`get_iterate`, in one C call (the learning loop's path)."""
        self._load(x0, lbu0, ubu0)
        sys.stdout.flush()
        self._lib.rlmpc_solve_full(self._handle, self._p_x0, self._p_lbu0, self._p_ubu0,
                                   self._p_stats, self._p_iterate, self._trap_fd)
        return self._result()

    def _load(self, x0: FloatArray, lbu0: FloatArray, ubu0: FloatArray) -> None:
        self._x0[:] = x0
        self._lbu0[:] = lbu0
        self._ubu0[:] = ubu0

    def _result(self) -> tuple[SolveStats, FloatArray]:
        if math.isnan(self._stats[3]):  # (a solve made without its cost: rlmpc_solve_policy)
            self._stats[3] = self._lib.rlmpc_cost(self._handle)
        status, sqp_iter, time_tot, cost, printed, qp_status, qp_iter = self._stats.tolist()
        self.last_output = self._take_output() if printed > 0.0 else ""
        return (SolveStats(int(status), int(sqp_iter), time_tot, cost, int(qp_status), int(qp_iter)),
                self._iterate.copy())

    def solve_pair_with(self, other: AcadosInstance, x0: FloatArray, lbu0: FloatArray, ubu0: FloatArray,
                        other_x0: FloatArray, other_lbu0: FloatArray, other_ubu0: FloatArray,
                        ) -> tuple[tuple[SolveStats, FloatArray], tuple[SolveStats, FloatArray]]:
        """:meth:`solve_full` here, then on ``other`` (an instance of the same solver), in one C call."""
        if other._lib is not self._lib:
            return self.solve_full(x0, lbu0, ubu0), other.solve_full(other_x0, other_lbu0, other_ubu0)
        self._load(x0, lbu0, ubu0)
        other._load(other_x0, other_lbu0, other_ubu0)
        sys.stdout.flush()
        self._lib.rlmpc_solve_pair(self._handle, self._p_x0, self._p_lbu0, self._p_ubu0, self._p_stats,
                                   self._p_iterate, self._trap_fd, other._handle, other._p_x0,
                                   other._p_lbu0, other._p_ubu0, other._p_stats, other._p_iterate,
                                   other._trap_fd)
        return self._result(), other._result()

    def _take_output(self) -> str:
        f = self._trap_file
        f.seek(0)
        text = f.read().decode(errors="replace")
        f.seek(0)
        f.truncate()
        return text

    def detailed_stats(self) -> dict[str, float]:
        """acados' statistics of the last solve: the last QP's status and iterations, and the
        timings (s) of linearisation, QP (condensing + solver call), regularisation, total."""
        out = np.zeros(8)
        self._lib.rlmpc_get_stats(self._handle, _ptr(out))
        keys = ("qp_status", "qp_iter", "time_lin", "time_qp", "time_qp_solver_call",
                "time_qp_xcond", "time_reg", "time_tot")
        return dict(zip(keys, out.tolist(), strict=True))

    def get_iterate(self) -> FloatArray:
        """The full primal-dual iterate (copy), laid out as in :class:`IterateLayout`."""
        self._lib.rlmpc_get_iterate(self._handle, self._p_iterate)
        return self._iterate.copy()

    def set_iterate(self, iterate: FloatArray) -> None:
        arr = np.ascontiguousarray(iterate, dtype=float)
        if arr.size != self.layout.total:
            raise ValueError(f"iterate: expected {self.layout.total} entries, got {arr.size}")
        self._lib.rlmpc_set_iterate(self._handle, _ptr(arr))

    def shift_iterate(self) -> None:
        """Shift the states and inputs of the iterate one stage earlier (the last repeated), as a
        warm start for the next sampling instant; multipliers and slacks stay."""
        it, lay = self.get_iterate(), self.layout
        for field, last in (("x", self.horizon), ("u", self.horizon - 1)):
            for k in range(last):
                it[lay.index(field, k)] = it[lay.index(field, k + 1)]
        self.set_iterate(it)

    def reset(self) -> None:
        """Forget the warm start (primal-dual iterate and QP memory)."""
        self._lib.rlmpc_reset(self._handle)
