"""Export targets: their compiler, acados headers and libraries, and how to run a program.

``linux-x86_64`` builds with the host ``cc`` against the installed acados wheel
(flags from :mod:`rlmpc.toolkit.acados_runtime`, with an RPATH to its libraries);
``linux-aarch64`` cross-compiles with ``aarch64-linux-gnu-gcc`` against the
aarch64 acados of :mod:`rlmpc.codegen.aarch64_acados` and runs under ``qemu-aarch64``.
Every target compiles with the flags acados' generated Makefile uses for the
solvers of :class:`rlmpc.toolkit.mpc.MPC`, so x86-64 results are bit-identical.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rlmpc.codegen import aarch64_acados
from rlmpc.toolkit import acados_runtime

TARGETS = ("linux-x86_64", "linux-aarch64")
# |Δu0| allowed between the target and the workstation's MPC: x86-64 runs the same code
# on the same libacados (bit-exact); aarch64 has other BLASFEO kernels (with FMA).
TOLERANCES = {"linux-x86_64": 0.0, "linux-aarch64": 1e-9}
CFLAGS = ("-O2", "-std=c99", "-fPIC")  # as in acados' generated Makefile (rlmpc.toolkit.acados_build)
LIBRARIES = ("acados", "hpipm", "blasfeo", "m")
CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu")
EXECUTABLE = "rlmpc_test"


class ToolchainError(RuntimeError):
    """A compiler or emulator a target needs is missing."""


def check_target(target: str) -> str:
    """Return ``target`` if it is known, else raise a one-line ValueError."""
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {list(TARGETS)}, got {target!r}")
    return target


@dataclass(frozen=True)
class Toolchain:
    """How to compile, link and run C code that uses acados for one target."""

    target: str
    cc: str
    include_flags: tuple[str, ...]
    link_flags: tuple[str, ...]
    library_dir: Path
    run_prefix: tuple[str, ...] = ()  # emulator and its options, empty for native targets
    acados_runtime: str = ""  # version of the acados libraries linked

    def run_command(self, executable: Path, *args: str) -> list[str]:
        """Command line that runs ``executable`` for this target."""
        return [*self.run_prefix, str(executable), *args]


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise ToolchainError(f"{program} not found; install the Debian package {package} "
                             "(scripts/setup.sh does)")
    return program


def toolchain(target: str) -> Toolchain:
    """The toolchain of a target (downloads the aarch64 acados on first use)."""
    check_target(target)
    if target == "linux-x86_64":
        lib = acados_runtime.acados_paths().lib
        return Toolchain(target, _require("cc", "gcc"), tuple(acados_runtime.compile_flags()),
                         tuple(acados_runtime.link_flags()), lib,
                         acados_runtime=acados_runtime.acados_version())
    try:
        cross = aarch64_acados.ensure_aarch64_acados()
    except aarch64_acados.CrossAcadosError as exc:
        raise ToolchainError(str(exc)) from exc
    qemu = _require(QEMU, "qemu-user")
    if not (AARCH64_SYSROOT / "lib").is_dir():
        raise ToolchainError(f"{AARCH64_SYSROOT} missing; install the Debian package "
                             "libc6-dev-arm64-cross (scripts/setup.sh does)")
    return Toolchain(
        target, _require(CROSS_CC, "gcc-aarch64-linux-gnu"),
        tuple(aarch64_acados.compile_flags(cross)), tuple(aarch64_acados.link_flags(cross)),
        cross.lib, run_prefix=(qemu, "-L", str(AARCH64_SYSROOT), *aarch64_acados.qemu_library_args(cross)),
        acados_runtime=cross.version,
    )
