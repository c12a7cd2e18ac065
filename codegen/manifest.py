"""``manifest.json``: what a bundle contains and how it was made, with file hashes.

It holds no timestamp and no absolute path, so the same inputs give the same
manifest.  The θ hash is the SHA-256 of the canonical JSON of the flat θ values
(``json.dumps(list_of_floats, separators=(",", ":"))``: shortest round-trip
decimals, column-major order of :class:`rlmpc.toolkit.parameters.ParameterSet`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

BUNDLE_FORMAT = "rlmpc-bundle/1"
MANIFEST = "manifest.json"


def theta_hash(flat: npt.ArrayLike) -> str:
    """SHA-256 of the canonical JSON of the flat θ values."""
    values = [float(v) for v in np.asarray(flat, dtype=float).ravel()]
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_entries(root: Path) -> list[dict[str, str]]:
    """``{path, sha256}`` of every file under ``root`` except the manifest, sorted by path."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST)
    return [{"path": p.relative_to(root).as_posix(), "sha256": file_sha256(p)} for p in files]


def write_manifest(root: Path, document: dict[str, Any]) -> Path:
    """Add the file list of ``root`` to ``document`` and write ``root/manifest.json``."""
    doc = {"format": BUNDLE_FORMAT, **document, "files": file_entries(root)}
    path = root / MANIFEST
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Read and check a bundle's manifest and its files' hashes (one-line ValueError)."""
    path = Path(bundle) / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; expected a bundle made by export_bundle") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{path}: format: expected {BUNDLE_FORMAT!r}")
    for key in ("target", "files", "build", "test_vectors"):
        if key not in doc:
            raise ValueError(f"{path}: {key}: missing")
    for entry in doc["files"]:
        file = Path(bundle) / entry["path"]
        if not file.is_file():
            raise ValueError(f"{path}: files: {entry['path']} is missing from the bundle")
        if file_sha256(file) != entry["sha256"]:
            raise ValueError(f"{path}: files: {entry['path']} was modified (sha256 differs)")
    return doc
