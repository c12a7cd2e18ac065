"""Optimisers turning the gradient (and Hessian) of a cost to *minimise* into a new parameter vector θ.

Every update is constrained: the step ``d`` (new θ = θ + d) satisfies ``lb <= θ + d <= ub`` and, if
``max_relative_step`` is set, ``|d_i| <= max_relative_step · max(|θ_i|, relative_floor)``; both
together form a box ``lo <= d <= hi`` (`Optimizer.step_bounds`), which always contains 0 because θ
must lie within [lb, ub].

* First-order methods (`GradientDescent`, `Adam`, `RMSprop`) compute their usual unconstrained step
  and project it onto the box (clip).
* `NewtonMethod` solves the box-constrained QP ``min_d ½ dᵀ H d + lr·gᵀ d`` exactly, with ``H`` the
  symmetrised Hessian made positive definite: with the Cholesky factor ``H = L Lᵀ`` the QP is the
  bounded linear least-squares problem ``min ½‖Lᵀd + lr·L⁻¹g‖²``, solved by the active-set BVLS
  method (`scipy.optimize.lsq_linear`); parameters with ``lb_i == ub_i`` are eliminated first.

The result is finally clipped to [lb, ub] so rounding can never leave the bounds.  The learning rate
is a schedule of the update counter ``k`` (0 for the first update), saved in the state dict together
with the moment estimates.

Configuration (`optimizer_from_config`); ``learning_rate`` is a number or a schedule dict::

    {"type": "sgd" | "newton" | "adam" | "rmsprop", "learning_rate": ...,
     "max_relative_step": None, "relative_floor": 0.1,       # optional, all types
     "damping": 1e-6,                                         # optional, newton
     "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,               # optional, adam
     "decay": 0.9, "eps": 1e-8}                               # optional, rmsprop
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.optimize

from rlmpc.toolkit.rl.checks import (
    FloatArray,
    as_array,
    check_keys,
    config_type,
    finite,
    integer,
    nonnegative,
    positive,
    prefixed,
)
from rlmpc.toolkit.rl.schedules import Schedule, schedule_from_config

__all__ = [
    "Adam",
    "GradientDescent",
    "NewtonMethod",
    "Optimizer",
    "RMSprop",
    "optimizer_from_config",
]


def _bounds(lb: npt.ArrayLike, ub: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lo = as_array(lb, "lb", allow_inf=True).reshape(-1)
    hi = as_array(ub, "ub", allow_inf=True).reshape(-1)
    if lo.shape != hi.shape:
        raise ValueError(f"ub: expected {lo.size} entries (the size of lb), got {hi.size}")
    if (lo > hi).any() or (lo == np.inf).any() or (hi == -np.inf).any():
        raise ValueError(f"ub: expected lb <= ub with lb < +inf and ub > -inf, got lb={lo}, ub={hi}")
    return lo, hi


def _unit_interval(value: object, name: str) -> float:
    x = finite(value, name)
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return x


class Optimizer(ABC):
    """Base class: bound handling, learning-rate schedule, update counter ``k`` and state dict.

    Parameters
    ----------
    lr
        Learning rate: a number or a `Schedule` of the update counter ``k``.
    lb, ub
        Bounds on θ (±inf allowed).
    max_relative_step
        If set, ``|d_i| <= max_relative_step · max(|θ_i|, relative_floor)``.
    relative_floor
        Floor of the reference magnitude of the relative step limit.
    """

    kind: ClassVar[str]
    """The ``"type"`` of the optimiser in configs and state dicts."""

    def __init__(
        self,
        lr: Schedule | float,
        lb: npt.ArrayLike,
        ub: npt.ArrayLike,
        max_relative_step: float | None = None,
        relative_floor: float = 0.1,
    ) -> None:
        self.lr = schedule_from_config(lr, "learning_rate")
        self.lb, self.ub = _bounds(lb, ub)
        self.max_relative_step = None if max_relative_step is None else positive(
            max_relative_step, "max_relative_step"
        )
        self.relative_floor = positive(relative_floor, "relative_floor")
        self.k = 0
        """Number of updates done so far (the learning-rate schedule's index)."""
        self.lr_scale = 1.0
        """Factor on the schedule's learning rate (a divergence guard shrinks it after a rollback)."""

    @property
    def size(self) -> int:
        """Dimension of θ."""
        return self.lb.size

    def _vector(self, value: npt.ArrayLike, name: str) -> FloatArray:
        if (type(value) is np.ndarray and value.dtype == np.float64 and value.shape == (self.lb.size,)
                and math.isfinite(value.sum())):  # (a finite sum: finite entries; else the full check)
            return value  # fast path, for valid flat vectors (not copied: only read)
        arr = as_array(value, name).reshape(-1)
        if arr.size != self.size:
            raise ValueError(f"{name}: expected {self.size} entries (the size of lb), got {arr.size}")
        return arr

    def step_bounds(self, theta: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """The box ``lo <= d <= hi`` of admissible steps from ``theta`` (which must lie in [lb, ub])."""
        return self._step_bounds(self._vector(theta, "theta"))

    def _step_bounds(self, th: FloatArray) -> tuple[FloatArray, FloatArray]:
        """`step_bounds` of an already validated flat θ."""
        lo, hi = self.lb - th, self.ub - th
        # lb - θ > 0 exactly when θ < lb (and ub - θ < 0 when θ > ub), infinite bounds included
        if lo.size and (lo.max() > 0.0 or hi.min() < 0.0):
            raise ValueError(f"theta: expected values within [lb, ub], got {th} (lb={self.lb}, ub={self.ub})")
        if self.max_relative_step is not None:
            radius = self.max_relative_step * np.maximum(np.abs(th), self.relative_floor)
            lo, hi = np.maximum(lo, -radius), np.minimum(hi, radius)
        # θ within bounds makes lo <= 0 <= hi; guard against -0.0 / rounding anyway
        return np.minimum(lo, 0.0), np.maximum(hi, 0.0)

    def step(
        self, theta: npt.ArrayLike, grad: npt.ArrayLike, hessian: npt.ArrayLike | None = None
    ) -> FloatArray:
        """One update: the new θ (flat float64), within the bounds; increments ``k``.

        ``hessian`` is used by `NewtonMethod` only (and ignored by first-order methods).
        """
        th = self._vector(theta, "theta")
        g = self._vector(grad, "grad")
        lo, hi = self._step_bounds(th)
        lr = self.lr(self.k) * self.lr_scale
        if lr < 0.0:
            raise ValueError(f"learning_rate: expected a non-negative value, got {lr} at k={self.k}")
        d = self._step(g, hessian, lr, lo, hi)
        self.k += 1
        return np.minimum(np.maximum(th + d, self.lb), self.ub)  # = np.clip(th + d, lb, ub), faster

    @abstractmethod
    def _step(
        self, grad: FloatArray, hessian: npt.ArrayLike | None, lr: float, lo: FloatArray, hi: FloatArray
    ) -> FloatArray:
        """The step ``d`` within ``lo <= d <= hi`` (updates internal moments)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: type, update counter and (subclasses) moment estimates."""
        return {"type": self.kind, "k": self.k, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by `state_dict` (same type and dimension)."""
        if not isinstance(state, Mapping) or state.get("type") != self.kind:
            got = state.get("type") if isinstance(state, Mapping) else state
            raise ValueError(f"state_dict.type: expected {self.kind!r}, got {got!r}")
        self.k = integer(state.get("k"), "state_dict.k", 0)
        scale = state.get("lr_scale", 1.0)
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0.0 < scale <= 1.0:
            raise ValueError(f"state_dict.lr_scale: expected a number in (0, 1], got {scale!r}")
        self.lr_scale = float(scale)

    def _load_moment(self, state: Mapping[str, Any], key: str) -> FloatArray:
        arr = as_array(state.get(key), f"state_dict.{key}").reshape(-1)
        if arr.size != self.size:
            raise ValueError(f"state_dict.{key}: expected {self.size} entries, got {arr.size}")
        return arr


class GradientDescent(Optimizer):
    """Projected gradient descent: ``d = clip(−lr·g, lo, hi)``."""

    kind = "sgd"

    def _step(
        self, grad: FloatArray, hessian: npt.ArrayLike | None, lr: float, lo: FloatArray, hi: FloatArray
    ) -> FloatArray:
        return np.clip(-lr * grad, lo, hi)


class Adam(Optimizer):
    """Adam (bias-corrected first and second moments), projected onto the step box."""

    kind = "adam"

    def __init__(
        self,
        lr: Schedule | float,
        lb: npt.ArrayLike,
        ub: npt.ArrayLike,
        max_relative_step: float | None = None,
        relative_floor: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(lr, lb, ub, max_relative_step, relative_floor)
        self.beta1 = _unit_interval(beta1, "beta1")
        self.beta2 = _unit_interval(beta2, "beta2")
        self.eps = positive(eps, "eps")
        self.m = np.zeros(self.size)
        self.v = np.zeros(self.size)

    def _step(
        self, grad: FloatArray, hessian: npt.ArrayLike | None, lr: float, lo: FloatArray, hi: FloatArray
    ) -> FloatArray:
        t = self.k + 1
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1.0 - self.beta2) * grad**2
        m_hat = self.m / (1.0 - self.beta1**t)
        v_hat = self.v / (1.0 - self.beta2**t)
        return np.clip(-lr * m_hat / (np.sqrt(v_hat) + self.eps), lo, hi)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "m": self.m.tolist(), "v": self.v.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.m = self._load_moment(state, "m")
        self.v = self._load_moment(state, "v")


class RMSprop(Optimizer):
    """RMSprop: ``v ← decay·v + (1 − decay)·g²``, ``d = clip(−lr·g / (√v + eps), lo, hi)``."""

    kind = "rmsprop"

    def __init__(
        self,
        lr: Schedule | float,
        lb: npt.ArrayLike,
        ub: npt.ArrayLike,
        max_relative_step: float | None = None,
        relative_floor: float = 0.1,
        decay: float = 0.9,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(lr, lb, ub, max_relative_step, relative_floor)
        self.decay = _unit_interval(decay, "decay")
        self.eps = positive(eps, "eps")
        self.v = np.zeros(self.size)

    def _step(
        self, grad: FloatArray, hessian: npt.ArrayLike | None, lr: float, lo: FloatArray, hi: FloatArray
    ) -> FloatArray:
        self.v = self.decay * self.v + (1.0 - self.decay) * grad**2
        return np.clip(-lr * grad / (np.sqrt(self.v) + self.eps), lo, hi)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "v": self.v.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.v = self._load_moment(state, "v")


def make_positive_definite(hessian: npt.ArrayLike, damping: float) -> FloatArray:
    """``(H + Hᵀ)/2 + (damping + max(0, −λ_min))·I``: symmetric with eigenvalues >= ``damping``.

    If the Cholesky factorisation still fails (rounding, ``damping == 0``), the shift is increased
    until it succeeds.
    """
    return _positive_definite_factor(hessian, damping)[0]


try:  # the kernels behind numpy.linalg.cholesky / eigvalsh, without their ~3 µs wrappers
    from numpy.linalg import _umath_linalg

    _CHOLESKY_LO: Any = _umath_linalg.cholesky_lo
    _EIGVALSH_LO: Any = _umath_linalg.eigvalsh_lo
except (ImportError, AttributeError):  # pragma: no cover - another numpy layout
    _CHOLESKY_LO = _EIGVALSH_LO = None


_EPS = float(np.finfo(np.float64).eps)


def _cholesky(a: FloatArray) -> FloatArray | None:
    """The lower Cholesky factor of ``a`` (`numpy.linalg.cholesky`), or None if not positive definite.

    With the raw kernel a failure fills the result with NaN (numpy's wrapper turns that into
    LinAlgError), so ``a`` must be finite; call it under ``np.errstate(invalid="ignore")``.
    """
    if _CHOLESKY_LO is not None and a.dtype == np.float64 and a.size:
        L: FloatArray = _CHOLESKY_LO(a, signature="d->d")
        return None if math.isnan(L[-1, -1]) else L
    try:
        return np.asarray(np.linalg.cholesky(a), dtype=np.float64)
    except np.linalg.LinAlgError:
        return None


def _min_eigenvalue(a: FloatArray) -> float:
    """``numpy.linalg.eigvalsh(a)[0]`` for a finite symmetric float64 matrix (same errstate)."""
    if _EIGVALSH_LO is not None and a.dtype == np.float64:
        lam = float(_EIGVALSH_LO(a, signature="d->d")[0])
        if not math.isnan(lam):
            return lam
    return float(np.linalg.eigvalsh(a)[0])  # raises numpy's error on non-convergence


def _positive_definite_factor(hessian: npt.ArrayLike, damping: float) -> tuple[FloatArray, FloatArray]:
    """`make_positive_definite` and the Cholesky factor it has computed anyway: ``(Hpd, L)``."""
    H = np.asarray(hessian, dtype=np.float64)
    H = 0.5 * (H + H.T)
    n = H.shape[0]
    if n == 0:
        return H, H
    if not math.isfinite(H.sum()) and not np.isfinite(H).all():  # (the raw kernels signal failure
        raise ValueError(f"hessian: expected finite numbers, got {hessian!r}")  # by NaN: finite H only)
    eye = _eye(n)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        # The smallest eigenvalue decides the shift.  Clearly indefinite (λ_min below the
        # rounding margin), the Cholesky attempt on H itself would fail: skip it; otherwise
        # try it first, so that "H positive definite" means exactly "it factorises".
        # (a diagonal entry <= 0 makes that pivot <= 0: the factorisation fails for sure).
        # Margin: a successful factorisation has a backward error below n²(n+1)ε‖H‖ and
        # eigvalsh an error below n²ε max|H_ij|, so λ_min < -4n³ε max|H_ij| rules it out.
        lam_min = _min_eigenvalue(H)
        margin = -4.0 * n**3 * _EPS  # times the scale max(1, max|H_ij|), computed if needed
        if ((lam_min >= margin or lam_min >= margin * _scale(H)) and H.diagonal().min() > 0.0
                and _cholesky(H) is not None):
            # H positive definite, so λ_min > 0 and the shift is `damping`
            Hpd = H + damping * eye
            Lpd = _cholesky(Hpd)
            if Lpd is not None:
                return Hpd, Lpd
            return _shifted_factor(H, eye, damping)  # pragma: no cover - rounding only
        return _shifted_factor(H, eye, damping + max(0.0, -lam_min))


def _scale(H: FloatArray) -> float:
    return max(1.0, float(np.abs(H).max()))


_EYES: dict[int, FloatArray] = {}


def _eye(n: int) -> FloatArray:
    """``np.eye(n)``, cached (read only)."""
    eye = _EYES.get(n)
    if eye is None:
        eye = _EYES[n] = np.eye(n)
        eye.flags.writeable = False
    return eye


def _shifted_factor(H: FloatArray, eye: FloatArray, shift: float) -> tuple[FloatArray, FloatArray]:
    """``H + shift·I`` and its Cholesky factor, doubling the shift until it is positive definite."""
    for _ in range(200):
        Hpd = H + shift * eye
        L = _cholesky(Hpd)
        if L is not None:
            return Hpd, L
        shift = max(2.0 * shift, _EPS * _scale(H))
    raise ValueError("hessian: could not be made positive definite")  # pragma: no cover


def _potrs(L: FloatArray, b: FloatArray, finite_factor: bool = False) -> FloatArray:
    """``scipy.linalg.cho_solve((L, True), b)`` (the same LAPACK call) without its input checks
    (``finite_factor``: L is known to be finite)."""
    potrs = _POTRS.get(b.dtype.char)
    if potrs is None or not ((math.isfinite(b.sum()) or np.isfinite(b).all())
                             and (finite_factor or np.isfinite(L).all())):
        return np.asarray(scipy.linalg.cho_solve((L, True), b))
    x, info = potrs(L, b, lower=1)
    if info != 0:  # pragma: no cover - an invalid argument; cho_solve raises the error
        return np.asarray(scipy.linalg.cho_solve((L, True), b))
    return x


_POTRS = {"d": scipy.linalg.get_lapack_funcs("potrs", dtype=np.float64)}


def solve_box_qp(H: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Exact minimiser of ``½ dᵀ H d + cᵀ d`` subject to ``lo <= d <= hi`` (``H`` positive definite).

    Variables with ``lo_i == hi_i`` are fixed and eliminated; if the unconstrained minimiser of the
    rest is feasible it is returned, otherwise the bounded least-squares form
    ``min ½‖Lᵀd + L⁻¹c‖²`` (``H = L Lᵀ``) is solved by BVLS.
    """
    return _solve_box_qp(H, c, lo, hi, None)


def _solve_box_qp(H: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray,
                  factor: FloatArray | None) -> FloatArray:
    """`solve_box_qp`; ``factor``: the Cholesky factor of ``H`` if already known."""
    fixed = lo == hi
    if not fixed.any():  # the common case, without the (empty) fixed block
        if factor is not None:  # the factor of `_positive_definite_factor`: finite
            return _box_qp_free(factor, c + 0.0, lo, hi, finite_factor=True)
        return _box_qp_free(np.asarray(np.linalg.cholesky(H), dtype=np.float64), c + 0.0, lo, hi)
    d = np.zeros(c.size)
    d[fixed] = lo[fixed]
    free = ~fixed
    if not free.any():
        return d
    Hf = H[np.ix_(free, free)]
    cf = c[free] + H[np.ix_(free, fixed)] @ d[fixed]
    d[free] = _box_qp_free(np.asarray(np.linalg.cholesky(Hf), dtype=np.float64), cf,
                           lo[free], hi[free])
    return d


def _box_qp_free(L: FloatArray, cf: FloatArray, lof: FloatArray, hif: FloatArray,
                 finite_factor: bool = False) -> FloatArray:
    """Minimiser of ``½ xᵀ L Lᵀ x + cfᵀ x`` subject to ``lof <= x <= hif``."""
    x = -_potrs(L, cf, finite_factor)
    if (x < lof).any() or (x > hif).any():
        b = -scipy.linalg.solve_triangular(L, cf, lower=True)
        # BVLS's default iteration limit (n) is too small; it typically needs about 2n
        res = scipy.optimize.lsq_linear(
            L.T, b, bounds=(lof, hif), method="bvls", tol=1e-12, max_iter=10 * x.size + 100
        )
        if res.status == 0:  # pragma: no cover - not seen in practice
            raise RuntimeError(f"box-constrained Newton step: BVLS did not converge ({res.message})")
        x = np.clip(res.x, lof, hif)
    return x


class NewtonMethod(Optimizer):
    """(Damped) Newton: unconstrained step ``−lr·H⁻¹g``; with active bounds, the exact box QP.

    ``H`` is symmetrised and shifted to be positive definite (`make_positive_definite`), then the
    step solves ``min_d ½ dᵀ H d + lr·gᵀ d`` subject to the step box (`solve_box_qp`).
    """

    kind = "newton"

    def __init__(
        self,
        lr: Schedule | float,
        lb: npt.ArrayLike,
        ub: npt.ArrayLike,
        max_relative_step: float | None = None,
        relative_floor: float = 0.1,
        damping: float = 1e-6,
    ) -> None:
        super().__init__(lr, lb, ub, max_relative_step, relative_floor)
        self.damping = nonnegative(damping, "damping")

    def _step(
        self, grad: FloatArray, hessian: npt.ArrayLike | None, lr: float, lo: FloatArray, hi: FloatArray
    ) -> FloatArray:
        if hessian is None:
            raise ValueError("hessian: the Newton method needs a Hessian, got None")
        fast = type(hessian) is np.ndarray and hessian.dtype == np.float64
        H: FloatArray = hessian if fast else as_array(hessian, "hessian")  # type: ignore[assignment]
        if H.shape != (self.size, self.size):
            raise ValueError(f"hessian: expected shape {(self.size, self.size)}, got {H.shape}")
        Hpd, L = _positive_definite_factor(H, self.damping)  # (raises if H is not finite)
        return _solve_box_qp(Hpd, lr * grad, lo, hi, L)


# ---------------------------------------------------------------- configuration

_COMMON = {"learning_rate"}, {"max_relative_step", "relative_floor"}
_OPTIMIZERS: dict[str, tuple[type[Optimizer], set[str]]] = {
    # type: (class, type-specific optional keys)
    "sgd": (GradientDescent, set()),
    "newton": (NewtonMethod, {"damping"}),
    "adam": (Adam, {"beta1", "beta2", "eps"}),
    "rmsprop": (RMSprop, {"decay", "eps"}),
}


def optimizer_from_config(
    cfg: Mapping[str, Any], lb: npt.ArrayLike, ub: npt.ArrayLike, field: str = "agent.optimizer"
) -> Optimizer:
    """Build an optimiser from a config dict (see the module docstring) and the bounds of θ."""
    lo, hi = _bounds(lb, ub)
    kind = config_type(cfg, field, tuple(_OPTIMIZERS))
    cls, extra = _OPTIMIZERS[kind]
    check_keys(cfg, field, f"optimizer type '{kind}'", _COMMON[0], _COMMON[1] | extra)
    lr = schedule_from_config(cfg["learning_rate"], f"{field}.learning_rate")
    if lr(0) < 0.0:  # (a schedule that turns negative later is caught by step)
        raise ValueError(f"{field}.learning_rate: expected a non-negative value, got {lr(0)}")
    kwargs = {key: val for key, val in cfg.items() if key not in ("type", "learning_rate")}
    with prefixed(field):
        return cls(lr, lo, hi, **kwargs)
