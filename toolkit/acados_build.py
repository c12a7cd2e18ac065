"""Turn a :class:`ProblemFunctions` into a compiled acados solver, cached by hash.

The acados OCP uses discrete dynamics (the integrator is already inside
``F``), external costs, and nonlinear constraints ``h`` whose θ-dependence is
in the expression, so the same symbols serve acados and the CasADi
sensitivities.  The acados parameter vector of every stage is
``[θ; p; w_k]`` where ``w_k = γ^k`` is the stage's discount weight.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import casadi as cs
import numpy as np

from rlmpc.toolkit import acados_runtime
from rlmpc.toolkit.cache import cache_root
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import ProblemFunctions

if TYPE_CHECKING:
    from rlmpc.toolkit.soft_pairs import SoftPairs

# acados v0.2.2 has no infinity masking: an unbounded side of a constraint becomes a
# finite bound BIG_BOUND away from the other side (or from 0 when both are open).  HPIPM
# floors multipliers near 1e-16, so the QP's complementarity cannot fall below about
# 1e-16 * BIG_BOUND: with 1e6 a QP tolerance of 1e-10 is unreachable and every QP runs to
# its iteration limit; 1e4 keeps it reachable.  Scale problems so that no constraint
# expression strays 1e4 from its finite bound.
BIG_BOUND = 1e4
GLUE_SOURCE = Path(__file__).parent / "native" / "rlmpc_glue.c"


class AcadosBuildError(RuntimeError):
    """Code generation or compilation of an acados solver failed."""


@dataclass(frozen=True)
class BuiltSolver:
    """A compiled solver on disk."""

    model_name: str
    directory: Path
    glue_library: Path
    build_hash: str


def build_root() -> Path:
    """Folder for generated solvers: ``acados/`` in the cache (:func:`rlmpc.toolkit.cache.cache_root`)."""
    return cache_root() / "acados"


def build_hash(fns: ProblemFunctions, options: SolverOptions, pairs: SoftPairs | None = None) -> str:
    h = hashlib.sha256()
    h.update(fns.problem_hash.encode())
    if pairs is not None and pairs.n:
        h.update(f"soft pairs {pairs.lower} {pairs.upper}".encode())
    h.update(json.dumps(options.as_dict(), sort_keys=True).encode())
    h.update(acados_runtime.acados_version().encode())
    h.update(GLUE_SOURCE.read_bytes())
    h.update(Path(__file__).read_bytes())  # this builder's own choices (bounds, options)
    return h.hexdigest()


def finite_bounds(lb: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace infinite bounds by finite ones BIG_BOUND away from the other side."""
    lb, ub = np.asarray(lb, dtype=float), np.asarray(ub, dtype=float)
    low = np.where(np.isfinite(lb), lb, np.where(np.isfinite(ub), ub, 0.0) - BIG_BOUND)
    upp = np.where(np.isfinite(ub), ub, np.where(np.isfinite(lb), lb, 0.0) + BIG_BOUND)
    return low, upp


def resolve_nlp_solver(fns: ProblemFunctions, options: SolverOptions) -> str:
    """``auto``: one real-time iteration solves a QP exactly; anything else needs SQP."""
    if options.nlp_solver != "auto":
        return options.nlp_solver
    return "SQP_RTI" if fns.is_qp else "SQP"


def stage_parameter_symbol(fns: ProblemFunctions) -> tuple[cs.SX, cs.SX, cs.SX, cs.SX]:
    """Symbols (θ, p, w, [θ; p; w]) of the acados parameter vector."""
    th = fns.theta.sym()
    p = fns.params.sym()
    w = cs.SX.sym("w_discount")
    return th, p, w, cs.vertcat(th, p, w)


