"""The workstation reference of a real-time-iteration device: acados SQP_RTI run like the device.

The device (``rlmpc export --target cortex-m4`` of a nonlinear MPC) iterates to convergence on
its first step after RESET (``STARTUP_ITERATIONS`` Gauss-Newton steps at the same state), then
makes one real-time iteration per step from the last plan, shifted by one stage (or as it is,
per the manifest).  :class:`RtiReference` does the same with acados SQP_RTI (Gauss-Newton) at
the bundle's θ, so that HIL compares the device with the same algorithm; the converged MPC's
input on the same states is recorded as a second figure (``converged_distance``), not judged.
"""

from __future__ import annotations

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


class RtiReference:
    """acados SQP_RTI driven like the RTI device; ``value(x)`` as :class:`~rlmpc.toolkit.mpc.MPC`."""

    def __init__(self, fns: ProblemFunctions, theta: np.ndarray, shifted: bool,
                 startup_iterations: int) -> None:
        self.fns = fns
        self.rti = MPC(fns, RTI_OPTIONS, theta=theta)
        self.converged = MPC(fns, SolverOptions(tol=1e-9), theta=theta)
        self.shifted = shifted
        self.startup_iterations = int(startup_iterations)
        self.converged_distance = 0.0  # max |u_RTI − u_converged| on the states seen
        self._cold = True

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

    def value(self, x: np.ndarray) -> MpcSolution:
        if self._cold:
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
        if not sol.success:  # (the device iterates the next step cold too, from its fallback's rollout, not zero)
            self.rti.reset()
            self._cold = True
        ref = self.converged.value(x)
        if ref.success:
            self.converged_distance = max(self.converged_distance,
                                          float(np.max(np.abs(np.asarray(sol.u0) - np.asarray(ref.u0)))))
        return sol


def rti_reference(manifest: dict[str, Any], fns: ProblemFunctions, theta: np.ndarray) -> RtiReference:
    from rlmpc.codegen.mcu.generate_rti import STARTUP_ITERATIONS

    shifted = "shifted" in str(manifest["solver"]["kind"])
    return RtiReference(fns, theta, shifted, STARTUP_ITERATIONS)
