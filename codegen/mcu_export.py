"""``rlmpc export --target cortex-m4``: the bare-metal solver of a θ file, with its manifest.

A linear MPC (``is_qp``) becomes the condensed QP with DAQP (:mod:`rlmpc.codegen.mcu.generate`), a
nonlinear one the real-time iteration (:mod:`rlmpc.codegen.mcu.generate_rti`).  The folder holds
the C sources (solver and the DAQP files it needs), ``test_vectors.json`` (cold-start states →
u0 and the predicted trajectory of the workstation MPC at the same θ, converged; the device
must reproduce u0 within the manifest's ``tolerance_u0``) and ``manifest.json``; it is built by
the firmware (:mod:`rlmpc.codegen.firmware`).  ``--check`` compiles it on the host and compares it with acados.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import casadi as cs

import rlmpc.toolkit as toolkit
from rlmpc.codegen.bundle_folder import check_destination, staged_bundle
from rlmpc.codegen.manifest import theta_hash, write_manifest
from rlmpc.codegen.mcu.toolchain import CORTEX_M4F, Footprint, SolverSources, cortex_m4_footprint
from rlmpc.codegen.test_vectors import compute_test_vectors
from rlmpc.toolkit.acados_runtime import acados_version
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import fix_theta
from rlmpc.toolkit.theta_file import ThetaFile, load_theta

if TYPE_CHECKING:
    from rlmpc.codegen.mcu.host_check import HostReport
    from rlmpc.codegen.mcu.rti_check import RtiReport

MCU_TARGET = "cortex-m4"
PRECISIONS = ("float32", "float64")
# how close the device's u0 must come to the test vectors' (the workstation's, converged)
TOLERANCES_U0 = {"float32": 1e-3, "float64": 1e-6}
VECTORS_JSON = "test_vectors.json"
# static RAM (data + bss) the solver may take: the smallest board's SRAM (STM32F405: 128 KB, its
# 64 KB CCM aside) less what the firmware needs besides (stack, protocol and receive buffers)
DEFAULT_RAM_LIMIT = 112 * 1024


DENSE_SOLVER = {"qp_solver": "DAQP (static workspace)", "condensing": "dense, around an LQR feedback u = -K x + v"}
ADMM_SOLVER = {"qp_solver": "ADMM on Riccati gains cached at export (static workspace)",
               "condensing": "none: stage structure kept, time-invariant QP data compiled in"}
STRUCTURED_SOLVER = {"qp_solver": "interior point (Mehrotra) with a Riccati recursion (static workspace)",
                     "condensing": "none: stage structure kept, stage matrices computed on the device"}


def _manifest(tf: ThetaFile, precision: str, kind: str, vectors: dict[str, Any],
              footprint: Footprint, fallback: dict[str, Any] | None = None,
              solver: dict[str, str] | None = None) -> dict[str, Any]:
    fns = tf.fns
    return {**({"fallback": fallback} if fallback is not None else {}),
        "target": MCU_TARGET,
        "precision": precision,
        "solver": {"kind": kind, **(solver or DENSE_SOLVER)},
        "problem": {"name": tf.problem, "params": tf.problem_params, "hash": fns.problem_hash},
        **({"plant": tf.plant} if tf.plant is not None else {}),
        "theta": {"names": fns.theta.names, "labels": fns.theta.labels(),
                  "values": {k: v.tolist() for k, v in fns.theta.unflatten(tf.values).items()},
                  "flat": [float(v) for v in tf.values], "hash": theta_hash(tf.values)},
        "dims": {"nx": fns.nx, "nu": fns.nu, "np": fns.np, "N": fns.horizon, "ntheta": fns.ntheta},
        "input_bounds": {"lb": [float(v) for v in fns.u_lb], "ub": [float(v) for v in fns.u_ub]},
        "sampling_time": fns.dt,
        "versions": {"toolkit": toolkit.__version__, "acados": acados_version(),
                     "casadi": cs.CasadiMeta.version()},
        "test_vectors": {"json": VECTORS_JSON, "count": len(vectors["vectors"]), "start": "cold",
                         "reference": "rlmpc.toolkit.mpc.MPC (acados, tol 1e-9) at the same θ, converged",
                         "tolerance_u0": TOLERANCES_U0[precision]},
        "footprint": {"toolchain": "arm-none-eabi-gcc " + " ".join(CORTEX_M4F) + ", --gc-sections",
                      "text": footprint.linked_text, "data": footprint.linked_data,
                      "bss": footprint.linked_bss, "flash": footprint.flash, "ram": footprint.ram},
    }


def _check_ram(tf: ThetaFile, footprint: Footprint, limit: int) -> None:
    if footprint.ram > limit:
        fns = tf.fns
        raise ValueError(
            f"problem {tf.problem!r} (N={fns.horizon}, nx={fns.nx}, nu={fns.nu}): the solver needs "
            f"{footprint.ram / 1024:.1f} KB of static RAM on a Cortex-M4F, more than the target's "
            f"{limit / 1024:.1f} KB (--ram-limit); shorten the horizon or raise the limit for a larger part")


def _generate_solver(tf: ThetaFile, staging: Path, path: str, precision: str, runtime_theta: bool, warm: str,
                     operating_point: Any, admm_max_iter: int | None, admm_rho: float | None,
                     ) -> tuple[SolverSources, str, dict[str, str] | None, dict[str, Any] | None]:
    """Write the solver of one QP path into ``staging``: its sources, a one-line description, the
    manifest's solver entry (None: the dense one) and the fallback gain (nonlinear dense path)."""
    from rlmpc.codegen.mcu.generate import generate
    from rlmpc.codegen.mcu.generate_rti import generate_rti
    from rlmpc.codegen.mcu.structured.admm import MAX_ITER as ADMM_MAX_ITER
    from rlmpc.codegen.mcu.structured.admm import generate_admm
    from rlmpc.codegen.mcu.structured.generate import generate_structured

    if path == "admm":
        admm = generate_admm(tf.fns, staging, tf.values, precision=precision,
                             max_iter=admm_max_iter or ADMM_MAX_ITER,
                             settings=None if admm_rho is None else {"rho": float(admm_rho)})
        kind = (f"structured QP (ADMM on cached Riccati gains, rho {admm.rho:g}, at most {admm.max_iter} "
                "iterations per step; linear time-invariant MPC)")
        return admm, kind, {**ADMM_SOLVER, "rho": f"{admm.rho:g}", "max_iter": str(admm.max_iter)}, None
    if path == "structured":
        gen = generate_structured(tf.fns, staging, tf.values, precision=precision)
        kind = ("structured QP (interior point + Riccati; "
                + ("linear MPC)" if tf.fns.is_qp else "nonlinear MPC: one Gauss-Newton QP per step at "
                   "the last plan shifted)"))
        return gen, kind, dict(STRUCTURED_SOLVER), None
    if tf.fns.is_qp:
        dense = generate(tf.fns, staging, tf.values, precision=precision, runtime_theta=runtime_theta)
        kind = "condensed QP (linear MPC, matrices precomputed" + (
            "; SET_THETA recomputes them on the device)" if runtime_theta and tf.fns.ntheta else ")")
        return dense, kind, None, None
    rti = generate_rti(tf.fns, staging, tf.values, precision=precision, warm_start=warm,
                       operating_point=operating_point, runtime=runtime_theta)
    assert rti.fallback is not None
    kind = ("real-time iteration (nonlinear MPC, Gauss-Newton, one QP per step, linearised "
            + ("at the last plan shifted by one stage)" if warm == "shifted"
               else "at the last plan, like acados SQP_RTI)"))
    return rti, kind, None, rti.fallback.manifest()


