"""The fallback gain of an embedded solver: the LQR gain at a steady state, if there is one.

After a failed solve the RTI solver applies ``u = ū − K (x − x̄)`` (clipped to the input
bounds).  The steady state (x̄, ū) comes, first found first:

1. the user's ``--operating-point`` (``{"x": […], "u": […]}``, or ``"none"``);
2. the problem definition's :meth:`~rlmpc.toolkit.problem.ParametricMPC.operating_point`
   (it may use p, e.g. a reference, evaluated at the exported p);
3. the problem's reference: the steady state ``x = F(x, u)`` within the input bounds that
   minimises the stage cost (a target calculation, IPOPT).

A point the user gave must be a steady state with a stabilisable linearisation, else the
export is refused in one line naming what to change.  When the reference has no
stabilisable linearisation (a unicycle at rest: no smooth time-invariant feedback
stabilises it), there is no gain: the solver returns NaN after a failed solve and the
firmware applies the previous plan, shifted (else the safe action).  The linear solver's
pre-stabilisation for condensing (:func:`prestabilising_gain`) falls back likewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import casadi as cs
import numpy as np
import scipy.linalg

from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions

STEADY_TOL = 1e-6  # ‖F(x̄, ū) − x̄‖∞ of a steady state (relative to 1 + ‖x̄‖∞)
STABLE_MARGIN = 1e-9  # spectral radius of A − B K below 1 − this


@dataclass(frozen=True)
class Fallback:
    """The fallback of a failed solve: the gain (None: none) at (x̄, ū), where it came from."""

    K: FloatArray | None
    x_op: FloatArray
    u_op: FloatArray
    source: str
    note: str = ""

    def manifest(self) -> dict[str, Any]:
        return {"gain": self.K is not None, "source": self.source,
                "operating_point": {"x": self.x_op.tolist(), "u": self.u_op.tolist()},
                **({"K": self.K.tolist()} if self.K is not None else {}),
                "after a failed solve": ("u = u_op - K (x - x_op), clipped to the input bounds"
                                         if self.K is not None else
                                         "the previous plan shifted, else the safe action"),
                **({"note": self.note} if self.note else {})}

    def summary(self) -> str:
        point = f"x={np.round(self.x_op, 6).tolist()}, u={np.round(self.u_op, 6).tolist()}"
        if self.K is not None:
            return f"fallback: LQR gain at the steady state {point} ({self.source})"
        return (f"fallback: the previous plan shifted, else the safe action (no gain: {self.note})")


def lqr(A: FloatArray, B: FloatArray, W: FloatArray) -> FloatArray | None:
    """The discrete LQR gain of (A, B) with the stage Hessian W = [[Q, S], [Sᵀ, R]], or None if
    (A, B) is not stabilisable with it (Q, R regularised by 1e-9·‖W‖ when singular)."""
    nx = A.shape[0]
    Q, S, R = W[:nx, :nx], W[:nx, nx:], W[nx:, nx:]
    eps = 1e-9 * max(float(np.abs(W).max(initial=0.0)), 1.0)
    for reg in (0.0, eps):
        try:
            Qr, Rr = Q + reg * np.eye(nx), R + reg * np.eye(R.shape[0])
            P = scipy.linalg.solve_discrete_are(A, B, Qr, Rr, s=S)
            K = np.linalg.solve(Rr + B.T @ P @ B, B.T @ P @ A + S.T)
        except (np.linalg.LinAlgError, ValueError):
            continue
        if np.all(np.isfinite(K)) and max(abs(np.linalg.eigvals(A - B @ K))) < 1.0 - STABLE_MARGIN:
            return np.asarray(K, dtype=float)
    return None


def _linear_model(fns: ProblemFunctions, theta: FloatArray, p: FloatArray, x: FloatArray,
                  u: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """F(x̄, ū), its Jacobians A, B and the stage cost Hessian W at (x̄, ū)."""
    xs, us = fns.dynamics.sx_in(0), fns.dynamics.sx_in(1)
    z = cs.vertcat(xs, us)
    f = fns.dynamics(xs, us, theta, p)
    cost = fns.stage_cost(xs, us, theta, p) + fns.stage_cost_undiscounted(xs, us, theta, p)
    fn = cs.Function("fallback_model", [xs, us], [f, cs.jacobian(f, xs), cs.jacobian(f, us),
                                                  cs.hessian(cost, z)[0]])
    F, A, B, W = (np.asarray(v, dtype=float) for v in fn(x, u))
    return F.ravel(), A, B, W


def steady_target(fns: ProblemFunctions, theta: FloatArray, p: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """The steady state within the input bounds that minimises the stage cost, or None."""
    xs, us = fns.dynamics.sx_in(0), fns.dynamics.sx_in(1)
    z = cs.vertcat(xs, us)
    cost = fns.stage_cost(xs, us, theta, p) + fns.stage_cost_undiscounted(xs, us, theta, p)
    g = fns.dynamics(xs, us, theta, p) - xs
    solver = cs.nlpsol("steady_target", "ipopt", {"x": z, "f": cost, "g": g},
                       {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes"})
    lbz = np.concatenate([np.full(fns.nx, -np.inf), fns.u_lb])
    ubz = np.concatenate([np.full(fns.nx, np.inf), fns.u_ub])
    z0 = np.clip(np.zeros(fns.nx + fns.nu), lbz, ubz)
    sol = solver(x0=z0, lbx=lbz, ubx=ubz, lbg=0.0, ubg=0.0)
    if not solver.stats().get("success", False):
        return None
    zs = np.asarray(sol["x"], dtype=float).ravel()
    return zs[:fns.nx], zs[fns.nx:]


def _given(operating_point: Any, fns: ProblemFunctions) -> tuple[FloatArray, FloatArray]:
    if not (isinstance(operating_point, dict) and set(operating_point) == {"x", "u"}):
        raise ValueError('--operating-point: expected {"x": [...], "u": [...]} or "none"')
    try:
        x = np.asarray(operating_point["x"], dtype=float).ravel()
        u = np.asarray(operating_point["u"], dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError("--operating-point: x and u must be lists of numbers") from None
    if x.size != fns.nx or u.size != fns.nu or not (np.all(np.isfinite(x)) and np.all(np.isfinite(u))):
        raise ValueError(f"--operating-point: expected x with {fns.nx} and u with {fns.nu} finite "
                         f"numbers, got {x.size} and {u.size}")
    return x, u


def fallback_gain(fns: ProblemFunctions, theta: FloatArray, p: FloatArray,
                  operating_point: Any = None) -> Fallback:
    """The fallback of an exported nonlinear solver (see the module docstring).

    ``operating_point``: the user's ``{"x", "u"}``, ``"none"`` (no gain), or None (the
    definition's operating point, else the problem's reference)."""
    if operating_point == "none":
        return Fallback(None, np.zeros(fns.nx), np.zeros(fns.nu), "none",
                        "--operating-point none")
    if operating_point is not None:
        x, u = _given(operating_point, fns)
        where, hint = "--operating-point", "give another --operating-point, or none"
    elif fns.operating_point is not None:
        xu = np.asarray(fns.operating_point(theta, p), dtype=float).ravel()
        x, u = xu[:fns.nx], xu[fns.nx:]
        where, hint = (f"problem {fns.name!r}: operating_point", "change the problem's operating_point, "
                       "or export with --operating-point none")
    else:
        target = steady_target(fns, theta, p)
        if target is None:
            return Fallback(None, np.zeros(fns.nx), np.zeros(fns.nu), "none",
                            "no steady state within the input bounds minimises the stage cost "
                            "(set the problem's operating_point or --operating-point)")
        x, u = target
        F, A, B, W = _linear_model(fns, theta, p, x, u)
        K = lqr(A, B, W)
        note = "" if K is not None else ("the linearisation at the reference is not stabilisable "
                                         "(set the problem's operating_point for a gain)")
        return Fallback(K, x, u, "the problem's reference: the steady state minimising the stage cost", note)
    F, A, B, W = _linear_model(fns, theta, p, x, u)
    if np.max(np.abs(F - x)) > STEADY_TOL * (1.0 + np.max(np.abs(x))):
        raise ValueError(f"{where}: x={x.tolist()}, u={u.tolist()} is not a steady state "
                         f"(|F(x, u) - x| = {np.max(np.abs(F - x)):.3g}); {hint}")
    if np.any(u < fns.u_lb) or np.any(u > fns.u_ub):
        raise ValueError(f"{where}: u={u.tolist()} is outside the input bounds; {hint}")
    K = lqr(A, B, W)
    if K is None:
        raise ValueError(f"{where}: the linearisation at x={x.tolist()}, u={u.tolist()} is not "
                         f"stabilisable with the stage cost's weights (no LQR gain); {hint}")
    return Fallback(K, x, u, "--operating-point" if operating_point is not None else "the problem's operating_point")


def prestabilising_gain(A: FloatArray, B: FloatArray, W: FloatArray) -> FloatArray:
    """The condensing's pre-stabilisation: the LQR gain, else zero (plain condensing)."""
    K = lqr(A, B, W)
    return np.zeros((B.shape[1], A.shape[0])) if K is None else K
