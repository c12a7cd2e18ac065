"""`ParametricMPC`: the one definition of a parametric optimal control problem.

The problem, for an initial state ``s`` and learnable parameters ``θ``::

    min   c0(θ,p) + Σ_{k=0}^{N-1} [ γ^k ℓ(x_k,u_k,θ,p) + ℓ_u(x_k,u_k,θ,p) ] + ℓ_N(x_N,θ,p)
          + Σ_{k=1}^{N} γ^(k-1) Σ_j pen_j(σ_kj)           (soft state constraints)
          + Σ_{k=0}^{N-1} γ^k Σ_j pen_j(σ_kj)             (soft path constraints)
    s.t.  x_0 = s,  x_{k+1} = F(x_k,u_k,θ,p)
          u_lb ≤ u_k ≤ u_ub                                   k = 0..N-1
          lb - σ ≤ h_state(x_k,θ,p) ≤ ub + σ                  k = 1..N
          lb - σ ≤ h_path(x_k,u_k,θ,p) ≤ ub + σ               k = 0..N-1

with ``pen(σ) = w_lin σ + ½ w_quad σ²`` for soft rows and ``σ = 0`` for hard rows.
A state constraint at stage k is charged γ^(k-1): its violation is caused by the
input one step earlier (as in Gros & Zanon 2020).  The terminal cost is not
discounted.  Everything downstream (acados OCP, CasADi NLP and sensitivities,
exported C code) is derived from the :class:`ProblemFunctions` built here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import casadi as cs
import numpy as np
import numpy.typing as npt

from rlmpc.toolkit.parameters import FloatArray, ParameterSet

INTEGRATORS = ("rk4", "euler")
Expr = Any  # a CasADi SX expression or a number


@dataclass(frozen=True)
class ConstraintRows:
    """Stacked rows of one family of constraints (state or path)."""

    names: tuple[str, ...] = ()
    lb: FloatArray = field(default_factory=lambda: np.zeros(0))
    ub: FloatArray = field(default_factory=lambda: np.zeros(0))
    soft: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    w_lin: FloatArray = field(default_factory=lambda: np.zeros(0))
    w_quad: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class ProblemFunctions:
    """The problem as CasADi functions of ``(x, u, θ, p)``: the single source of truth."""

    name: str
    nx: int
    nu: int
    horizon: int
    discount: float
    dt: float
    theta: ParameterSet
    params: ParameterSet
    dynamics: cs.Function  # (x,u,θ,p) -> x+
    stage_cost: cs.Function  # (x,u,θ,p) -> ℓ, discounted by γ^k
    stage_cost_undiscounted: cs.Function  # (x,u,θ,p) -> ℓ_u
    initial_cost: cs.Function  # (θ,p) -> c0
    terminal_cost: cs.Function  # (x,θ,p) -> ℓ_N
    h_state: cs.Function  # (x,θ,p) -> rows, stages 1..N
    h_path: cs.Function  # (x,u,θ,p) -> rows, stages 0..N-1
    state_rows: ConstraintRows
    path_rows: ConstraintRows
    u_lb: FloatArray
    u_ub: FloatArray
    # export settings (not part of the OCP, not hashed): the steady state (θ,p) -> (x̄, ū) whose
    # LQR gain gives an embedded solver's fallback input, and the box of the export check's states
    operating_point: cs.Function | None = None
    check_box: tuple[FloatArray, FloatArray] | None = None

    @property
    def ntheta(self) -> int:
        return self.theta.size

    @property
    def np(self) -> int:
        return self.params.size

    @property
    def is_qp(self) -> bool:
        """True when, for fixed θ and p, the MPC is a QP in (x, u): affine dynamics and
        constraints, quadratic cost (CasADi's test; it may say False for some QPs)."""
        x, u = self.dynamics.sx_in(0), self.dynamics.sx_in(1)
        th, p = self.dynamics.sx_in(2), self.dynamics.sx_in(3)
        xu = cs.vertcat(x, u)
        linear = [self.dynamics(x, u, th, p), self.h_state(x, th, p), self.h_path(x, u, th, p)]
        quadratic = [self.stage_cost(x, u, th, p), self.stage_cost_undiscounted(x, u, th, p),
                     self.terminal_cost(x, th, p)]
        return (all(e.numel() == 0 or cs.is_linear(e, xu) for e in linear)
                and all(cs.is_quadratic(e, xu) for e in quadratic))

    @property
    def problem_hash(self) -> str:
        return _hash_problem(self)


def fix_theta(fns: ProblemFunctions, values: npt.ArrayLike) -> ProblemFunctions:
    """The same problem with θ replaced by numeric constants (θ becomes empty).

    Used to export a learned controller: the generated code then contains θ as
    constants.  Every function keeps its ``(…, theta, p)`` signature, with a 0×1 θ.
    """
    flat = fns.theta.flatten(values)
    const = cs.SX(cs.DM(flat))
    empty = ParameterSet("theta")

    def bake(fn: cs.Function) -> cs.Function:
        ins = fn.sx_in()
        names = fn.name_in()
        k = names.index("theta")
        args = list(ins)
        args[k] = const
        outs = fn.call(args)
        new_ins = list(ins)
        new_ins[k] = cs.SX(0, 1)
        return cs.Function(fn.name(), new_ins, outs, names, fn.name_out())

    return ProblemFunctions(
        name=fns.name, nx=fns.nx, nu=fns.nu, horizon=fns.horizon, discount=fns.discount,
        dt=fns.dt, theta=empty, params=fns.params,
        dynamics=bake(fns.dynamics), stage_cost=bake(fns.stage_cost),
        stage_cost_undiscounted=bake(fns.stage_cost_undiscounted),
        initial_cost=bake(fns.initial_cost), terminal_cost=bake(fns.terminal_cost),
        h_state=bake(fns.h_state), h_path=bake(fns.h_path),
        state_rows=fns.state_rows, path_rows=fns.path_rows, u_lb=fns.u_lb, u_ub=fns.u_ub,
        operating_point=None if fns.operating_point is None else bake(fns.operating_point),
        check_box=fns.check_box,
    )


def _hash_problem(fns: ProblemFunctions) -> str:
    h = hashlib.sha256()
    meta = {
        "name": fns.name, "nx": fns.nx, "nu": fns.nu, "N": fns.horizon,
        "gamma": repr(fns.discount), "dt": repr(fns.dt),
        "theta": [(p.name, p.shape) for p in fns.theta.items.values()],
        "theta_lb": fns.theta.lower().tolist(), "theta_ub": fns.theta.upper().tolist(),
        "p": [(p.name, p.shape) for p in fns.params.items.values()],
        "u_lb": fns.u_lb.tolist(), "u_ub": fns.u_ub.tolist(),
    }
    for label, rows in (("state", fns.state_rows), ("path", fns.path_rows)):
        meta[label] = [list(rows.names), rows.lb.tolist(), rows.ub.tolist(),
                       rows.soft.tolist(), rows.w_lin.tolist(), rows.w_quad.tolist()]
    h.update(json.dumps(meta, sort_keys=True).encode())
    for fn in (fns.dynamics, fns.stage_cost, fns.stage_cost_undiscounted, fns.initial_cost,
               fns.terminal_cost, fns.h_state, fns.h_path):
        h.update(fn.serialize().encode())
    return h.hexdigest()


def _scalar(field_name: str, expr: Expr) -> cs.SX:
    sx = cs.SX(expr) if not isinstance(expr, cs.SX) else expr
    if sx.shape != (1, 1):
        raise ValueError(f"{field_name}: expected a scalar expression, got shape {sx.shape}")
    return sx


def _column(field_name: str, expr: Expr) -> cs.SX:
    sx = cs.SX(expr) if not isinstance(expr, cs.SX) else expr
    if sx.shape[1] != 1 and sx.shape[0] == 1:
        sx = sx.T
    if sx.shape[1] != 1:
        raise ValueError(f"{field_name}: expected a vector expression, got shape {sx.shape}")
    return sx


def _function(field_name: str, fname: str, inputs: list[tuple[str, cs.SX]], out: cs.SX,
              allowed: str) -> cs.Function:
    try:
        return cs.Function(fname, [s for _, s in inputs], [out], [n for n, _ in inputs], ["out"])
    except RuntimeError as exc:
        if "free" in str(exc):
            free = [str(v) for v in cs.symvar(out)
                    if not any(cs.depends_on(s, v) for _, s in inputs if s.numel() > 0)]
            raise ValueError(
                f"{field_name}: the expression may only depend on {allowed}; it also uses {free}"
            ) from None
        raise


def _bounds(field_name: str, value: npt.ArrayLike | None, n: int, default: float) -> FloatArray:
    if value is None:
        return np.full(n, default)
    arr = np.asarray(value, dtype=float).ravel()
    if arr.size == 1:
        arr = np.full(n, float(arr[0]))
    if arr.size != n:
        raise ValueError(f"{field_name}: expected {n} entries, got {arr.size}")
    if np.any(np.isnan(arr)):
        raise ValueError(f"{field_name}: expected numbers, got NaN")
    return arr


class ParametricMPC:
    """Builder for a parametric MPC problem; call :meth:`build` to freeze it.

    Parameters
    ----------
    name : str
        A C identifier; it names generated code.
    nx, nu : int
        State and input dimensions.
    horizon : int
        Prediction horizon N.
    discount : float
        Discount factor γ in (0, 1].
    """

    def __init__(self, name: str, nx: int, nu: int, horizon: int, discount: float = 1.0) -> None:
        if not name.isidentifier():
            raise ValueError(f"name: expected a C identifier, got {name!r}")
        for label, val in (("nx", nx), ("nu", nu), ("horizon", horizon)):
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"{label}: expected a positive integer, got {val!r}")
        if not 0.0 < float(discount) <= 1.0:
            raise ValueError(f"discount: expected 0 < γ <= 1, got {discount}")
        self.name = name
        self.nx, self.nu, self.horizon, self.discount = nx, nu, horizon, float(discount)
        self.x = cs.SX.sym("x", nx)
        self.u = cs.SX.sym("u", nu)
        self.theta = ParameterSet("theta")
        self.params = ParameterSet("p")
        self.dt = 1.0
        self._dynamics: cs.SX | None = None
        self._stage_cost = cs.SX(0)
        self._stage_cost_u = cs.SX(0)
        self._initial_cost = cs.SX(0)
        self._terminal_cost = cs.SX(0)
        self._u_lb = np.full(nu, -np.inf)
        self._u_ub = np.full(nu, np.inf)
        self._cons: dict[str, list[tuple[str, cs.SX, float, float, bool, float, float]]] = {
            "state": [], "path": []}
        self._operating_point: tuple[cs.SX, cs.SX] | None = None
        self._check_box: tuple[FloatArray, FloatArray] | None = None

    # --- parameters --------------------------------------------------------------
    def learnable(self, name: str, init: npt.ArrayLike, lb: npt.ArrayLike = -np.inf,
                  ub: npt.ArrayLike = np.inf, shape: int | tuple[int, ...] | None = None) -> cs.SX:
        """Declare a learnable parameter θ_name; returns its symbol."""
        shp = shape if shape is not None else np.shape(np.asarray(init)) or 1
        return self.theta.add(name, shp, init, lb, ub)

    def fixed(self, name: str, default: npt.ArrayLike,
              shape: int | tuple[int, ...] | None = None) -> cs.SX:
        """Declare a fixed (not learned) parameter p_name, e.g. a reference; returns its symbol."""
        shp = shape if shape is not None else np.shape(np.asarray(default)) or 1
        return self.params.add(name, shp, default)

    # --- dynamics ------------------------------------------------------------------
    def discrete_dynamics(self, x_next: Expr, dt: float = 1.0) -> None:
        """Set x_{k+1} = F(x_k, u_k, θ, p); ``dt`` is the sampling time (metadata)."""
        expr = _column("dynamics", x_next)
        if expr.shape[0] != self.nx:
            raise ValueError(f"dynamics: expected {self.nx} rows, got {expr.shape[0]}")
        self._dynamics = expr
        self.dt = float(dt)

    def continuous_dynamics(self, xdot: Expr, dt: float, integrator: str = "rk4",
                            steps: int = 1) -> None:
        """Set ẋ = f(x, u, θ, p), discretised with a fixed-step integrator over ``dt``."""
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator: expected one of {INTEGRATORS}, got {integrator!r}")
        if not dt > 0:
            raise ValueError(f"dt: expected a positive sampling time, got {dt}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected a positive integer, got {steps!r}")
        f_expr = _column("dynamics", xdot)
        if f_expr.shape[0] != self.nx:
            raise ValueError(f"dynamics: expected {self.nx} rows, got {f_expr.shape[0]}")
        th, p = self.theta.sym(), self.params.sym()
        f = _function("dynamics", "f", [("x", self.x), ("u", self.u), ("theta", th), ("p", p)],
                      f_expr, "x, u, θ and p")
        h = dt / steps
        xk = self.x
        for _ in range(steps):
            if integrator == "euler":
                xk = xk + h * f(xk, self.u, th, p)
            else:
                k1 = f(xk, self.u, th, p)
                k2 = f(xk + h / 2 * k1, self.u, th, p)
                k3 = f(xk + h / 2 * k2, self.u, th, p)
                k4 = f(xk + h * k3, self.u, th, p)
                xk = xk + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        self.discrete_dynamics(xk, dt)

    # --- cost ----------------------------------------------------------------------
    def stage_cost(self, expr: Expr, discounted: bool = True) -> None:
        """Add to the stage cost ℓ(x,u,θ,p); discounted by γ^k unless ``discounted=False``."""
        term = _scalar("stage_cost", expr)
        if discounted:
            self._stage_cost = self._stage_cost + term
        else:
            self._stage_cost_u = self._stage_cost_u + term

    def terminal_cost(self, expr: Expr) -> None:
        """Add to the terminal cost ℓ_N(x,θ,p) (not discounted)."""
        self._terminal_cost = self._terminal_cost + _scalar("terminal_cost", expr)

    def initial_cost(self, expr: Expr) -> None:
        """Add a term c0(θ,p) that does not depend on x or u (e.g. a learnable offset V0)."""
        self._initial_cost = self._initial_cost + _scalar("initial_cost", expr)

    # --- constraints ---------------------------------------------------------------
    def input_bounds(self, lb: npt.ArrayLike, ub: npt.ArrayLike) -> None:
        """Box bounds on every input u_k (±inf for none)."""
        low = _bounds("input_bounds lb", lb, self.nu, -np.inf)
        upp = _bounds("input_bounds ub", ub, self.nu, np.inf)
        if np.any(low > upp):
            raise ValueError("input_bounds: lb must not exceed ub")
        self._u_lb, self._u_ub = low, upp

    def state_constraint(self, name: str, expr: Expr, lb: npt.ArrayLike | None = None,
                         ub: npt.ArrayLike | None = None, soft: bool = False,
                         linear_penalty: npt.ArrayLike = 0.0,
                         quadratic_penalty: npt.ArrayLike = 0.0) -> None:
        """lb ≤ h(x_k,θ,p) ≤ ub for k = 1..N, hard or soft (slack penalties per row)."""
        self._constraint("state", name, expr, lb, ub, soft, linear_penalty, quadratic_penalty)

    def path_constraint(self, name: str, expr: Expr, lb: npt.ArrayLike | None = None,
                        ub: npt.ArrayLike | None = None, soft: bool = False,
                        linear_penalty: npt.ArrayLike = 0.0,
                        quadratic_penalty: npt.ArrayLike = 0.0) -> None:
        """lb ≤ h(x_k,u_k,θ,p) ≤ ub for k = 0..N-1, hard or soft."""
        self._constraint("path", name, expr, lb, ub, soft, linear_penalty, quadratic_penalty)

    def _constraint(self, family: str, name: str, expr: Expr, lb: npt.ArrayLike | None,
                    ub: npt.ArrayLike | None, soft: bool, w_lin: npt.ArrayLike,
                    w_quad: npt.ArrayLike) -> None:
        label = f"{family}_constraint '{name}'"
        col = _column(label, expr)
        n = col.shape[0]
        low = _bounds(f"{label} lb", lb, n, -np.inf)
        upp = _bounds(f"{label} ub", ub, n, np.inf)
        wl = _bounds(f"{label} linear_penalty", w_lin, n, 0.0)
        wq = _bounds(f"{label} quadratic_penalty", w_quad, n, 0.0)
        if np.any(low > upp):
            raise ValueError(f"{label}: lb must not exceed ub")
        if np.all(np.isinf(low) & np.isinf(upp)):
            raise ValueError(f"{label}: expected at least one finite bound")
        if soft and (np.any(wl < 0) or np.any(wq < 0) or np.any(wl + wq <= 0)):
            raise ValueError(f"{label}: a soft constraint needs penalties >= 0 with "
                             "linear_penalty + quadratic_penalty > 0 on every row")
        for i in range(n):
            row = f"{name}[{i}]" if n > 1 else name
            self._cons[family].append((row, col[i], low[i], upp[i], bool(soft),
                                       float(wl[i]) if soft else 0.0,
                                       float(wq[i]) if soft else 0.0))

    # --- export settings (not part of the OCP) --------------------------------------
    def operating_point(self, x: Expr, u: Expr) -> None:
        """The steady state (x̄, ū) at which an embedded solver's fallback gain K is computed
        (u = ū − K(x − x̄) after a failed solve); may use θ and p, e.g. a reference.  Without it
        the export uses the steady state that minimises the stage cost (the problem's reference)."""
        xs, us = _column("operating_point x", x), _column("operating_point u", u)
        if xs.shape[0] != self.nx or us.shape[0] != self.nu:
            raise ValueError(f"operating_point: expected x with {self.nx} and u with {self.nu} entries, "
                             f"got {xs.shape[0]} and {us.shape[0]}")
        self._operating_point = (xs, us)

    def check_box(self, lb: npt.ArrayLike, ub: npt.ArrayLike) -> None:
        """The box of states `rlmpc export --check` draws its test states from (default: the state
        constraints' bounds, the plant's reset distribution, else ±1 about the operating point)."""
        low, upp = _bounds("check_box lb", lb, self.nx, 0.0), _bounds("check_box ub", ub, self.nx, 0.0)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(upp)) and np.all(low < upp)):
            raise ValueError("check_box: expected finite bounds with lb < ub on every state")
        self._check_box = (low, upp)

    # --- freeze --------------------------------------------------------------------
    def build(self) -> ProblemFunctions:
        """Validate the definition and return its CasADi functions."""
        if self._dynamics is None:
            raise ValueError(f"{self.name}: dynamics: not set (call discrete_dynamics or "
                             "continuous_dynamics)")
        x, u, th, p = self.x, self.u, self.theta.sym(), self.params.sym()
        xu = "x, u, θ and p"

        def rows(family: str) -> tuple[cs.SX, ConstraintRows]:
            cons = self._cons[family]
            expr = cs.vertcat(*[c[1] for c in cons]) if cons else cs.SX(0, 1)
            return expr, ConstraintRows(
                names=tuple(c[0] for c in cons),
                lb=np.array([c[2] for c in cons], dtype=float),
                ub=np.array([c[3] for c in cons], dtype=float),
                soft=np.array([c[4] for c in cons], dtype=bool),
                w_lin=np.array([c[5] for c in cons], dtype=float),
                w_quad=np.array([c[6] for c in cons], dtype=float),
            )

        hs_expr, state_rows = rows("state")
        hp_expr, path_rows = rows("path")
        ins_xu = [("x", x), ("u", u), ("theta", th), ("p", p)]
        ins_x = [("x", x), ("theta", th), ("p", p)]
        return ProblemFunctions(
            name=self.name, nx=self.nx, nu=self.nu, horizon=self.horizon,
            discount=self.discount, dt=self.dt, theta=self.theta, params=self.params,
            dynamics=_function("dynamics", "F", ins_xu, self._dynamics, xu),
            stage_cost=_function("stage_cost", "l", ins_xu, self._stage_cost, xu),
            stage_cost_undiscounted=_function("stage_cost", "lu", ins_xu, self._stage_cost_u, xu),
            initial_cost=_function("initial_cost", "c0", [("theta", th), ("p", p)],
                                   self._initial_cost, "θ and p"),
            terminal_cost=_function("terminal_cost", "lN", ins_x, self._terminal_cost,
                                    "x, θ and p"),
            h_state=_function("state_constraint", "hs", ins_x, hs_expr, "x, θ and p"),
            h_path=_function("path_constraint", "hp", ins_xu, hp_expr, xu),
            state_rows=state_rows, path_rows=path_rows,
            u_lb=self._u_lb.copy(), u_ub=self._u_ub.copy(),
            operating_point=None if self._operating_point is None else _function(
                "operating_point", "op", [("theta", th), ("p", p)],
                cs.vertcat(*self._operating_point), "θ and p"),
            check_box=self._check_box,
        )