def export_mcu(theta_path: str | Path, out_dir: str | Path, precision: str = "float32",
               ram_limit: int = DEFAULT_RAM_LIMIT, rti_warm_start: str | None = None,
               operating_point: Any = None, qp: str | None = None, runtime_theta: bool = True,
               admm_max_iter: int | None = None, admm_rho: float | None = None) -> Path:
    """Write the bare-metal solver of the θ file into ``out_dir`` (new, empty or a bundle).

    The solver is compiled for a Cortex-M4F first: if its static RAM exceeds ``ram_limit``
    bytes, a one-line ValueError is raised and nothing is written.  ``rti_warm_start``
    (nonlinear problems only): the RTI's next guess, the last plan shifted (default) or as it is;
    ``operating_point`` (nonlinear only): of the fallback gain, ``{"x", "u"}`` or ``"none"``
    (:func:`rlmpc.codegen.mcu.fallback.fallback_gain`).  ``qp``: ``dense`` or ``structured``
    or ``admm`` (default: :func:`~rlmpc.codegen.mcu.structured.choice.choose_qp`).  ``runtime_theta``: the
    device takes a new θ (SET_THETA) and recomputes its θ-dependent data (linear MPC: the condensed
    matrices then live in RAM); False: θ compiled in (constants in flash).  The structured path
    compiles θ in (no SET_THETA yet).  ``admm_max_iter``, ``admm_rho``: the ADMM path's iteration
    cap and penalty (default: 200 and measured at export); refused on the other paths.
    """
    from rlmpc.codegen.mcu.generate_rti import WARM_STARTS
    from rlmpc.codegen.mcu.structured.choice import choose_qp, dense_does_not_fit

    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    if rti_warm_start is not None and rti_warm_start not in WARM_STARTS:
        raise ValueError(f"rti warm start: expected one of {list(WARM_STARTS)}, got {rti_warm_start!r}")
    tf = load_theta(theta_path)
    if rti_warm_start is not None and tf.fns.is_qp:
        raise ValueError(f"{theta_path}: problem {tf.problem!r} is linear (a condensed QP, no real-time "
                         "iteration): --rti-warm-start does not apply")
    if operating_point is not None and tf.fns.is_qp:
        raise ValueError(f"{theta_path}: problem {tf.problem!r} is linear: its solver does not fail "
                         "for want of a linearisation; --operating-point does not apply")
    warm = rti_warm_start or WARM_STARTS[0]
    choice = choose_qp(tf.fns, precision, qp, ram_limit,
                       admm_options=admm_max_iter is not None or admm_rho is not None)
    for name, value in (("--admm-max-iter", admm_max_iter), ("--admm-rho", admm_rho)):
        if value is not None and choice.path != "admm":
            raise ValueError(f"{name}: only for the ADMM path; this export takes the {choice.path} path "
                             f"({choice.reason})")
        if value is not None and not value > 0:
            raise ValueError(f"{name}: expected a positive number, got {value:g}")
    out = Path(out_dir).resolve()
    check_destination(out)
    vectors = compute_test_vectors(fix_theta(tf.fns, tf.values), SolverOptions(tol=1e-9))
    with staged_bundle(out) as staging:
        while True:
            gen, kind, solver, fallback = _generate_solver(tf, staging, choice.path, precision, runtime_theta,
                                                           warm, operating_point, admm_max_iter, admm_rho)
            with tempfile.TemporaryDirectory(prefix="rlmpc-footprint-") as tmp:
                footprint = cortex_m4_footprint(gen, Path(tmp))
            retry = None if qp is not None or footprint.ram <= ram_limit else \
                dense_does_not_fit(tf.fns, choice, footprint.ram, ram_limit)
            if retry is None:
                break
            choice = retry
            for leftover in staging.iterdir():  # the dense path's files: not part of the bundle
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        solver = {**(solver or DENSE_SOLVER), "choice": choice.reason, "qp_path": choice.path}
        _check_ram(tf, footprint, ram_limit)
        (staging / VECTORS_JSON).write_text(json.dumps(vectors, indent=1) + "\n", encoding="utf-8")
        write_manifest(staging, _manifest(tf, precision, kind, vectors, footprint, fallback, solver))
    return out


