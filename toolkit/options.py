"""Solver options for the acados MPC, validated before anything reaches C."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Only these QP solvers are compiled into the PyPI libacados (v0.2.2).  Others make
# the C library print and call exit() (OSQP, qpDUNES) or fail to link (DAQP).
QP_SOLVERS = ("PARTIAL_CONDENSING_HPIPM", "FULL_CONDENSING_HPIPM", "FULL_CONDENSING_QPOASES")
NLP_SOLVERS = ("auto", "SQP", "SQP_RTI")
HESSIANS = ("EXACT", "GAUSS_NEWTON")
REGULARIZATIONS = ("NO_REGULARIZE", "MIRROR", "PROJECT", "PROJECT_REDUC_HESS", "CONVEXIFY")
HPIPM_MODES = ("BALANCE", "ROBUST", "SPEED", "SPEED_ABS")
GLOBALIZATIONS = ("FIXED_STEP", "MERIT_BACKTRACKING")
MIN_TOL = 1e-9


@dataclass(frozen=True)
class SolverOptions:
    """Options of the generated acados solver.

    The defaults give converged, accurate solutions (needed for sensitivities):
    ``nlp_solver="auto"`` is one real-time iteration when the problem is a QP in
    (x, u) (it is then exact) and full SQP otherwise; HPIPM on the fully
    condensed QP (fastest for the small horizons of learning problems; use
    ``PARTIAL_CONDENSING_HPIPM`` for long horizons), tolerance 1e-8, and the
    Gauss-Newton Hessian (the exact
    Hessian converges in fewer iterations near the solution but made HPIPM fail
    on ~10% of random cart-pole states; the sensitivities use the exact
    Lagrangian Hessian either way).  ``hpipm_mode="BALANCE"``: on random states of
    the nonlinear test problems ``SPEED`` failed 2-3x more often; on convex QPs
    like the LTI problem ``SPEED`` is about 20-40 % faster and learns as well, but it can stop
    short with status 0: u0 up to 6e-4 from IPOPT's optimum on 4 of 5000 states of a learning run
    (``BALANCE``: within 2.3e-6; docs/benchmarks.md, learning through the device).  For a fast
    real-time policy of a nonlinear problem use ``nlp_solver="SQP_RTI"``.

    A solve is verified: acados' SQP_RTI reports success when its QP stopped at the QP iteration
    limit (HPIPM's ``SPEED`` mode does so on ~2 % of the LTI learning states, u0 up to 4e-2 off);
    :class:`rlmpc.toolkit.mpc.MPC` reads the QP's own status and solves such a state again with
    ``fallback_hpipm_mode`` (``None``: no second solve, the solution is reported as failed).
    ``qp_mu0``: HPIPM's initial barrier parameter (``None``: acados' own, 1.0).  Its best value
    depends on the scale of the problem's costs and constraints; on the LTI learning problem 30
    takes 8.3 instead of 12.2 QP iterations per solve, the same solutions within the QP tolerance
    (docs/benchmarks.md).  The verification above applies unchanged.  Not passed to the exported
    solvers, nor to the fallback solve (which keeps acados' default).
    ``merge_soft_pairs``: a soft state row with only a lower bound and one with only an upper
    bound that differ by a function of (θ, p) become one two-sided row of the workstation's solver
    (:mod:`rlmpc.toolkit.soft_pairs`: half the slacks; the same problem).
    """

    nlp_solver: str = "auto"
    qp_solver: str = "FULL_CONDENSING_HPIPM"
    hessian: str = "GAUSS_NEWTON"
    regularization: str = "CONVEXIFY"
    globalization: str = "FIXED_STEP"
    max_iter: int = 200
    tol: float = 1e-8
    qp_max_iter: int = 100
    qp_tol: float | None = None
    qp_mu0: float | None = None
    hpipm_mode: str = "BALANCE"
    levenberg_marquardt: float = 0.0
    warm_start: bool = True
    fallback_hpipm_mode: str | None = "ROBUST"
    merge_soft_pairs: bool = True

    def __post_init__(self) -> None:
        choices = {
            "nlp_solver": NLP_SOLVERS, "qp_solver": QP_SOLVERS, "hessian": HESSIANS,
            "regularization": REGULARIZATIONS, "hpipm_mode": HPIPM_MODES,
            "globalization": GLOBALIZATIONS,
        }
        if self.fallback_hpipm_mode == "none":  # (TOML has no null)
            object.__setattr__(self, "fallback_hpipm_mode", None)
        if self.fallback_hpipm_mode is not None and self.fallback_hpipm_mode not in HPIPM_MODES:
            raise ValueError(f"solver option fallback_hpipm_mode: {self.fallback_hpipm_mode!r} is not "
                             f"supported; expected one of {list(HPIPM_MODES)} or 'none'")
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                extra = (" (this acados build lacks it; libacados would exit the process)"
                         if name == "qp_solver" else "")
                raise ValueError(
                    f"solver option {name}: {value!r} is not supported{extra}; "
                    f"expected one of {list(allowed)}"
                )
        for name in ("max_iter", "qp_max_iter"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"solver option {name}: expected a positive integer, got {value!r}")
        for name, low in (("tol", MIN_TOL), ("qp_tol", 1e-14)):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and low <= value < 1):
                raise ValueError(
                    f"solver option {name}: expected a number in [{low:g}, 1), got {value!r}"
                    + (" (acados 0.2.2 has no infinite bounds; the complementarity residual "
                       "floors near 1e-10)" if name == "tol" else ""))
        if self.qp_mu0 is not None:
            mu0 = self.qp_mu0
            if not (isinstance(mu0, int | float) and not isinstance(mu0, bool) and 0 < mu0 < 1e12):
                raise ValueError(f"solver option qp_mu0: expected a number in (0, 1e12), got {mu0!r}")
            if not self.qp_solver.endswith("HPIPM"):
                raise ValueError(f"solver option qp_mu0: HPIPM's option, but qp_solver is {self.qp_solver!r}; "
                                 "expected a *_HPIPM qp_solver or no qp_mu0")
            object.__setattr__(self, "qp_mu0", float(mu0))
        for name in ("warm_start", "merge_soft_pairs"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"solver option {name}: expected true or false, got {getattr(self, name)!r}")
        if not self.levenberg_marquardt >= 0:
            raise ValueError("solver option levenberg_marquardt: expected a number >= 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "solver options") -> SolverOptions:
        """Build from a mapping (e.g. a TOML table), rejecting unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown option(s) {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
