"""Which MCU QP path an export takes: the condensed dense QP (DAQP), the structured interior
point (``structured``) or ADMM on cached Riccati gains (``admm``, time-invariant QPs only).

Decided from sizes and properties known at export, before anything is generated.  The dense path's static
RAM grows with the square of the QP's rows m = N (nu + rows per stage) (≈ 2.4 bytes × m² in
float32, fitted to the hover model and the mass chain at N = 20), the structured path's
linearly with N (:func:`structured_ram_estimate` counts its arrays).  Where the dense path
fits the RAM limit it is taken: it is much faster (hover model N = 20 on QEMU mps2-an386:
median 60k against 5.7M instructions per step, docs/benchmarks.md); otherwise the structured
path whose RAM is linear in N: ADMM where the problem is a time-invariant QP
(:func:`rlmpc.codegen.mcu.structured.lti.lti_qp`: no CasADi stage evaluations on the device, a
few thousand instructions per iteration), else the interior point.  Given an ADMM iteration cap
(a per-step budget), ADMM wherever it applies: on the hover model at N = 20 with ρ = 0.3 and 5
iterations it takes at most 57,880 instructions per step against the dense path's median 64k and
worst 1.9M, its closed loops within 0.85 % of acados' (docs/benchmarks.md, budget mode); run to
convergence (the default) it is slower than the dense path where that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlmpc.toolkit.problem import ProblemFunctions

QP_PATHS = ("dense", "structured", "admm")
DENSE_BYTES_PER_ROW2 = 2.4  # float32 static RAM of the dense path per m² (measured, see the docstring)


@dataclass(frozen=True)
class QpChoice:
    """The path and why, for the export report and the manifest."""

    path: str
    reason: str
    dense_ram: int  # estimates, bytes
    structured_ram: int
    admm_ram: int = 0


def admm_ram_estimate(fns: ProblemFunctions, precision: str) -> int:
    """Static RAM of the ADMM solver (the arrays of ``rlmpc_admm.c.in``), bytes."""
    N, nx, nu = fns.horizon, fns.nx, fns.nu
    nr = nu + fns.state_rows.n + fns.path_rows.n
    words = 2 * ((N + 1) * nx + N * nu) + N * nu + 2 * (N + 1) * nr
    return words * (4 if precision == "float32" else 8)


def structured_ram_estimate(fns: ProblemFunctions, precision: str) -> int:
    """Static RAM of the structured solver (the arrays of ``rlmpc_riccati.c.in``), bytes."""
    from rlmpc.codegen.mcu.structured.generate import dynamics_sparsity

    N, nx, nu = fns.horizon, fns.nx, fns.nu
    nz, nh = nx + nu, max(fns.state_rows.n + fns.path_rows.n, 1)
    nr = nu + fns.state_rows.n + fns.path_rows.n
    _, a_row, _, b_row = dynamics_sparsity(fns, fns.theta.flatten(None), None)
    stages = N * (len(a_row) + len(b_row) + nx + nu * nx + nu * nu + nu + nx + nu + nx + nu)
    stages += (N + 1) * (nh + nh * nz + nx * nx + nx + nx + nx + nz + nx + nx)
    stages += (N + 1) * 2 * nr * 11 + 2 * ((N + 1) * nx + N * nu)
    scratch = 2 * nz * nz + nz + nx * nx + nx * nu + nx * nz + nz + nx
    size = 4 if precision == "float32" else 8
    return int((stages + scratch) * size + (N + 1) * 2 * nr)


def dense_ram_estimate(fns: ProblemFunctions, precision: str) -> int:
    """Static RAM of the dense path from its QP rows (issue 15's fit), bytes."""
    m = fns.horizon * (fns.nu + fns.state_rows.n + fns.path_rows.n)
    return int(DENSE_BYTES_PER_ROW2 * m * m * (1 if precision == "float32" else 2))


def choose_qp(fns: ProblemFunctions, precision: str, requested: str | None = None,
              ram_limit: int = 112 * 1024, admm_options: bool = False) -> QpChoice:
    """The QP path for this problem (``requested``: ``--qp``, overrides the rule; ``admm_options``:
    the export was given an ADMM iteration cap or ρ, i.e. a budget: ADMM wherever it applies)."""
    if requested is not None and requested not in QP_PATHS:
        raise ValueError(f"--qp: expected one of {list(QP_PATHS)}, got {requested!r}")
    from rlmpc.codegen.mcu.structured.lti import NotTimeInvariant, lti_qp

    dense, structured = dense_ram_estimate(fns, precision), structured_ram_estimate(fns, precision)
    admm = admm_ram_estimate(fns, precision)
    try:
        lti_qp(fns)
        why_not_admm = ""
    except NotTimeInvariant as exc:
        why_not_admm = str(exc)
    sizes = (f"static RAM estimates: dense {dense / 1024:.1f} KB, structured {structured / 1024:.1f} KB, "
             f"ADMM {admm / 1024:.1f} KB, limit {ram_limit / 1024:.1f} KB")
    if requested == "admm" and why_not_admm:
        raise ValueError(f"--qp admm: the problem is not a time-invariant QP ({why_not_admm}); use "
                         "--qp structured (interior point)")
    if requested is not None:
        return QpChoice(requested, f"--qp {requested} ({sizes})", dense, structured, admm)
    if admm_options and not why_not_admm:
        return QpChoice("admm", "ADMM options given and the problem is a time-invariant QP: every step within "
                        f"the iteration cap (docs/benchmarks.md, budget mode) ({sizes})", dense, structured, admm)
    if dense <= ram_limit:
        return QpChoice("dense", f"the dense path fits and is much faster per step ({sizes})", dense, structured,
                        admm)
    if not why_not_admm:
        return QpChoice("admm", "the dense path does not fit; the problem is a time-invariant QP: ADMM on "
                        f"Riccati gains cached at export, RAM linear in N ({sizes})", dense, structured, admm)
    return QpChoice("structured", f"the dense path does not fit; not a time-invariant QP ({why_not_admm}): "
                    f"the interior point, RAM linear in N ({sizes})", dense, structured, admm)


def dense_does_not_fit(fns: ProblemFunctions, choice: QpChoice, measured_ram: int, ram_limit: int) -> QpChoice | None:
    """The path to take when the automatically chosen dense path, once compiled, needs more static RAM
    than the limit (its estimate is a fit; run-time θ keeps the condensed matrices in RAM): ADMM for a
    time-invariant QP, else the interior point; None when the choice was not the dense path."""
    if choice.path != "dense":
        return None
    from rlmpc.codegen.mcu.structured.lti import NotTimeInvariant, lti_qp

    measured = (f"the dense path, compiled, needs {measured_ram / 1024:.1f} KB of static RAM, more than the limit "
                f"{ram_limit / 1024:.1f} KB (estimate {choice.dense_ram / 1024:.1f} KB)")
    try:
        lti_qp(fns)
    except NotTimeInvariant as exc:
        return QpChoice("structured", f"{measured}; not a time-invariant QP ({exc}): the interior point, RAM "
                        "linear in N", choice.dense_ram, choice.structured_ram, choice.admm_ram)
    return QpChoice("admm", f"{measured}; a time-invariant QP: ADMM on Riccati gains cached at export, RAM "
                    "linear in N", choice.dense_ram, choice.structured_ram, choice.admm_ram)