def check_box(tf: ThetaFile, box: Any = None) -> tuple[tuple[Any, Any] | None, str]:
    """The box of the check's states: ``box`` (``{"lb", "ub"}``), the problem's check_box (or a
    built-in problem's box), the reset distribution of the plant the θ file names, else the
    check's own default (None: :func:`rlmpc.codegen.mcu.host_check.default_box`)."""
    from rlmpc.codegen.mcu.host_check import STATE_BOXES, parse_box, plant_box
    from rlmpc.toolkit.registry import make_env

    if box is not None:
        return parse_box(box, tf.fns.nx), "--check-box"
    plant = tf.plant
    if tf.fns.check_box is None and tf.fns.name not in STATE_BOXES and plant is not None:
        try:
            found = plant_box(lambda: make_env(plant["name"], plant.get("params", {})), tf.fns.nx)
        except Exception:  # (a plant that cannot be made here: the problem's own default box)
            found = None
        if found is not None:
            return found, f"the reset distribution of plant {plant['name']!r}"
    return None, ""


# the check's ADMM iteration cap: its states are cold starts from anywhere in the box (an export's cap
# is for warm-started closed loops); the check verifies the converged answer
ADMM_CHECK_ITER = 20000


def check_mcu(theta_path: str | Path, work_dir: Path, rti_warm_start: str | None = None,
              box: Any = None, operating_point: Any = None, qp: str | None = None,
              precision: str = "float32", admm_rho: float | None = None,
              admm_options: bool = False) -> HostReport | RtiReport:
    """Compile the solver on the host (float64 and float32) and compare it with acados; the
    report's ``lines()`` end with the verdict, ``problems()`` lists what failed.  ``box``: of the
    check's states (:func:`check_box`).  ``admm_rho``, ``admm_options``: as the
    export's (the same path and ρ; the check's ADMM cap is ADMM_CHECK_ITER)."""
    from dataclasses import replace

    from rlmpc.codegen.mcu.generate_rti import WARM_STARTS
    from rlmpc.codegen.mcu.host_check import check
    from rlmpc.codegen.mcu.rti_check import check_rti
    from rlmpc.codegen.mcu.structured.check import check_structured
    from rlmpc.codegen.mcu.structured.choice import choose_qp

    tf = load_theta(theta_path)
    path = choose_qp(tf.fns, precision, qp, admm_options=admm_options or admm_rho is not None).path
    if path == "admm":
        return check_structured(tf.fns, work_dir, tf.values, method="admm", max_iter=ADMM_CHECK_ITER,
                                settings=None if admm_rho is None else {"rho": float(admm_rho)})
    if path == "structured":
        return check_structured(tf.fns, work_dir, tf.values)
    the_box, source = check_box(tf, box)
    report: HostReport | RtiReport
    if tf.fns.is_qp:
        report = check(tf.fns, work_dir, tf.values, box=the_box)
    else:
        report = check_rti(tf.fns, work_dir, tf.values, warm_start=rti_warm_start or WARM_STARTS[0],
                           box=the_box, operating_point=operating_point)
    return replace(report, box_source=source) if the_box is not None else report
