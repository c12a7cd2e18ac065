"""Where a bundle may be written: a new or empty folder, or an earlier bundle left as it was made.

An earlier bundle is replaced as a whole, so it may hold nothing but what its manifest lists
(unchanged, by SHA-256) and its own build output (``build/``, made by its Makefile or
``rlmpc.codegen.build``).  Anything else in the folder, a file the user added or changed, or a
``manifest.json`` that is not an rlmpc bundle's, refuses the export before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rlmpc.codegen.manifest import BUNDLE_FORMAT, MANIFEST, file_sha256

BUILD_OUTPUT = "build"  # the bundle's own build folder: replaced with the bundle
SHOWN = 4  # foreign paths named in the message


def _foreign_paths(out: Path, listed: dict[str, str]) -> list[str]:
    """Paths under ``out`` that replacing the bundle would lose: not listed, or changed."""
    listed_dirs = {parent.as_posix() for rel in listed for parent in Path(rel).parents}
    foreign = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if rel == MANIFEST or rel.split("/")[0] == BUILD_OUTPUT:
            continue
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            foreign.append(rel)
        elif path.is_dir():
            if rel not in listed_dirs:
                foreign.append(rel + "/")
        elif listed.get(rel) != file_sha256(path):
            foreign.append(rel)
    # a foreign folder is named once, not with every file in it
    return [p for p in foreign if not any(p != d and p.startswith(d) for d in foreign if d.endswith("/"))]


def check_destination(out: Path) -> None:
    """Refuse any output folder but a new, empty or unchanged earlier bundle (one-line ValueError)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: output folder: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"{out}: output folder: not empty and not a bundle (no {MANIFEST}); "
                         "expected a new, empty or bundle folder")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == BUNDLE_FORMAT else None
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise ValueError(f"{manifest}: not the manifest of an rlmpc bundle (format "
                         f"{BUNDLE_FORMAT!r} with its file list); the output folder must be new, "
                         "empty or an earlier bundle")
    listed = {str(f.get("path")): str(f.get("sha256")) for f in files}
    foreign = _foreign_paths(out, listed)
    if foreign:
        more = f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else ""
        raise ValueError(f"{out}: output folder: an earlier bundle, but replacing it would lose "
                         f"{', '.join(foreign[:SHOWN])}{more} (added or changed since the export); "
                         "move them or choose another output folder")


@contextlib.contextmanager
def staged_bundle(out: Path) -> Iterator[Path]:
    """A hidden staging folder next to ``out``; on success it replaces ``out`` (an earlier
    bundle, see :func:`check_destination`) in one rename, on any error it is removed and
    ``out`` is left untouched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
