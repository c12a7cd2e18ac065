"""The linear plant of Gros & Zanon (2020), as in the `mpcrl` Q-learning example."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlmpc.toolkit.envs.checks import as_flag, as_matrix, as_vector
from rlmpc.toolkit.problems.lti import A_TRUE, B_TRUE, U_BOUND, VIOLATION_WEIGHT, X_LB, X_UB

NOISE_BOUNDS = (-0.1, 0.0)
"""Bounds of the uniform additive disturbance e on the first state."""
X0_DEFAULT = np.array([0.0, 0.15])
"""Initial state after `reset` unless overridden."""


class LtiGrosZanon(gym.Env[NDArray[np.float64], NDArray[np.float64]]):
    """x⁺ = A x + B a + e with e_i ~ U(low_i, high_i) (default: e₁ ~ U(−0.1, 0), e₂ = 0).

    The stage cost ``0.5 (xᵀx + 0.5 a² + w·max(0, x_lb − x) + w·max(0, x − x_ub))`` is
    evaluated at the state *before* the step and returned as ``info["cost"]``; the
    reward is its negative. ``info["violation"]`` is the summed bound violation of that
    state. Actions are not clipped (the action space holds the MPC's input bounds).
    Episodes never end on their own: wrap with ``gymnasium.wrappers.TimeLimit``.

    Parameters
    ----------
    x0
        Initial state on reset (default ``[0, 0.15]``); ``reset(options={"state": x})``
        overrides it for one episode.
    noise
        ``true`` (the default range), ``false`` (no disturbance), or one ``[low, high]`` pair
        per state, e.g. ``[[-0.1, 0.0], [0.0, 0.02]]``.
    A, B
        The true dynamics (default those of Gros & Zanon): ``A`` 2×2 nested lists, ``B`` 2 entries.
    x0_spread
        Half-widths per state of a uniform draw added to ``x0`` on each reset (default zero: a
        fixed start).
    """

    nx = 2
    nu = 1
    PARAMS = ("A", "B", "noise", "x0", "x0_spread")
    """The accepted keyword arguments (``[env.params]`` keys)."""

    def __init__(self, x0: ArrayLike | None = None, noise: bool | ArrayLike = True,
                 A: ArrayLike | None = None, B: ArrayLike | None = None,
                 x0_spread: ArrayLike | None = None) -> None:
        super().__init__()
        name = "LtiGrosZanon"
        self.A = as_matrix(name, "A", A_TRUE if A is None else A, (self.nx, self.nx))
        self.B = as_matrix(name, "B", B_TRUE if B is None else B, (self.nx, 1)).reshape(self.nx)
        self.noise_bounds = self._noise_bounds(noise)
        self.x0_spread = np.zeros(self.nx) if x0_spread is None else as_vector(name, "x0_spread", x0_spread, self.nx)
        if np.any(self.x0_spread < 0.0):
            raise ValueError(f"{name}: expected x0_spread ≥ 0 per state, got {x0_spread!r}")
        self.x_lb = np.array(X_LB, dtype=np.float64)
        self.x_ub = np.array(X_UB, dtype=np.float64)
        self.violation_weight = float(VIOLATION_WEIGHT)
        self.x0 = self._as_state(X0_DEFAULT if x0 is None else x0)
        self.noise = bool(np.any(self.noise_bounds != 0.0))
        # per-state draws, or one draw on the first state (the stream of earlier versions)
        self._per_state_noise = bool(np.any(self.noise_bounds[1:] != 0.0))
        self._first_noise = (float(self.noise_bounds[0, 0]), float(self.noise_bounds[0, 1]))
        self.action_space = gym.spaces.Box(-U_BOUND, U_BOUND, (self.nu,), np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.nx,), np.float64)
        self._x = self.x0.copy()

    def _noise_bounds(self, noise: Any) -> NDArray[np.float64]:
        """(nx, 2) array of [low, high] per state."""
        if isinstance(noise, bool | np.bool_):
            bounds = np.zeros((self.nx, 2))
            if as_flag("LtiGrosZanon", "noise", noise):
                bounds[0] = NOISE_BOUNDS
            return bounds
        try:
            bounds = as_matrix("LtiGrosZanon", "noise", noise, (self.nx, 2))
            if np.ndim(noise) != 2:
                raise ValueError
        except ValueError:
            raise ValueError(f"LtiGrosZanon: expected noise as true, false or one [low, high] pair per state "
                             f"(e.g. [[-0.1, 0.0], [0.0, 0.0]]), got {noise!r}") from None
        if np.any(bounds[:, 0] > bounds[:, 1]):
            raise ValueError(f"LtiGrosZanon: expected noise pairs [low, high] with low ≤ high, got {noise!r}")
        return bounds

    @property
    def state(self) -> NDArray[np.float64]:
        """A copy of the current true state."""
        return self._x.copy()

    def _as_state(self, x: ArrayLike) -> NDArray[np.float64]:
        return as_vector("LtiGrosZanon", "a state", x, self.nx)

    def violation(self, x: ArrayLike) -> float:
        """Summed violation of the state bounds X_LB ≤ x ≤ X_UB."""
        x = np.asarray(x, dtype=np.float64)
        # per state at most one side is violated (x_lb <= x_ub): max(0, lb - x) + max(0, x - ub), exactly
        return float(np.maximum(np.maximum(self.x_lb - x, x - self.x_ub), 0.0).sum())

    def stage_cost(self, x: ArrayLike, a: float) -> float:
        """0.5 (xᵀx + 0.5 a² + w·max(0, x_lb − x) + w·max(0, x − x_ub))."""
        x = np.asarray(x, dtype=np.float64)
        return self._stage_cost(x, a, self.violation(x))

    def _stage_cost(self, x: NDArray[np.float64], a: float, violation: float) -> float:
        return 0.5 * float(x @ x + 0.5 * a**2 + self.violation_weight * violation)

    def _action(self, action: ArrayLike) -> float:
        """The action as a float (one-line error for a wrong shape or non-finite value)."""
        if type(action) is np.ndarray and action.shape == (1,) and action.dtype == np.float64:
            a = float(action[0])  # fast path: what as_vector returns for such input
            if math.isfinite(a):
                return a
        return float(as_vector("LtiGrosZanon", "an action", action, self.nu)[0])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float64], dict[str, Any]]:
        """Reset to ``x0`` (or ``options["state"]``); ``seed`` seeds the disturbance."""
        super().reset(seed=seed)
        state = None if options is None else options.get("state")
        if state is not None:
            self._x = self._as_state(state)
        elif np.any(self.x0_spread > 0.0):
            self._x = self.x0 + self.np_random.uniform(-self.x0_spread, self.x0_spread)
        else:
            self._x = self.x0.copy()
        return self._x.copy(), {}

    def step(
        self, action: ArrayLike
    ) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (shape (1,) or scalar); cost is that of the pre-step state."""
        a = self._action(action)
        x = self._x
        violation = self.violation(x)
        cost = self._stage_cost(x, a, violation)
        x_next = self.A @ x + self.B * a
        e = 0.0
        if self.noise:
            if self._per_state_noise:
                noise = self.np_random.uniform(self.noise_bounds[:, 0], self.noise_bounds[:, 1])
                x_next += noise
                e = float(noise[0])
            else:  # (only the first state: one draw, the stream of earlier versions)
                e = float(self.np_random.uniform(*self._first_noise))
                x_next[0] += e
        self._x = x_next
        info = {"cost": cost, "violation": violation, "noise": e}
        return x_next.copy(), -cost, False, False, info
