"""The aarch64 build of the installed acados, for cross-compiling exported solvers.

The x86-64 wheel ``comma-deps-acados`` (see :mod:`rlmpc.toolkit.acados_runtime`) has an
aarch64 twin on PyPI: the same acados version built for ARMv8-A.  At set-up (or
when the wheel is built, :mod:`rlmpc.codegen.third_party`) it is downloaded once with ``pip
download``, checked against its SHA-256, and its headers, shared libraries and licences are
unpacked to ``rlmpc/codegen/third_party/acados-aarch64/``, which ships inside the package.
Exports read them from there and never download.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rlmpc.codegen import third_party
from rlmpc.toolkit import acados_runtime

# The aarch64 wheel: post releases >= 93 of 0.2.2 carry byte-identical libraries, headers and
# template (they differ by Python packaging only); this one is pinned by name and SHA-256.
WHEEL_VERSION = "0.2.2.post104"
WHEEL_NAME = f"comma_deps_acados-{WHEEL_VERSION}-py3-none-manylinux_2_28_aarch64.whl"
WHEEL_SHA256 = "92768c6b6ee4aa40156307f7861079d0c1989fe53cccb100514e83bb79e9b506"
PIP_PLATFORM = "manylinux_2_28_aarch64"
PIP_PYTHON = "3.12"  # the aarch64 wheels of 0.2.2 require Python >= 3.12 (we only unpack them)
NOTICE = """The aarch64 build of acados, unpacked from {wheel} (PyPI, sha256 {sha}).
Its parts and their licences (the wheel carries no licence files):
- acados (https://github.com/acados/acados): BSD-2-Clause
- BLASFEO (https://github.com/giaf/blasfeo): BSD-2-Clause
- HPIPM (https://github.com/giaf/hpipm): BSD-2-Clause
- qpOASES_e (https://github.com/coin-or/qpOASES, embedded edition): LGPL-2.1-or-later
"""
_INSTALL_PREFIX = re.compile(r"^[^/]+\.data/purelib/acados/install/(include|lib)/")


class CrossAcadosError(RuntimeError):
    """The aarch64 acados could not be obtained or is broken."""


@dataclass(frozen=True)
class CrossAcados:
    """Headers and libraries of the aarch64 acados."""

    root: Path
    include: Path
    lib: Path
    version: str
    wheel: str


def cache_dir() -> Path:
    """The package's vendored aarch64 acados: ``rlmpc/codegen/third_party/acados-aarch64``."""
    return third_party.ROOT / "acados-aarch64"


def base_version(version: str) -> str:
    """The acados release of a wheel version: ``0.2.2.post92`` -> ``0.2.2``."""
    match = re.match(r"^(\d+\.\d+\.\d+)", version)
    if match is None:
        raise CrossAcadosError(f"cannot read an acados version from {version!r}")
    return match.group(1)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _paths(root: Path) -> CrossAcados:
    marker = json.loads((root / "READY").read_text())
    return CrossAcados(root, root / "include", root / "lib", marker["version"], marker["wheel"])


def _is_ready(root: Path) -> bool:
    return (root / "READY").is_file() and (root / "lib" / "libacados.so").is_file()


def _download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--platform", PIP_PLATFORM, "--python-version", PIP_PYTHON,
           f"comma-deps-acados=={WHEEL_VERSION}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise CrossAcadosError(f"pip download of the aarch64 acados wheel {WHEEL_NAME} failed "
                               f"(exit {proc.returncode}): {' | '.join(tail)}")
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise CrossAcadosError(f"{WHEEL_NAME}: sha256 {digest} differs from the pinned {WHEEL_SHA256}")
    return wheel


def _unpack(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            match = _INSTALL_PREFIX.match(info.filename)
            if match is None or info.is_dir():
                continue
            target = dest / match.group(1) / info.filename[match.end():]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
    if not (dest / "lib" / "libacados.so").is_file():
        raise CrossAcadosError(f"{wheel.name}: no acados/install/lib/libacados.so inside")


def _check_version() -> None:
    installed = acados_runtime.acados_version()
    if base_version(installed) != base_version(WHEEL_VERSION):
        raise CrossAcadosError(
            f"the installed acados is {installed} but the pinned aarch64 wheel is {WHEEL_VERSION}; "
            "update WHEEL_VERSION and WHEEL_SHA256 in codegen/aarch64_acados.py")


def ensure_aarch64_acados() -> CrossAcados:
    """The vendored aarch64 acados (never downloads; see :func:`fetch_aarch64_acados`)."""
    _check_version()
    root = cache_dir()
    if not _is_ready(root):
        raise third_party.missing("the aarch64 build of acados", root)
    return _paths(root)


def fetch_aarch64_acados() -> CrossAcados:
    """Download and unpack the aarch64 acados once (idempotent, safe across processes)."""
    _check_version()
    root = cache_dir()
    if _is_ready(root):
        return _paths(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".acados-aarch64.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(root):
            return _paths(root)
        with tempfile.TemporaryDirectory(dir=root.parent, prefix=".acados-aarch64-") as tmp:
            wheel = _download(Path(tmp) / "wheel")
            staged = Path(tmp) / "acados"
            _unpack(wheel, staged)
            (staged / "NOTICE").write_text(NOTICE.format(wheel=WHEEL_NAME, sha=WHEEL_SHA256))
            marker = {"wheel": WHEEL_NAME, "sha256": WHEEL_SHA256, "version": WHEEL_VERSION}
            (staged / "READY").write_text(json.dumps(marker, indent=1) + "\n")
            if root.exists():
                shutil.rmtree(root)
            staged.rename(root)
    return _paths(root)


def compile_flags(acados: CrossAcados) -> list[str]:
    """Include flags against the aarch64 headers (same layout as the installed wheel's)."""
    native = str(acados_runtime.acados_paths().include)
    return [flag.replace(native, str(acados.include), 1) for flag in acados_runtime.compile_flags()]


def link_flags(acados: CrossAcados) -> list[str]:
    """Linker flags against the aarch64 libraries (no RPATH: the target places them)."""
    libs = [flag for flag in acados_runtime.link_flags() if flag.startswith("-l")]
    return [f"-L{acados.lib}", f"-Wl,-rpath-link,{acados.lib}", *libs]


def qemu_library_args(acados: CrossAcados) -> list[str]:
    """``qemu-aarch64`` arguments that put the aarch64 acados libraries on the loader path."""
    return ["-E", f"LD_LIBRARY_PATH={acados.lib}"]


def main() -> int:
    try:
        print(fetch_aarch64_acados().root)
    except (CrossAcadosError, acados_runtime.AcadosInstallError) as exc:
        print(f"rlmpc.codegen.aarch64_acados: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
