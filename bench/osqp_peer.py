"""OSQP's code generation on the same MPC QP, for the side-by-side QEMU benchmark.

OSQP (PyPI ``osqp``, pinned in :data:`PINS`) lives in its own virtual environment
(default ``build/osqp-venv``), never in the project's: :func:`ensure_venv` creates it
once (a stamp file records the pins) and :file:`osqp_worker.py` runs there.

The QP given to OSQP (:func:`sparse_qp`) is the stage-wise problem of
:func:`rlmpc.codegen.mcu.linearise.linearise` at fixed θ in the usual sparse form, with
z = (x_0, …, x_N, u_0, …, u_{N-1}, σ) and one slack σ ≥ 0 per soft row::

    min  Σ_k ½ (x_k,u_k)ᵀ W_k (x_k,u_k) + w_kᵀ (x_k,u_k) + ½ x_Nᵀ W_N x_N + w_Nᵀ x_N
         + Σ_soft w_lin σ + ½ w_quad σ²
    s.t. x_0 = x̂ (first nx rows, the only bounds that change per step)
         x_{k+1} = A_k x_k + B_k u_k + c_k
         u_lb ≤ u_k ≤ u_ub;  hard rows lower ≤ C x + D u ≤ upper
         C x + D u + σ ≥ lower,  C x + D u − σ ≤ upper,  σ ≥ 0   (soft rows)

(the same discounted costs, bounds and penalties as the condensed QP of the rlmpc
solver; one slack for both sides of a row has the same minimiser as one per side,
since both sides cannot be violated at once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rlmpc.codegen.mcu.linearise import LinearisedOcp
from rlmpc.codegen.mcu.qemu_bench import BENCH_DIR, REPO_ROOT, Unit, c_float
from rlmpc.toolkit.parameters import FloatArray

DEFAULT_VENV = REPO_ROOT / "build" / "osqp-venv"
WORKER = Path(__file__).with_name("_osqp_worker.py")
STAMP_NAME = "rlmpc-osqp-install.json"
PINS: tuple[str, ...] = ("osqp==1.1.3", "numpy==2.4.6", "scipy==1.17.1", "Jinja2==3.1.6",
                         "MarkupSafe==3.0.4", "joblib==1.6.0", "cloudpickle==3.1.2")
"""Complete, tested set of packages of the OSQP venv."""
PREFIX = "bench_"  # OSQP codegen prefix: the solver object is ``bench_solver``
ADAPTER = BENCH_DIR / "bench_osqp.c"
INFINITY = 1e30  # OSQP_INFTY in float


@dataclass(frozen=True)
class SparseQP:
    """The QP in OSQP's form ``min ½ zᵀPz + qᵀz, l ≤ Az ≤ u`` (see the module docstring)."""

    P: sp.csc_matrix
    q: FloatArray
    A: sp.csc_matrix
    l: FloatArray  # noqa: E741
    u: FloatArray
    nx: int
    nu: int
    u0_index: int

    @property
    def n(self) -> int:
        return int(self.P.shape[0])

    @property
    def m(self) -> int:
        return int(self.A.shape[0])

    def with_x0(self, x0: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(l, u) for initial state x0."""
        lo, up = self.l.copy(), self.u.copy()
        lo[: self.nx] = up[: self.nx] = x0
        return lo, up


def sparse_qp(ocp: LinearisedOcp) -> SparseQP:
    """OSQP's QP of a linearised MPC (see the module docstring)."""
    N, nx, nu = ocp.horizon, ocp.nx, ocp.nu
    ix = [np.arange(k * nx, (k + 1) * nx) for k in range(N + 1)]
    iu = [(N + 1) * nx + np.arange(k * nu, (k + 1) * nu) for k in range(N)]
    n_soft = sum(int(np.sum(st.rows.soft)) for st in ocp.stages)
    nz = (N + 1) * nx + N * nu + n_soft
    P, q = np.zeros((nz, nz)), np.zeros(nz)
    rows: list[tuple[np.ndarray, float, float]] = []

    def row(coef: dict[int, float] | np.ndarray, lo: float, up: float) -> None:
        r = np.zeros(nz)
        if isinstance(coef, dict):
            for j, v in coef.items():
                r[j] += v
        else:
            r[:] = coef
        rows.append((r, max(lo, -INFINITY), min(up, INFINITY)))

    for i in range(nx):
        row({int(ix[0][i]): 1.0}, 0.0, 0.0)  # x_0 = x̂, set per step
    for k in range(N):
        st = ocp.stages[k]
        for i in range(nx):
            r = np.zeros(nz)
            r[ix[k + 1][i]] = 1.0
            r[ix[k]] -= st.A[i]
            r[iu[k]] -= st.B[i]
            row(r, float(st.c[i]), float(st.c[i]))
    for k in range(N):
        for i in range(nu):
            row({int(iu[k][i]): 1.0}, float(ocp.u_lb[i]), float(ocp.u_ub[i]))
    slack = (N + 1) * nx + N * nu
    for k, st in enumerate(ocp.stages):
        idx = np.concatenate([ix[k], iu[k]]) if k < N else ix[k]
        z = np.zeros((nz, idx.size))
        z[idx, np.arange(idx.size)] = 1.0
        P += z @ st.W @ z.T
        q += z @ st.w
        rs = st.rows
        CD = np.hstack([rs.C, rs.D]) if k < N else rs.C
        for j in range(CD.shape[0]):
            r = np.zeros(nz)
            r[idx] = CD[j]
            lo, up = float(rs.lower[j]), float(rs.upper[j])
            if not rs.soft[j]:
                row(r, lo, up)
                continue
            P[slack, slack] += rs.w_quad[j]
            q[slack] += rs.w_lin[j]
            if np.isfinite(lo):
                row(r + np.eye(nz)[slack], lo, np.inf)
            if np.isfinite(up):
                row(r - np.eye(nz)[slack], -np.inf, up)
            row({slack: 1.0}, 0.0, np.inf)
            slack += 1
    A = np.array([r for r, _, _ in rows])
    return SparseQP(P=sp.csc_matrix(np.triu(P)), q=q, A=sp.csc_matrix(A),
                    l=np.array([lo for _, lo, _ in rows]), u=np.array([up for _, _, up in rows]),
                    nx=nx, nu=nu, u0_index=(N + 1) * nx)


# ---- the OSQP venv -------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"[osqp] {msg}", file=sys.stderr, flush=True)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def clean_env() -> dict[str, str]:
    """The environment without anything that would leak the project's venv into the child."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def install_is_current(venv: Path) -> bool:
    stamp = venv / STAMP_NAME
    if not (venv_python(venv).exists() and stamp.exists()):
        return False
    try:
        if json.loads(stamp.read_text()).get("pins") != list(PINS):
            return False
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
    probe = subprocess.run([str(venv_python(venv)), "-I", "-c", "import osqp"], capture_output=True,
                           env=clean_env(), check=False)
    return probe.returncode == 0


def ensure_venv(venv: Path = DEFAULT_VENV, base_python: str = sys.executable) -> Path:
    """Create ``venv`` with :data:`PINS` unless its stamp says it exists; its interpreter."""
    if install_is_current(venv):
        return venv_python(venv)
    t0 = time.perf_counter()
    _log(f"creating {venv} and installing {' '.join(PINS)} ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    (venv / STAMP_NAME).unlink(missing_ok=True)
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True, env=clean_env())
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "--no-input",
                    "--disable-pip-version-check", "--quiet", *PINS],
                   check=True, env=clean_env(), stdout=sys.stderr)
    (venv / STAMP_NAME).write_text(json.dumps({"pins": list(PINS)}, indent=1) + "\n")
    _log(f"installed in {time.perf_counter() - t0:.0f} s")
    return venv_python(venv)


# ---- code generation -----------------------------------------------------------------

@dataclass(frozen=True)
class OsqpCode:
    """OSQP's generated solver folder (with our ``osqp_bench_data.h``)."""

    directory: Path
    version: str
    settings: dict[str, float | int | bool]
    check_u0: FloatArray  # u0 of the double-precision Python OSQP (tight) on the check states

    @property
    def unit(self) -> Unit:
        """OSQP's sources: third-party, compiled without our -Werror."""
        d = self.directory
        return Unit((*sorted((d / "src").glob("*.c")), d / f"{PREFIX}workspace.c"),
                    (d, d / "inc" / "public", d / "inc" / "private"), (), strict=False)


def data_header(qp: SparseQP) -> str:
    """``osqp_bench_data.h``: sizes, the constant bounds and where x0 and u0 are."""
    def arr(v: FloatArray) -> str:
        return ", ".join(c_float(x) for x in np.clip(v, -INFINITY, INFINITY))

    return "\n".join([
        "/* Generated by osqp_peer for firmware_templates/bench/bench_osqp.c. */",
        "#ifndef OSQP_BENCH_DATA_H", "#define OSQP_BENCH_DATA_H",
        f'#include "{PREFIX}workspace.h"',
        f"#define BENCH_OSQP_SOLVER {PREFIX}solver",
        f"#define BENCH_OSQP_N {qp.n}", f"#define BENCH_OSQP_M {qp.m}",
        f"#define BENCH_OSQP_NX0 {qp.nx}", f"#define BENCH_OSQP_NU {qp.nu}",
        f"#define BENCH_OSQP_U0_INDEX {qp.u0_index}",
        f"static const OSQPFloat BENCH_OSQP_L[BENCH_OSQP_M] = {{{arr(qp.l)}}};",
        f"static const OSQPFloat BENCH_OSQP_U[BENCH_OSQP_M] = {{{arr(qp.u)}}};",
        "#endif", ""])


def generate_osqp(qp: SparseQP, out_dir: Path, python: Path, check_states: FloatArray,
                  settings: dict[str, float | int | bool] | None = None) -> OsqpCode:
    """Run OSQP's ``codegen(parameters='vectors', use_float=True)`` (embedded mode 1) in its venv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = out_dir / "qp.npz"
    bounds = [qp.with_x0(x) for x in np.atleast_2d(check_states)]
    np.savez(npz, P_data=qp.P.data, P_indices=qp.P.indices, P_indptr=qp.P.indptr, P_shape=qp.P.shape,
             A_data=qp.A.data, A_indices=qp.A.indices, A_indptr=qp.A.indptr, A_shape=qp.A.shape,
             q=qp.q, l=qp.l, u=qp.u, check_l=np.array([b[0] for b in bounds]),
             check_u=np.array([b[1] for b in bounds]), u0_index=qp.u0_index, nu=qp.nu)
    code_dir = out_dir / "osqp_code"
    cmd = [str(python), "-I", str(WORKER), str(npz), str(code_dir), PREFIX, json.dumps(settings or {})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"OSQP code generation failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    (code_dir / "osqp_bench_data.h").write_text(data_header(qp))
    return OsqpCode(code_dir, result["version"], result["settings"], np.array(result["check_u0"]))
