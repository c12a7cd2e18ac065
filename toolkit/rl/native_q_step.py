"""A second-order LSTD Q-learning step in one C call (``toolkit/native/rlmpc_learning_step.c``).

:class:`rlmpc.toolkit.rl.q_learning.LstdQLearning` hands its common case here: Newton updates on every
step with ``hessian = "approx"``, the default replay, no device in the loop.  The C step calls the same
acados solvers, the same CasADi expressions (compiled from the functions the Python path evaluates) and
the same LAPACK routines (numpy's for the eigenvalues and Cholesky factors, scipy's for the solves), in
the same order, so it computes the Python path's numbers, bit for bit
(``tests/test_native_q_step.py``).  What is not the common case — a failed, printing or unverified
solve, a Newton step that leaves the step box, a failed factorisation — comes back to Python with what
C has computed, and Python carries on exactly where its own path would be.

Without a C compiler, or without numpy's LAPACK library, :func:`native_q_step` returns None and the
Python path runs alone.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np

from rlmpc.toolkit.native_build import CasadiCall, address, native_library, numpy_lapack, scipy_lapack
from rlmpc.toolkit.parameters import FloatArray

if TYPE_CHECKING:
    from rlmpc.toolkit.mpc import MPC, MpcSolution
    from rlmpc.toolkit.rl.optimizers import NewtonMethod

DONE, SOLVES, UPDATE = 0, 1, 2  # rlmpc_qlearning_step's return values
_V, _I, _D, _L = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_longlong


class _Instance(ctypes.Structure):
    _fields_ = [("handle", _V), ("x0", _V), ("lbu0", _V), ("ubu0", _V), ("stats", _V), ("iterate", _V),
                ("trap_fd", _I)]


class _Context(ctypes.Structure):
    _fields_ = [
        ("solve_full", _V), ("set_params_all", _V), ("set_uh_stages", _V), ("q", _Instance),
        ("v", _Instance), ("check_qp", _I),
        ("nx", _I), ("nu", _I), ("ntheta", _I), ("np", _I), ("n_stage_params", _I), ("n_stages", _I),
        ("stage_params", _V), ("lbu", _V), ("ubu", _V),
        ("n_raw", _I), ("n_expanded", _I), ("source", _V), ("consts", _V), ("expanded", _V),
        ("gradhess", _V), ("gh_arg", _V), ("gh_res", _V), ("gh_iw", _V), ("gh_w", _V), ("grad", _V),
        ("hess", _V),
        ("upper", _V), ("up_arg", _V), ("up_res", _V), ("up_iw", _V), ("up_w", _V), ("uh_mid", _V),
        ("uh_end", _V),
        ("discount", _D), ("lr", _D), ("damping", _D), ("theta", _V), ("p", _V), ("lb", _V), ("ub", _V),
        ("syevd", _V), ("potrf", _V), ("potrs", _V), ("work", _V), ("lwork", _L), ("liwork", _L),
        ("iwork", _V),
        ("s", _V), ("a", _V), ("s_next", _V), ("cost", _D), ("terminated", _I), ("td", _D),
        ("q_value", _D), ("v_value", _D), ("g", _V), ("h", _V), ("theta_out", _V),
    ]


class NativeQStep:
    """The C context of one agent's MPC and optimiser (see the module docstring)."""

    def __init__(self, mpc: MPC, optimizer: NewtonMethod, discount: float, step_lib: ctypes.CDLL,
                 lapack64: ctypes.CDLL) -> None:
        self.mpc = mpc
        self.optimizer = optimizer
        self.outcomes = [0, 0, 0]  # steps done in C; solves left to Python; updates left to Python
        self._step = step_lib.rlmpc_qlearning_step
        self._step.argtypes, self._step.restype = [ctypes.c_void_p], ctypes.c_int
        q, v = mpc._instance("Q"), mpc._instance("V")
        self.q_inst, self.v_inst = q, v
        fns, sens = mpc.fns, mpc.sensitivities
        layout = mpc._expansion.layout if mpc._expansion is not None else q.layout
        self._gh = CasadiCall(sens._fused_hess_theta(True, layout).fn, step_lib)
        nth = fns.ntheta
        keep: list[object] = []  # arrays whose memory C reads or writes

        def ptr(arr: np.ndarray) -> int:
            keep.append(arr)
            return int(arr.ctypes.data)

        c = _Context()
        glue = q._lib
        c.solve_full = address(glue.rlmpc_solve_full)
        c.set_params_all = address(glue.rlmpc_set_params_all)
        c.set_uh_stages = address(glue.rlmpc_set_uh_stages)
        for field, inst in (("q", q), ("v", v)):
            setattr(c, field, _Instance(inst._handle, ptr(inst._x0), ptr(inst._lbu0), ptr(inst._ubu0),
                                        ptr(inst._stats), ptr(inst._iterate), inst._trap_fd))
        c.check_qp = int(mpc._check_qp)
        c.nx, c.nu, c.ntheta, c.np = fns.nx, fns.nu, nth, mpc._p.size
        params = mpc._stage_parameters
        c.n_stages, c.n_stage_params = params.shape
        c.stage_params = ptr(params)
        c.lbu, c.ubu = ptr(mpc._lbu), ptr(mpc._ubu)
        c.n_raw = q.layout.total
        exp = mpc._expansion
        if exp is not None:
            c.n_expanded = exp.layout.total
            c.source, c.consts = ptr(np.ascontiguousarray(exp._source, dtype=np.int64)), ptr(
                np.ascontiguousarray(exp._consts, dtype=float) if exp._consts.size else np.zeros(1))
        else:
            c.n_expanded, c.source, c.consts = c.n_raw, None, None
        self.expanded = np.zeros(c.n_expanded + 1)
        c.expanded = ptr(self.expanded)
        c.gradhess, c.gh_arg, c.gh_res = self._gh.fn, ptr(self._gh.arg), ptr(self._gh.res)
        c.gh_iw, c.gh_w = ptr(self._gh.iw), ptr(self._gh.w)
        self.grad, self.hess = np.zeros(nth), np.zeros(nth * nth)
        c.grad, c.hess = ptr(self.grad), ptr(self.hess)
        if mpc._pairs is not None and mpc._uh is not None:
            self._up = CasadiCall(mpc._uh.fn, step_lib)
            c.upper, c.up_arg, c.up_res = self._up.fn, ptr(self._up.arg), ptr(self._up.res)
            c.up_iw, c.up_w = ptr(self._up.iw), ptr(self._up.w)
            mid, end = mpc._merged_upper_bounds()
            self.uh_mid, self.uh_end = np.zeros(mid.size), np.zeros(end.size)
            c.uh_mid, c.uh_end = ptr(self.uh_mid), ptr(self.uh_end)
        c.discount, c.damping = discount, optimizer.damping
        self.theta, self.p = np.zeros(nth), np.zeros(mpc._p.size if mpc._p.size else 1)
        c.theta, c.p = ptr(self.theta), ptr(self.p)
        c.lb, c.ub = ptr(np.ascontiguousarray(optimizer.lb)), ptr(np.ascontiguousarray(optimizer.ub))
        c.syevd = address(lapack64.scipy_dsyevd_64_)
        c.potrf = address(lapack64.scipy_dpotrf_64_)
        c.potrs = scipy_lapack("dpotrs")
        lwork, liwork = ctypes.c_longlong(), ctypes.c_longlong()
        step_lib.rlmpc_syevd_work(ctypes.c_void_p(c.syevd), ctypes.c_longlong(nth), ctypes.byref(lwork),
                                  ctypes.byref(liwork))
        c.lwork, c.liwork = max(lwork.value, 2 * nth + 1), max(liwork.value, 1)
        self.work = np.zeros(3 * nth * nth + nth + c.lwork)
        self.iwork = np.zeros(c.liwork, dtype=np.int64)
        c.work, c.iwork = ptr(self.work), ptr(self.iwork)
        self.s, self.a, self.s_next = np.zeros(fns.nx), np.zeros(fns.nu), np.zeros(fns.nx)
        c.s, c.a, c.s_next = ptr(self.s), ptr(self.a), ptr(self.s_next)
        self.g, self.h, self.theta_out = np.zeros(nth), np.zeros((nth, nth)), np.zeros(nth)
        c.g, c.h, c.theta_out = ptr(self.g), ptr(self.h), ptr(self.theta_out)
        self._keep = keep
        self.ctx = c
        self._ctx_ref = ctypes.byref(c)
        self._u0 = int(q.layout.offsets[0, 1]), int(q.layout.offsets[0, 1] + q.layout.sizes[0, 1])

    def run(self, s: FloatArray, a: FloatArray, cost: float, s_next: FloatArray, terminated: bool,
            lr: float) -> int:
        """One step (see the C file): DONE, SOLVES or UPDATE."""
        if self.q_inst._handle is None or self.v_inst._handle is None:
            raise RuntimeError("the MPC's solvers were closed (MPC.close); its learning step cannot run")
        np.copyto(self.s, s)
        np.copyto(self.a, a)
        np.copyto(self.s_next, s_next)
        np.copyto(self.theta, self.mpc._theta)
        if self.mpc._p.size:
            np.copyto(self.p, self.mpc._p)
        c = self.ctx
        c.cost, c.terminated, c.lr = cost, int(terminated), lr
        outcome = int(self._step(self._ctx_ref))
        self.outcomes[outcome] += 1
        return outcome

    def report(self) -> dict[str, int]:
        """How the steps went (this process): all in C, or which part was left to Python."""
        done, solves, update = self.outcomes
        return {"steps_in_c": done, "steps_solves_in_python": solves, "steps_update_in_python": update}

    @property
    def td(self) -> float:
        return float(self.ctx.td)

    def next_greedy_action(self) -> FloatArray:
        """u_0 of the V solution (after DONE: both solves verified)."""
        lo, hi = self._u0
        return self.v_inst._iterate[lo:hi].copy()

    def solutions(self, s: FloatArray, a: FloatArray, s_next: FloatArray) -> tuple[MpcSolution, MpcSolution]:
        """The two solves' solutions, finished as the Python path finishes them (verification,
        fallback solves, failures, layout)."""
        mpc = self.mpc
        q_stats, q_it = self.q_inst._result()
        v_stats, v_it = self.v_inst._result()
        return (mpc._finish("Q", self.q_inst, q_stats, q_it, s.copy(), a.copy()),
                mpc._finish("V", self.v_inst, v_stats, v_it, s_next.copy(), None))

    def sample(self) -> dict[str, FloatArray]:
        """(g, H) of the step, as the Python path stores them."""
        return {"g": self.g.copy(), "H": self.h.copy()}

    def commit_theta(self) -> None:
        """After DONE: C has set θ on the Q and V solvers; the MPC takes it over."""
        self.mpc._adopt_theta(self.theta_out.copy())


def native_q_step(mpc: MPC, optimizer: NewtonMethod, discount: float) -> NativeQStep | str:
    """The C step for this MPC and optimiser, or why it cannot be built here."""
    step_lib = native_library("rlmpc_learning_step")
    lapack64 = numpy_lapack()
    if step_lib is None or lapack64 is None:
        return "no C compiler, or numpy's LAPACK library is not where its wheel puts it"
    step_lib.rlmpc_syevd_work.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p]
    try:
        return NativeQStep(mpc, optimizer, discount, step_lib, lapack64)
    except OSError as exc:
        return f"could not be built ({exc})"


