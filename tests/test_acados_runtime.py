"""The acados integration: installation check, output capture, and the build cache."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

from rlmpc.toolkit import MPC
from rlmpc.toolkit.acados_build import build_solver
from rlmpc.toolkit.acados_runtime import StdoutTrap, acados_paths, captured_output, check_installation
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc


def test_installation_check_passes() -> None:
    results = check_installation()
    assert [r.name for r in results] == ["C compiler (cc)", "acados runtime libraries", "acados template",
                                         "t_renderer", "CasADi >= 3.8 with plugins"]
    assert all(r.ok for r in results), results


def test_only_the_runtime_module_knows_acados_paths() -> None:
    """x86-64 acados: toolkit/acados_runtime.py; its aarch64 counterpart for cross builds:
    codegen/aarch64_acados.py.  Nobody else sets loader paths or acados variables."""
    paths = acados_paths()
    assert (paths.lib / "libacados.so").is_file()
    root = os.path.join(os.path.dirname(__file__), "..")
    offenders = []
    for folder in ("toolkit", "codegen", "hil"):
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for name in files:
                if not name.endswith(".py") or name in ("acados_runtime.py", "aarch64_acados.py"):
                    continue
                with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                    text = fh.read()
                if "ACADOS_SOURCE_DIR" in text or "LD_LIBRARY_PATH" in text or "RTLD_GLOBAL" in text:
                    offenders.append(name)
    assert offenders == []


def test_c_level_output_is_captured(capfd) -> None:  # type: ignore[no-untyped-def]
    libc = ctypes.CDLL(None)
    with captured_output() as log:
        libc.printf(b"from C\n")
        libc.fflush(None)
    assert "from C" in "".join(log)
    trap = StdoutTrap()
    with trap:
        libc.printf(b"noise\n")
        libc.fflush(None)
    assert trap.take() == "noise\n"
    assert trap.take() == ""
    assert "noise" not in capfd.readouterr().out


def test_solver_failure_output_is_kept_off_stdout(capfd) -> None:  # type: ignore[no-untyped-def]
    mpc = MPC(cartpole_mpc(), SolverOptions(max_iter=1))
    sol = mpc.value([0.5, 0.3, 0.0, 0.0])
    assert not sol.success
    assert "maximum iterations" in mpc._instances["V"].last_output
    assert "maximum iterations" not in capfd.readouterr().out


def test_build_cache_is_reused_and_keyed_by_problem() -> None:
    options = SolverOptions()
    first = build_solver(lti_mpc().build(), options)
    stamp = (first.glue_library.stat().st_mtime_ns, (first.directory / "BUILD_OK").stat().st_mtime_ns)
    again = build_solver(lti_mpc().build(), options)
    assert again.directory == first.directory
    assert (again.glue_library.stat().st_mtime_ns,
            (again.directory / "BUILD_OK").stat().st_mtime_ns) == stamp
    other = build_solver(lti_mpc(horizon=12).build(), options)
    assert other.directory != first.directory
    faster = build_solver(lti_mpc().build(), SolverOptions(nlp_solver="SQP_RTI"))
    assert faster.directory != first.directory


def test_problem_hash_is_stable_across_processes() -> None:
    code = "from rlmpc.toolkit.problems import cartpole_mpc; print(cartpole_mpc().build().problem_hash)"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)}
    assert len(outs) == 1
    assert outs.pop() == cartpole_mpc().build().problem_hash
