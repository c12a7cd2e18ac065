"""DAQP's C sources (MIT licence), downloaded once from PyPI and cached in the build folder.

The sdist is fetched with pip (``pip download --no-binary daqp --no-deps``),
checked against a pinned SHA-256, and only its C sources, headers and licence
are unpacked to ``$RLMPC_BUILD_DIR/third_party/daqp`` (default
``./build/third_party/daqp``).  Nothing of DAQP is committed to the repository.

``python -m codegen.mcu.daqp_sources`` prints the directory (for set-up scripts).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DAQP_VERSION = "0.11.0"
DAQP_SDIST_SHA256 = "2f27baf18d2acca14186498e651b34e0bed455627e777d3fd8ba655e7e40f920"
# the active-set LDP solver proper: all that the MCU solver compiles (setup, BnB,
# proximal and hierarchical solvers, presolve and equality elimination are not needed)
SOLVER_SOURCES = ("daqp.c", "auxiliary.c", "factorization.c")
SOLVER_HEADERS = ("types.h", "constants.h", "daqp.h", "auxiliary.h", "factorization.h")
LICENSE_NAME = "LICENSE"
_MEMBER = re.compile(r"^daqp-[0-9.]+/(csrc/(src|include)/[A-Za-z0-9_]+\.[ch]|LICENSE)$")


class DaqpSourceError(RuntimeError):
    """The DAQP sdist could not be downloaded or did not match the pinned hash."""


def third_party_root() -> Path:
    """``$RLMPC_BUILD_DIR/third_party`` or ``./build/third_party``."""
    return Path(os.environ.get("RLMPC_BUILD_DIR", "build")).resolve() / "third_party"


def _download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
           "--no-binary", "daqp", "--no-deps", f"daqp=={DAQP_VERSION}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(dest.glob(f"daqp-{DAQP_VERSION}.tar.gz"))
    if proc.returncode != 0 or not found:
        raise DaqpSourceError(f"downloading the DAQP {DAQP_VERSION} sdist failed "
                              f"(exit {proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != DAQP_SDIST_SHA256:
        raise DaqpSourceError(f"{found[0].name}: SHA-256 {digest} differs from the pinned "
                              f"{DAQP_SDIST_SHA256}")
    return found[0]


def _unpack(sdist: Path, target: Path) -> None:
    """Copy only C sources, headers and the licence (no paths outside ``target``)."""
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not _MEMBER.match(member.name):
                continue
            rel = member.name.split("/", 1)[1].removeprefix("csrc/")
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is not None:
                out.write_bytes(src.read())


def daqp_sources() -> Path:
    """The directory with DAQP's ``src/``, ``include/`` and ``LICENSE`` (downloaded once).

    Returns
    -------
    Path
        ``<build>/third_party/daqp/<version>``.
    """
    base = third_party_root() / "daqp"
    target = base / DAQP_VERSION
    marker = target / ".complete"
    if marker.is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{DAQP_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return target
        if target.exists():
            shutil.rmtree(target)
        with tempfile.TemporaryDirectory(prefix="daqp-sdist-") as tmp:
            _unpack(_download(Path(tmp)), target)
        missing = [p for p in [*(f"src/{s}" for s in SOLVER_SOURCES),
                               *(f"include/{h}" for h in SOLVER_HEADERS), LICENSE_NAME]
                   if not (target / p).is_file()]
        if missing:
            raise DaqpSourceError(f"the DAQP {DAQP_VERSION} sdist lacks {missing}")
        marker.write_text(DAQP_SDIST_SHA256 + "\n")
    return target


def main() -> None:
    print(daqp_sources())


if __name__ == "__main__":
    main()
