"""The DPG step's MPC work in one C call (``rlmpc_dpg_step`` of ``toolkit/native/rlmpc_learning_step.c``).

:class:`rlmpc.toolkit.rl.dpg.DeterministicPolicyGradient` hands each step's V solve and ∇θπ here when
the problem takes the planned reduced KKT path (at most ``DENSE_MAX`` NLP variables, no use of the
x₀ multiplier) and no device is in the loop.  C solves V(s), checks it as ``MPC`` does, unpacks the
iterate, evaluates the KKT blocks (CasADi's C of the function the Python path evaluates), finds the
reduction plan of the sparsity pattern and active set and solves it (``rlmpc_planned_u_rows``, which
the Python path calls too): the Python path's numbers, bit for bit (``tests/test_native_dpg_step.py``).
A plan not met before is made in Python (:func:`rlmpc.toolkit.kkt_reduction.make_plan`) and handed to
C; a failed, printing or unverified solve, or a singular plan, comes back to Python, which carries on
as its own path would.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np

from rlmpc.toolkit.kkt_reduction import LuCache
from rlmpc.toolkit.native_build import CasadiCall, address, native_library, numpy_lapack
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.rl.native_q_step import _Instance
from rlmpc.toolkit.sensitivities import ACTIVE_TOL, DENSE_MAX, PLAN_CACHE

if TYPE_CHECKING:
    from rlmpc.toolkit.mpc import MPC, MpcSolution

DONE, SOLVE, PLAN, SINGULAR = 0, 1, 2, 3  # rlmpc_dpg_step's return values
_V, _I = ctypes.c_void_p, ctypes.c_int
_NATIVE_ACTIVE_TOL = 1e-7  # RLMPC_ACTIVE_TOL of the C file


class _Plan(ctypes.Structure):
    _fields_ = [("n", _I), ("n_k", _I), ("n_r", _I), ("n_u", _I), ("k_src", _V), ("k_dst", _V),
                ("r_src", _V), ("r_dst", _V), ("u_rows", _V), ("u_out", _V), ("hash", ctypes.c_ulonglong),
                ("key", _V)]


class _Context(ctypes.Structure):
    _fields_ = [
        ("solve_full", _V), ("v", _Instance), ("check_qp", _I), ("nx", _I), ("nu", _I), ("ntheta", _I),
        ("lbu", _V), ("ubu", _V), ("n_raw", _I), ("n_expanded", _I), ("source", _V), ("consts", _V),
        ("expanded", _V), ("nw", _I), ("nmu", _I), ("nlam", _I), ("w_idx", _V), ("mu_plus", _V),
        ("mu_minus", _V), ("lam_idx", _V), ("mu_scale", _V), ("w", _V), ("mu", _V), ("lam", _V),
        ("kkt", _V), ("kkt_arg", _V), ("kkt_res", _V), ("kkt_iw", _V), ("kkt_w", _V), ("n_kkt_out", _I),
        ("kkt_offsets", _V), ("data", _V), ("n_data", _I), ("key", _V), ("plans", _V), ("n_plans", _I),
        ("getrf", _V), ("getrs", _V), ("cache", _V), ("K", _V), ("rhs", _V), ("Y", _V), ("du", _V),
        ("ipiv", _V), ("s", _V), ("zero_a", _V), ("theta", _V), ("p", _V), ("u0", _V), ("jac", _V), ("plan", _I),
    ]


def _ints(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


class NativeDpgStep:
    """The C context of one agent's MPC (see the module docstring)."""

    def __init__(self, mpc: MPC, kernels: ctypes.CDLL, lapack64: ctypes.CDLL) -> None:
        assert ACTIVE_TOL == _NATIVE_ACTIVE_TOL
        self.mpc = mpc
        self.outcomes = [0, 0, 0, 0]  # by outcome (DONE, SOLVE, PLAN: plans made, SINGULAR)
        self._step = kernels.rlmpc_dpg_step
        self._sensitivity = kernels.rlmpc_dpg_sensitivity
        self._hash = kernels.rlmpc_key_hash
        for fn in (self._step, self._sensitivity):
            fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_int
        self._hash.argtypes, self._hash.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_ulonglong
        v = mpc._instance("V")
        self.v_inst = v
        fns, sens = mpc.fns, mpc.sensitivities
        layout = mpc._expansion.layout if mpc._expansion is not None else v.layout
        m = sens._map(False, layout)
        ev = sens._eval(False)
        self._kkt = CasadiCall(ev.kkt_sparse.fn, kernels)
        keep: list[object] = []

        def ptr(arr: np.ndarray) -> int:
            keep.append(arr)
            return int(arr.ctypes.data)

        c = _Context()
        c.solve_full = address(v._lib.rlmpc_solve_policy)  # (no cost: DPG does not use V's value)
        c.v = _Instance(v._handle, ptr(v._x0), ptr(v._lbu0), ptr(v._ubu0), ptr(v._stats), ptr(v._iterate),
                        v._trap_fd)
        c.check_qp = int(mpc._check_qp)
        nth = fns.ntheta
        c.nx, c.nu, c.ntheta = fns.nx, fns.nu, nth
        c.lbu, c.ubu = ptr(mpc._lbu), ptr(mpc._ubu)
        c.n_raw = v.layout.total
        exp = mpc._expansion
        if exp is not None:
            c.n_expanded = exp.layout.total
            c.source = ptr(_ints(exp._source))
            c.consts = ptr(np.ascontiguousarray(exp._consts, dtype=float) if exp._consts.size else np.zeros(1))
        else:
            c.n_expanded, c.source, c.consts = c.n_raw, None, None
        c.expanded = ptr(np.zeros(c.n_expanded + 1))
        c.nw, c.nmu, c.nlam = m.w.size, m.mu_plus.size, m.lam.size
        c.w_idx, c.mu_plus, c.mu_minus, c.lam_idx = (ptr(_ints(a)) for a in (m.w, m.mu_plus, m.mu_minus, m.lam))
        c.mu_scale = ptr(np.ascontiguousarray(m.mu_scale, dtype=float))
        self.lam = np.zeros(max(c.nlam, 1))
        c.w, c.mu, c.lam = ptr(np.zeros(max(c.nw, 1))), ptr(np.zeros(max(c.nmu, 1))), ptr(self.lam)
        c.kkt, c.kkt_arg, c.kkt_res = self._kkt.fn, ptr(self._kkt.arg), ptr(self._kkt.res)
        c.kkt_iw, c.kkt_w = ptr(self._kkt.iw), ptr(self._kkt.w)
        nnz = [ev.kkt_sparse.fn.nnz_out(i) for i in range(ev.kkt_sparse.fn.n_out())]
        c.n_kkt_out = len(nnz)
        c.kkt_offsets = ptr(np.concatenate([[0], np.cumsum(nnz)[:-1]]).astype(np.int64))
        self.n_data = int(sum(nnz[:6]))
        self.data = np.zeros(int(sum(nnz)) + 1)
        c.data, c.n_data = ptr(self.data), self.n_data
        self.key = np.zeros(self.n_data + c.nlam, dtype=np.uint8)
        c.key = ptr(self.key)
        self.plans = (_Plan * PLAN_CACHE)()
        c.plans, c.n_plans = ctypes.addressof(self.plans), 0
        self._plan_arrays: list[object] = []
        c.getrf, c.getrs = address(lapack64.scipy_dgetrf_64_), address(lapack64.scipy_dgetrs_64_)
        n_max = DENSE_MAX + c.nlam + c.nw + c.nmu  # (a plan's n never exceeds the KKT system's size)
        # (K takes each Jacobian nonzero twice, as its transpose too: at most twice the blocks' nonzeros)
        self._cache, cache_arrays = LuCache.sized(min(n_max, DENSE_MAX), 2 * self.n_data)
        keep.extend(cache_arrays)
        c.cache = ctypes.addressof(self._cache)
        c.K, c.rhs = ptr(np.zeros(n_max * n_max)), ptr(np.zeros(n_max * nth))
        c.Y, c.du = ptr(np.zeros(n_max * fns.nu)), ptr(np.zeros(fns.nu * nth))
        c.ipiv = ptr(np.zeros(n_max, dtype=np.int64))
        self.s, self.theta = np.zeros(fns.nx), np.zeros(nth)
        self.p = np.zeros(max(mpc._p.size, 1))
        c.s, c.zero_a, c.theta, c.p = ptr(self.s), ptr(np.zeros(fns.nu)), ptr(self.theta), ptr(self.p)
        self.jac = np.zeros((fns.nu, nth))
        c.u0, c.jac = ptr(np.zeros(fns.nu)), ptr(self.jac)
        self._keep = keep
        self.ctx = c
        self._ref = ctypes.byref(c)
        self._u0 = int(v.layout.offsets[0, 1]), int(v.layout.offsets[0, 1] + v.layout.sizes[0, 1])

    def run(self, s: FloatArray) -> int:
        """V(s) and ∇θπ(s): DONE, SOLVE or SINGULAR (a missing plan is made and registered here)."""
        if self.v_inst._handle is None:
            raise RuntimeError("the MPC's solvers were closed (MPC.close); its learning step cannot run")
        np.copyto(self.s, s)
        np.copyto(self.theta, self.mpc._theta)
        if self.mpc._p.size:
            np.copyto(self.p, self.mpc._p)
        outcome = int(self._step(self._ref))
        if outcome == PLAN:
            self.outcomes[PLAN] += 1
            outcome = self._register_plan()
        self.outcomes[outcome] += 1
        return outcome

    def report(self) -> dict[str, int]:
        """How the steps went (this process): all in C, or which part was left to Python."""
        return {"policy_solves_in_c": self.outcomes[DONE], "policy_solves_in_python": self.outcomes[SOLVE],
                "plans_made": self.outcomes[PLAN], "sensitivities_in_python": self.outcomes[SINGULAR]}

    def _register_plan(self) -> int:
        """The plan of the current pattern and active set from the Python path's cache (made there if
        new), handed to C; then the sensitivity.  SINGULAR where Python keeps no plan (too large)."""
        sens = self.mpc.sensitivities
        key = self.key.tobytes()
        nonzero = self.key[:self.n_data].astype(bool)
        active = self.lam[:self.ctx.nlam] > ACTIVE_TOL
        plan = sens._pi_plan(key, nonzero, active)
        if plan is None:
            return SINGULAR
        if self.ctx.n_plans >= PLAN_CACHE:
            self.ctx.n_plans = 0
            self._plan_arrays.clear()
        arrays = [plan.k_src, plan.k_dst, plan.r_src, plan.r_dst, plan.u_rows, plan.u_out]
        key_copy = np.frombuffer(key, dtype=np.uint8).copy()
        self._plan_arrays.append((plan, key_copy))
        entry = self.plans[self.ctx.n_plans]
        entry.n, entry.n_k, entry.n_r, entry.n_u = plan.n, plan.k_src.size, plan.r_src.size, plan.u_rows.size
        entry.k_src, entry.k_dst, entry.r_src, entry.r_dst, entry.u_rows, entry.u_out = (
            int(a.ctypes.data) for a in arrays)
        entry.key = int(key_copy.ctypes.data)
        entry.hash = self._hash(key_copy.ctypes.data, key_copy.size)
        self.ctx.n_plans += 1
        return int(self._sensitivity(self._ref))

    def policy(self) -> tuple[FloatArray, FloatArray]:
        """(π(s), ∇θπ(s)) after DONE (copies)."""
        lo, hi = self._u0
        return self.v_inst._iterate[lo:hi].copy(), self.jac.copy()

    def solution(self, s: FloatArray) -> MpcSolution:
        """The V solution, finished as the Python path finishes it (verification, fallback, layout)."""
        stats, iterate = self.v_inst._result()
        return self.mpc._finish("V", self.v_inst, stats, iterate, s.copy(), None)


def native_dpg_step(mpc: MPC) -> NativeDpgStep | str:
    """The C step for this MPC, or why it does not apply or cannot be built here."""
    sens = mpc.sensitivities
    if not mpc.options.warm_start:
        return "solver warm_start = false"
    if sens.transcriptions[False].nw > DENSE_MAX:
        return f"more than {DENSE_MAX} NLP variables (∇θπ by the Riccati pass)"
    if sens._eval(False).kkt_needs_x0_multiplier:
        return "the KKT blocks use the multiplier of x0 = s"
    kernels, lapack64 = native_library("rlmpc_learning_step"), numpy_lapack()
    if kernels is None or lapack64 is None:
        return "no C compiler, or numpy's LAPACK library is not where its wheel puts it"
    try:
        return NativeDpgStep(mpc, kernels, lapack64)
    except OSError as exc:
        return f"could not be built ({exc})"

