"""Learnable (θ) and fixed (p) parameters of a parametric MPC.

Values travel in two forms: a mapping ``name -> array`` for people, and one
flat vector for solvers.  Flattening is column-major (Fortran order), the order
CasADi's ``vec`` uses, so ``flat == vertcat(*[vec(sym) for sym in syms])``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import casadi as cs
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ParameterValues = Mapping[str, npt.ArrayLike] | npt.ArrayLike
"""Parameter values: a mapping ``name -> array`` (missing names keep defaults) or a flat vector."""


def _as_shape(shape: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(shape, int):
        return (shape, 1)
    if len(shape) == 1:
        return (int(shape[0]), 1)
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1]))
    raise ValueError(f"parameter shape: expected at most 2 dimensions, got {shape}")


def _broadcast(name: str, what: str, value: npt.ArrayLike, shape: tuple[int, int]) -> FloatArray:
    arr = np.asarray(value, dtype=float)
    try:
        if arr.size == shape[0] * shape[1] and arr.shape != shape:
            arr = arr.reshape(shape, order="F") if arr.ndim <= 1 else arr.reshape(shape)
        arr = np.broadcast_to(arr, shape).astype(float)
    except ValueError:
        raise ValueError(
            f"parameter '{name}' {what}: expected shape {shape}, got {np.shape(value)}"
        ) from None
    return np.array(arr, dtype=float)


def _shape_text(shape: tuple[int, int]) -> str:
    rows, cols = shape
    if rows == cols == 1:
        return "a number"
    if cols == 1 or rows == 1:
        return f"a list of {rows * cols} numbers"
    return f"a {rows}x{cols} matrix as {rows} lists of {cols} numbers (row by row)"


def _given_text(arr: np.ndarray) -> str:
    return "a number" if arr.ndim == 0 else f"shape {arr.shape}"


def exact_value(name: str, value: npt.ArrayLike, shape: tuple[int, int]) -> FloatArray:
    """A parameter value given by a user (θ file, configuration, mapping): numbers in exactly
    the parameter's shape.  A vector may be a flat list and a single number a scalar, but nothing
    is broadcast or reshaped in an order the user did not write (one-line ValueError)."""
    try:
        raw = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise ValueError(f"parameter '{name}' value: expected {_shape_text(shape)}, got rows of "
                         "different lengths") from None
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"parameter '{name}' value: expected {_shape_text(shape)}, got {value!r}")
    arr = raw.astype(float)
    rows, cols = shape
    if arr.shape == shape:
        return arr.copy()
    vector = rows == 1 or cols == 1
    if vector and arr.size == rows * cols and sum(d > 1 for d in arr.shape) <= 1:
        return arr.reshape(shape)
    raise ValueError(f"parameter '{name}' value: expected {_shape_text(shape)} (shape {shape}), "
                     f"got {_given_text(arr)}")


@dataclass(frozen=True)
class Parameter:
    """One named parameter: its CasADi symbol, shape, value and bounds."""

    name: str
    sym: cs.SX
    value: FloatArray
    lb: FloatArray
    ub: FloatArray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.sym.shape[0]), int(self.sym.shape[1]))

    @property
    def size(self) -> int:
        return int(self.sym.numel())


@dataclass
class ParameterSet:
    """An ordered collection of parameters with flatten/unflatten and validation."""

    kind: str  # "theta" or "p", used in error messages
    items: dict[str, Parameter] = field(default_factory=dict)

    def add(
        self,
        name: str,
        shape: int | tuple[int, ...],
        value: npt.ArrayLike,
        lb: npt.ArrayLike = -np.inf,
        ub: npt.ArrayLike = np.inf,
    ) -> cs.SX:
        """Declare a parameter and return its symbol."""
        if not name.isidentifier():
            raise ValueError(f"{self.kind} parameter name: expected an identifier, got {name!r}")
        if name in self.items:
            raise ValueError(f"{self.kind} parameter '{name}' is declared twice")
        shp = _as_shape(shape)
        val = _broadcast(name, "value", value, shp)
        low = _broadcast(name, "lb", lb, shp)
        upp = _broadcast(name, "ub", ub, shp)
        if np.any(np.isnan(val)) or np.any(np.isinf(val)):
            raise ValueError(f"parameter '{name}' value: expected finite numbers, got {val.ravel()}")
        if np.any(low > upp):
            raise ValueError(f"parameter '{name}' bounds: lb must not exceed ub")
        if np.any(val < low) or np.any(val > upp):
            raise ValueError(
                f"parameter '{name}' value {val.ravel(order='F')} is outside its bounds "
                f"[{low.ravel(order='F')}, {upp.ravel(order='F')}]"
            )
        sym = cs.SX.sym(name, *shp)
        self.items[name] = Parameter(name, sym, val, low, upp)
        return sym

    # --- views -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.items)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.items.values())

    def sym(self) -> cs.SX:
        """All symbols as one column vector (column-major per parameter)."""
        if not self.items:
            return cs.SX(0, 1)
        return cs.vertcat(*[cs.vec(p.sym) for p in self.items.values()])

    def default(self) -> FloatArray:
        return self._flat(lambda p: p.value)

    def lower(self) -> FloatArray:
        return self._flat(lambda p: p.lb)

    def upper(self) -> FloatArray:
        return self._flat(lambda p: p.ub)

    def _flat(self, get: Callable[[Parameter], FloatArray]) -> FloatArray:
        if not self.items:
            return np.zeros(0)
        return np.concatenate([get(p).ravel(order="F") for p in self.items.values()])

    def labels(self) -> list[str]:
        """One label per flat entry, e.g. ``A[1,0]``."""
        out: list[str] = []
        for p in self.items.values():
            if p.size == 1:
                out.append(p.name)
                continue
            rows, cols = p.shape
            for j in range(cols):
                for i in range(rows):
                    out.append(f"{p.name}[{i}]" if cols == 1 else f"{p.name}[{i},{j}]")
        return out

    # --- conversions -------------------------------------------------------------
    def flatten(self, values: ParameterValues | None,
                check_bounds: bool = True) -> FloatArray:
        """Turn a mapping (missing names take defaults) or a flat vector into a flat vector."""
        if values is None:
            flat = self.default()
        elif isinstance(values, Mapping):
            unknown = set(values) - set(self.items)
            if unknown:
                raise ValueError(
                    f"{self.kind}: unknown parameter(s) {sorted(unknown)}; expected some of "
                    f"{self.names}"
                )
            parts = []
            for name, par in self.items.items():
                val = values.get(name, par.value)
                parts.append(exact_value(name, val, par.shape).ravel(order="F"))
            flat = np.concatenate(parts) if parts else np.zeros(0)
        else:
            flat = np.asarray(values, dtype=float).ravel()
            if flat.size != self.size:
                raise ValueError(
                    f"{self.kind}: expected a vector of {self.size} entries "
                    f"({', '.join(self.names)}), got {np.asarray(values).shape}"
                )
        if not np.all(np.isfinite(flat)):
            bad = [lbl for lbl, v in zip(self.labels(), flat, strict=True) if not np.isfinite(v)]
            raise ValueError(f"{self.kind}: expected finite values, got NaN/inf in {bad}")
        if check_bounds:
            low, upp = self.lower(), self.upper()
            out = (flat < low) | (flat > upp)
            if np.any(out):
                i = int(np.argmax(out))
                raise ValueError(
                    f"{self.kind} '{self.labels()[i]}' = {flat[i]:g} is outside its bounds "
                    f"[{low[i]:g}, {upp[i]:g}]"
                )
        return flat

    def unflatten(self, flat: npt.ArrayLike) -> dict[str, FloatArray]:
        """Split a flat vector into named arrays."""
        vec = np.asarray(flat, dtype=float).ravel()
        if vec.size != self.size:
            raise ValueError(f"{self.kind}: expected {self.size} entries, got {vec.size}")
        out: dict[str, FloatArray] = {}
        i = 0
        for name, par in self.items.items():
            out[name] = vec[i:i + par.size].reshape(par.shape, order="F").copy()
            i += par.size
        return out