def _make_ocp(fns: ProblemFunctions, options: SolverOptions, model_name: str,
              directory: Path, pairs: SoftPairs | None = None) -> object:
    tpl = acados_runtime.acados_template()
    x = cs.SX.sym("x", fns.nx)
    u = cs.SX.sym("u", fns.nu)
    th, p, w, p_all = stage_parameter_symbol(fns)

    model = tpl.AcadosModel()
    model.name = model_name
    model.x, model.u, model.p = x, u, p_all
    model.disc_dyn_expr = fns.dynamics(x, u, th, p)
    stage = w * fns.stage_cost(x, u, th, p) + fns.stage_cost_undiscounted(x, u, th, p)
    model.cost_expr_ext_cost_0 = fns.initial_cost(th, p) + stage
    model.cost_expr_ext_cost = stage
    model.cost_expr_ext_cost_e = fns.terminal_cost(x, th, p)

    ocp = tpl.AcadosOcp()
    ocp.model = model
    ocp.dims.N = fns.horizon
    ocp.cost.cost_type_0 = "EXTERNAL"
    ocp.cost.cost_type = "EXTERNAL"
    ocp.cost.cost_type_e = "EXTERNAL"
    ocp.parameter_values = np.zeros(p_all.shape[0])

    con = ocp.constraints
    con.x0 = np.zeros(fns.nx)
    # every input is boxed (open sides made finite) so that Q(s,a) can fix u_0 = a
    con.idxbu = np.arange(fns.nu)
    con.lbu, con.ubu = finite_bounds(fns.u_lb, fns.u_ub)

    sr, pr = fns.state_rows, fns.path_rows
    h_state = fns.h_state(x, th, p)
    s_lb, s_ub, s_soft, s_wl, s_wq = sr.lb, sr.ub, sr.soft, sr.w_lin, sr.w_quad
    s_wl_up, s_wq_up = s_wl, s_wq
    if pairs is not None and pairs.n:
        # merged pairs (rlmpc.toolkit.soft_pairs): the upper bounds of the merged rows are set at
        # run time; the slack penalties per stage too (these are placeholders)
        kept = pairs.kept
        s_ub = sr.ub.copy()
        s_ub[list(pairs.lower)] = sr.lb[list(pairs.lower)] + BIG_BOUND
        s_wl_up, s_wq_up = s_wl.copy(), s_wq.copy()
        s_wl_up[list(pairs.lower)] = s_wl[list(pairs.upper)]
        s_wq_up[list(pairs.lower)] = s_wq[list(pairs.upper)]
        h_state = h_state[list(kept)]
        s_lb, s_ub, s_soft = s_lb[kept], s_ub[kept], s_soft[kept]
        s_wl, s_wq, s_wl_up, s_wq_up = s_wl[kept], s_wq[kept], s_wl_up[kept], s_wq_up[kept]
    if s_lb.size + pr.n:
        model.con_h_expr = cs.vertcat(h_state, fns.h_path(x, u, th, p))
        con.lh, con.uh = finite_bounds(np.concatenate([s_lb, pr.lb]), np.concatenate([s_ub, pr.ub]))
        soft = np.where(np.concatenate([s_soft, pr.soft]))[0]
        if soft.size:
            con.idxsh = soft
            ocp.cost.zl = np.concatenate([s_wl, pr.w_lin])[soft]
            ocp.cost.zu = np.concatenate([s_wl_up, pr.w_lin])[soft]
            ocp.cost.Zl = np.concatenate([s_wq, pr.w_quad])[soft]
            ocp.cost.Zu = np.concatenate([s_wq_up, pr.w_quad])[soft]
    if s_lb.size:
        model.con_h_expr_e = h_state
        con.lh_e, con.uh_e = finite_bounds(s_lb, s_ub)
        soft_e = np.where(s_soft)[0]
        if soft_e.size:
            con.idxsh_e = soft_e
            ocp.cost.zl_e, ocp.cost.zu_e = s_wl[soft_e], s_wl_up[soft_e]
            ocp.cost.Zl_e, ocp.cost.Zu_e = s_wq[soft_e], s_wq_up[soft_e]

    opts = ocp.solver_options
    opts.tf = float(fns.horizon)  # unit time steps: acados scales stage costs by the step
    opts.integrator_type = "DISCRETE"
    opts.nlp_solver_type = resolve_nlp_solver(fns, options)
    opts.qp_solver = options.qp_solver
    opts.hessian_approx = options.hessian
    opts.regularize_method = options.regularization
    opts.globalization = options.globalization
    opts.nlp_solver_max_iter = options.max_iter
    opts.nlp_solver_tol_stat = options.tol
    opts.nlp_solver_tol_eq = options.tol
    opts.nlp_solver_tol_ineq = options.tol
    opts.nlp_solver_tol_comp = options.tol
    # The QP's inaccuracy floors the NLP's stationarity residual, and HPIPM's
    # complementarity measure is a mean where the NLP's is a max: solve QPs well below
    # the NLP tolerance (see BIG_BOUND for the floor).
    qp_tol = options.qp_tol if options.qp_tol is not None else min(options.tol * 1e-2, 1e-10)
    opts.qp_solver_tol_stat = qp_tol
    opts.qp_solver_tol_eq = qp_tol
    opts.qp_solver_tol_ineq = qp_tol
    opts.qp_solver_tol_comp = qp_tol
    opts.qp_solver_iter_max = options.qp_max_iter
    opts.hpipm_mode = options.hpipm_mode
    opts.levenberg_marquardt = options.levenberg_marquardt
    opts.print_level = 0
    ocp.code_export_directory = str(directory)
    return ocp


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr)[-3000:]
        raise AcadosBuildError(f"{what} failed in {cwd} (exit {proc.returncode}):\n{log}")


