"""DAQP's C sources (MIT licence), shipped inside the package (:mod:`rlmpc.codegen.third_party`).

At set-up (or when the wheel is built) the sdist is fetched with pip (``pip download --no-binary
daqp --no-deps``), checked against a pinned SHA-256, and only its C sources, headers and licence
are unpacked to ``rlmpc/codegen/third_party/daqp/<version>``.  Exports read them from there and
never download.  Nothing of DAQP is committed to the repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from rlmpc.codegen import third_party

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
    """The package's vendored folder (:data:`rlmpc.codegen.third_party.ROOT`)."""
    return third_party.ROOT


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
    """The directory with DAQP's ``src/``, ``include/`` and ``LICENSE`` (never downloads).

    Returns
    -------
    Path
        ``rlmpc/codegen/third_party/daqp/<version>``.

    Raises
    ------
    MissingThirdPartyError
        When the installation lacks them (a source checkout before ``make setup``).
    """
    target = third_party_root() / "daqp" / DAQP_VERSION
    if not (target / ".complete").is_file():
        raise third_party.missing(f"DAQP {DAQP_VERSION}'s C sources", target)
    return target


def fetch_daqp_sources() -> Path:
    """Download and unpack DAQP's sources into the package once (set-up, wheel builds)."""
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
    print(fetch_daqp_sources())


if __name__ == "__main__":
    main()
