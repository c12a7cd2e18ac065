"""Export learned θ as a self-describing bundle of C code for a target.

A bundle (:func:`export_bundle`)::

    manifest.json          problem, θ (values, hash), dims, solver settings, versions, file hashes
    Makefile               builds build/rlmpc_test for the target (acados folders as variables)
    solver/                the acados OCP solver generated with θ baked in as constants
    src/rlmpc_controller.h the controller API (create, reset, solve, prediction)
    src/rlmpc_controller.c start-up settings (stage parameters [p; γ^k], stage-0 lh/uh, slacks)
    src/rlmpc_test_main.c  test program: solves the test vectors, prints u0 with %.17g
    test_vectors.json      reference solutions of rlmpc.toolkit.mpc.MPC at the same θ and options
    test_vectors.txt       their states, for the test program

The same inputs give byte-identical files.  Build and check one with
:func:`rlmpc.codegen.build.build_bundle` and :func:`rlmpc.codegen.run_bundle.run_bundle`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import casadi as cs

import rlmpc.toolkit as toolkit
from rlmpc.codegen.acados_export import export_solver_sources
from rlmpc.codegen.build import INCLUDE_DIRS, render_makefile
from rlmpc.codegen.bundle_folder import check_destination, staged_bundle
from rlmpc.codegen.c_sources import render_header, render_source, render_test_main
from rlmpc.codegen.manifest import theta_hash, write_manifest
from rlmpc.codegen.test_vectors import VectorPlan, compute_test_vectors, vectors_text
from rlmpc.codegen.toolchain import CFLAGS, EXECUTABLE, LIBRARIES, TOLERANCES, check_target
from rlmpc.toolkit.acados_build import BIG_BOUND, resolve_nlp_solver
from rlmpc.toolkit.acados_runtime import acados_version
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import ProblemFunctions, fix_theta
from rlmpc.toolkit.stage_settings import StartupSettings, startup_settings
from rlmpc.toolkit.theta_file import ThetaFile, load_theta


def _manifest(tf: ThetaFile, baked: ProblemFunctions, options: SolverOptions, target: str,
              settings: StartupSettings, sources: list[str], vectors: dict[str, Any]) -> dict[str, Any]:
    fns = tf.fns
    theta = fns.theta
    return {
        "target": target,
        "precision": "float64",
        "problem": {"name": tf.problem, "params": tf.problem_params, "hash": fns.problem_hash},
        **({"plant": tf.plant} if tf.plant is not None else {}),
        "theta": {
            "names": theta.names, "labels": theta.labels(),
            "values": {k: v.tolist() for k, v in theta.unflatten(tf.values).items()},
            "flat": [float(v) for v in tf.values], "hash": theta_hash(tf.values),
        },
        "p": {"names": baked.params.names, "labels": baked.params.labels(),
              "flat": [float(v) for v in baked.params.default()]},
        "dims": {"nx": fns.nx, "nu": fns.nu, "np": fns.np, "N": fns.horizon, "ntheta": fns.ntheta,
                 "np_stage": settings.np_stage},
        "input_bounds": {"lb": [float(v) for v in fns.u_lb], "ub": [float(v) for v in fns.u_ub]},
        "sampling_time": fns.dt,
        "discount": fns.discount,
        "solver": {**options.as_dict(), "nlp_solver_resolved": resolve_nlp_solver(baked, options),
                   "model_name": baked.name, "big_bound": BIG_BOUND,
                   "stage_parameters": "[p; gamma^k] (theta is baked into the code)"},
        "versions": {"toolkit": toolkit.__version__, "acados": acados_version(),
                     "casadi": cs.CasadiMeta.version()},
        "build": {"compiler_flags": list(CFLAGS), "include_dirs": list(INCLUDE_DIRS),
                  "sources": sources, "libraries": list(LIBRARIES), "executable": EXECUTABLE},
        "test_vectors": {"json": "test_vectors.json", "text": "test_vectors.txt",
                         "count": len(vectors["vectors"]), "start": "cold",
                         "tolerance_u0": TOLERANCES[target]},
    }


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def export_bundle(theta_path: str | Path, target: str, out_dir: str | Path,
                  options: SolverOptions | None = None, plan: VectorPlan | None = None) -> Path:
    """Export the θ of a θ file as a C bundle for ``target`` into ``out_dir``.

    Parameters
    ----------
    theta_path : path
        A θ file written by ``rlmpc train`` (:mod:`rlmpc.toolkit.theta_file`).
    target : str
        One of :data:`rlmpc.codegen.toolchain.TARGETS`.
    out_dir : path
        The bundle folder: new, empty, or an earlier bundle (replaced).
    options : SolverOptions, optional
        Options of the exported solver (default: ``SolverOptions()``).
    plan : VectorPlan, optional
        Seed and number of the reference test vectors.

    Returns
    -------
    Path
        The bundle folder.

    Raises
    ------
    ValueError
        Unknown target, unreadable θ file, θ of another problem version or outside its
        bounds, unusable output folder; nothing is written then.
    """
    check_target(target)
    tf = load_theta(theta_path)
    out = Path(out_dir).resolve()
    check_destination(out)
    # the bundle is acados' code of the problem's own rows, and it has no second solve: the
    # workstation-only settings are off (the manifest says so; test vectors are solved the same way)
    options = dataclasses.replace(options or SolverOptions(), merge_soft_pairs=False,
                                  fallback_hpipm_mode=None)
    baked = fix_theta(tf.fns, tf.values)
    p = baked.params.default()
    # θ and p stay acados parameters (stage rows [θ; p; γ^k]): SET_THETA and STEP_PARAMS set them
    settings = startup_settings(tf.fns, tf.values, p)
    vectors = compute_test_vectors(tf.fns, options, plan, theta=tf.values)  # as the bundle solves it
    summary = (f"problem {tf.problem} ({tf.fns.problem_hash[:12]}), theta sha256 "
               f"{theta_hash(tf.values)[:12]} at start-up (SET_THETA sets another), target {target}")

    with staged_bundle(out) as staging:
        export_solver_sources(tf.fns, options, baked.name, staging / "solver")
        _write_text(staging / "src" / "rlmpc_controller.h",
                    render_header(baked.name, baked.nx, baked.nu, baked.horizon, summary,
                                  ntheta=tf.fns.ntheta, n_p=tf.fns.np))
        _write_text(staging / "src" / "rlmpc_controller.c",
                    render_source(baked.name, settings, summary, tf.fns.theta.lower(), tf.fns.theta.upper()))
        _write_text(staging / "src" / "rlmpc_test_main.c", render_test_main())
        sources = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*.c"))
        _write_text(staging / "Makefile", render_makefile(target, sources))
        _write_text(staging / "test_vectors.json", json.dumps(vectors, indent=1) + "\n")
        _write_text(staging / "test_vectors.txt", vectors_text(vectors))
        write_manifest(staging, _manifest(tf, baked, options, target, settings, sources, vectors))
    return out
