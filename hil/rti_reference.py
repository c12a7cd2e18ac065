"""The workstation reference of a real-time-iteration device: acados SQP_RTI run like the device.

The device (``rlmpc export --target cortex-m4`` of a nonlinear MPC) iterates to convergence on
its first step after RESET (``STARTUP_ITERATIONS`` Gauss-Newton steps at the same state), then
makes one real-time iteration per step from the last plan, shifted by one stage (or as it is,
per the manifest); after a failed step it iterates to convergence from the rollout of its fallback
input.  :class:`RtiReference` does the same with acados SQP_RTI (Gauss-Newton) at
the bundle's θ, so that HIL compares the device with the same algorithm; the converged MPC's
input on the same states is recorded as a second figure (``converged_distance``), not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import ProblemFunctions

RTI_OPTIONS = SolverOptions(nlp_solver="SQP_RTI", hessian="GAUSS_NEWTON", tol=1e-9)


def is_rti_bundle(manifest: dict[str, Any]) -> bool:
    """A bare-metal bundle whose solver is a real-time iteration."""
    kind = str(manifest.get("solver", {}).get("kind", ""))
    return manifest.get("target") == "cortex-m4" and kind.startswith("real-time iteration")


@dataclass(frozen=True)
class FallbackInput:
    """The device's fallback input (the bundle manifest's ``fallback`` and ``input_bounds``):
    ``u_op − K (x − x_op)`` clipped to the input bounds; without a gain, 0 clipped."""

    K: np.ndarray | None
    x_op: np.ndarray
    u_op: np.ndarray
    lb: np.ndarray
    ub: np.ndarray

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> FallbackInput:
        fb = manifest.get("fallback", {})
        point = fb.get("operating_point", {})
        bounds = manifest["input_bounds"]
        lb, ub = np.asarray(bounds["lb"], dtype=float), np.asarray(bounds["ub"], dtype=float)
        gain = np.asarray(fb["K"], dtype=float) if fb.get("gain") and "K" in fb else None
        x_op = np.asarray(point.get("x", []), dtype=float)
        u_op = np.asarray(point.get("u", np.zeros(lb.size)), dtype=float)
        return cls(gain, x_op, u_op, lb, ub)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        u = self.u_op - self.K @ (x - self.x_op) if self.K is not None else np.zeros(self.lb.size)
        return np.clip(u, self.lb, self.ub)


class RtiReference:
    """acados SQP_RTI driven like the RTI device; ``value(x)`` as :class:`~rlmpc.toolkit.mpc.MPC`."""

    def __init__(self, fns: ProblemFunctions, theta: np.ndarray, shifted: bool,
                 startup_iterations: int, fallback: FallbackInput | None = None) -> None:
        self.fns = fns
        self.rti = MPC(fns, RTI_OPTIONS, theta=theta)
        self.converged = MPC(fns, SolverOptions(tol=1e-9), theta=theta)
        self.shifted = shifted
        self.startup_iterations = int(startup_iterations)
        self.converged_distance = 0.0  # max |u_RTI − u_converged| on the states seen
        self._cold = True
        self.fallback = fallback
        self._rollout_next = False  # the last solve failed: the next starts from the fallback's rollout

    @property
    def theta(self) -> np.ndarray:
        return self.rti.theta

    @theta.setter
    def theta(self, value: Any) -> None:  # (SET_THETA on the device: rlmpc hil --theta)
        self.rti.theta = value
        self.converged.theta = value

    @property
    def p(self) -> np.ndarray:
        return self.rti.p

    @p.setter
    def p(self, value: Any) -> None:  # (p sent with a STEP)
        self.rti.p = value
        self.converged.p = value

    def reset(self) -> None:
        """As the device's RESET: the next step iterates to convergence from a zero guess."""
        self.rti.reset()
        self.converged.reset()
        self._cold = True
        self._rollout_next = False

    def value(self, x: np.ndarray) -> MpcSolution:
        if self._cold:
            if self._rollout_next:
                self.rti.set_primal_guess(*self.rollout(x))
                self._rollout_next = False
            sol = self.rti.value(x)
            for _ in range(self.startup_iterations - 1):
                if not sol.success:
                    break
                sol = self.rti.value(x)
            self._cold = False
        else:
            if self.shifted:
                self.rti.shift_warm_start()
            sol = self.rti.value(x)
        if not sol.success:  # (the device iterates the next step cold too, from its fallback's rollout)
            self.rti.reset()
            self._cold = True
            self._rollout_next = self.fallback is not None
        ref = self.converged.value(x)
        if ref.success:
            self.converged_distance = max(self.converged_distance,
                                          float(np.max(np.abs(np.asarray(sol.u0) - np.asarray(ref.u0)))))
        return sol


    def rollout(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The device's guess after a failed step: the model simulated from ``x`` under the fallback
        input at the current θ and p (all zero if it is not finite, as on the device)."""
        assert self.fallback is not None
        fns, n = self.fns, self.fns.horizon
        xs, us = np.zeros((n + 1, fns.nx)), np.zeros((n, fns.nu))
        xs[0] = x
        theta, p = self.rti.theta, self.rti.p
        for k in range(n):
            us[k] = self.fallback(xs[k])
            xs[k + 1] = np.asarray(fns.dynamics(xs[k], us[k], theta, p), dtype=float).ravel()
        if not (np.isfinite(xs).all() and np.isfinite(us).all()):
            xs[:], us[:] = 0.0, 0.0
        return xs, us


def rti_reference(manifest: dict[str, Any], fns: ProblemFunctions, theta: np.ndarray) -> RtiReference:
    from rlmpc.codegen.mcu.generate_rti import STARTUP_ITERATIONS

    shifted = "shifted" in str(manifest["solver"]["kind"])
    return RtiReference(fns, theta, shifted, STARTUP_ITERATIONS, FallbackInput.from_manifest(manifest))
