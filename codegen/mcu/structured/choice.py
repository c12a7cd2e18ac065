"""Which MCU QP path an export takes: the condensed dense QP (DAQP) or the structured one.

Decided from sizes known at export, before anything is generated:

* the dense path's static RAM grows with the square of the QP's rows m = N (nu + rows per
  stage) (measured on main: ≈ 2 bytes × m² in float32, issue 15), the structured path's
  linearly with N (:func:`structured_ram_estimate` counts its arrays);
* in float32 the dense path's condensing loses the answer from nx ≈ 12 on (a 12-state chain
  returned non-finite inputs reported optimal, issue 15);
* otherwise the dense path is kept: on small problems it is several times faster
  (linear cart-pole N = 20: median 1,280 instructions per step).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlmpc.toolkit.problem import ProblemFunctions

QP_PATHS = ("dense", "structured")
DENSE_BYTES_PER_ROW2 = 2.0  # float32 static RAM of the dense path per m² (issue 15, measured)
FLOAT32_DENSE_MAX_NX = 10  # from this state dimension on, float32 exports take the structured path


@dataclass(frozen=True)
class QpChoice:
    """The path and why, for the export report and the manifest."""

    path: str
    reason: str
    dense_ram: int  # estimates, bytes
    structured_ram: int


def structured_ram_estimate(fns: ProblemFunctions, precision: str) -> int:
    """Static RAM of the structured solver (the arrays of ``rlmpc_riccati.c.in``), bytes."""
    N, nx, nu = fns.horizon, fns.nx, fns.nu
    nz, nh = nx + nu, max(fns.state_rows.n + fns.path_rows.n, 1)
    nr = nu + fns.state_rows.n + fns.path_rows.n
    per_stage = (nx * nx + nx * nu + nx + nz * nz + nz + nh + nh * nz  # stage data
                 + nx * nx + nu * nx + nu * nu + nu + nx  # Riccati
                 + 3 * nx + nu + nx + nz + 2 * nx + nu  # iterate, steps
                 + 16 * 2 * nr + nx + nu + nx + nu)  # sides (16 arrays), linearisation point, plan
    size = 4 if precision == "float32" else 8
    return int((N + 1) * per_stage * size + 2 * nr * (N + 1))


def dense_ram_estimate(fns: ProblemFunctions, precision: str) -> int:
    """Static RAM of the dense path from its QP rows (issue 15's fit), bytes."""
    m = fns.horizon * (fns.nu + fns.state_rows.n + fns.path_rows.n)
    return int(DENSE_BYTES_PER_ROW2 * m * m * (1 if precision == "float32" else 2))


def choose_qp(fns: ProblemFunctions, precision: str, requested: str | None = None) -> QpChoice:
    """The QP path for this problem (``requested``: ``--qp``, overrides the rule)."""
    if requested is not None and requested not in QP_PATHS:
        raise ValueError(f"--qp: expected one of {list(QP_PATHS)}, got {requested!r}")
    dense, structured = dense_ram_estimate(fns, precision), structured_ram_estimate(fns, precision)
    sizes = f"RAM estimates: dense {dense / 1024:.1f} KB, structured {structured / 1024:.1f} KB"
    if requested is not None:
        return QpChoice(requested, f"--qp {requested} ({sizes})", dense, structured)
    if precision == "float32" and fns.nx >= FLOAT32_DENSE_MAX_NX:
        return QpChoice("structured", f"nx = {fns.nx} >= {FLOAT32_DENSE_MAX_NX} in float32: the condensed "
                        f"QP loses its accuracy there ({sizes})", dense, structured)
    if dense > structured:
        return QpChoice("structured", f"smaller ({sizes})", dense, structured)
    return QpChoice("dense", f"smaller, and faster on small problems ({sizes})", dense, structured)