def build_solver(fns: ProblemFunctions, options: SolverOptions,
                 pairs: SoftPairs | None = None) -> BuiltSolver:
    """Generate and compile (or reuse from the cache) the acados solver of a problem; with
    ``pairs``, one-sided soft state rows merged (:mod:`rlmpc.toolkit.soft_pairs`)."""
    digest = build_hash(fns, options, pairs)
    model_name = f"{fns.name}_{digest[:10]}"
    directory = build_root() / model_name
    glue = directory / f"librlmpc_{model_name}.so"
    marker = directory / "BUILD_OK"
    built = BuiltSolver(model_name, directory, glue, digest)
    if marker.is_file() and glue.is_file():
        return built
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{model_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and glue.is_file():
            return built
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        generate_sources(fns, options, model_name, directory, pairs)
        _run(["make", "ocp_shared_lib", *acados_runtime.makefile_variables()], directory,
             "compiling the acados solver")
        _run([
            "cc", "-O2", "-fPIC", "-shared", "-std=c99", str(GLUE_SOURCE),
            f"-I{directory}", *acados_runtime.compile_flags(),
            f"-DRLMPC_MODEL={model_name}", f'-DRLMPC_HEADER="acados_solver_{model_name}.h"',
            f"-L{directory}", f"-lacados_ocp_solver_{model_name}",
            f"-Wl,-rpath,{directory}", *acados_runtime.link_flags(), "-o", str(glue),
        ], directory, "compiling the rlmpc glue")
        marker.write_text(digest + "\n")
    return built


def generate_sources(fns: ProblemFunctions, options: SolverOptions, model_name: str,
                     directory: Path, pairs: SoftPairs | None = None) -> None:
    tpl = acados_runtime.acados_template()
    ocp = _make_ocp(fns, options, model_name, directory, pairs)
    json_file = str(directory / f"{model_name}.json")
    cwd = os.getcwd()
    try:
        with acados_runtime.captured_output() as log:
            try:
                tpl.AcadosOcpSolver.generate(ocp, json_file=json_file)
                error: Exception | None = None
            except Exception as exc:
                error = exc
    finally:
        os.chdir(cwd)
    if error is not None:
        raise AcadosBuildError(f"acados code generation failed: {error}\n{''.join(log)[-2000:]}")
