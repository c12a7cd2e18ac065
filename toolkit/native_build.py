"""Compile C for the workstation's fast paths: a source file of ``toolkit/native`` or a CasADi function's
generated code, into a shared library in the cache (``native/``), named by the hash of what went in.

Both return ``None`` where no C compiler works, so callers keep their Python path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import casadi as cs

from rlmpc.toolkit.cache import cache_root

NATIVE_SOURCES = Path(__file__).resolve().parent / "native"
CFLAGS = ("-O2", "-fPIC", "-shared", "-std=c99")
_loaded: dict[Path, ctypes.CDLL] = {}


def _compile(source_text: str, stem: str) -> Path | None:
    digest = hashlib.sha256(source_text.encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    folder = cache_root() / "native"
    target = folder / f"lib{stem}_{digest}.so"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        src = Path(tmp) / f"{stem}.c"
        src.write_text(source_text)
        out = Path(tmp) / "lib.so"
        try:
            subprocess.run(["cc", *CFLAGS, str(src), "-lm", "-o", str(out)], check=True,
                           capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        os.replace(out, target)  # (atomic: a concurrent build writes the same bytes)
    return target


def _load(path: Path) -> ctypes.CDLL:
    lib = _loaded.get(path)
    if lib is None:
        lib = _loaded[path] = ctypes.CDLL(str(path))
    return lib


def native_library(name: str) -> ctypes.CDLL | None:
    """``toolkit/native/<name>.c`` compiled (cached) and loaded; None without a compiler."""
    path = _compile((NATIVE_SOURCES / f"{name}.c").read_text(), name)
    return None if path is None else _load(path)


def casadi_library(fn: cs.Function) -> tuple[ctypes.CDLL, str] | None:
    """The C that CasADi generates for ``fn``, compiled (cached) and loaded, with the name of its entry
    point (``int name(const double** arg, double** res, long long* iw, double* w, int mem)``, and
    ``name_work`` for the work sizes); None without a compiler."""
    name = fn.name()
    with tempfile.TemporaryDirectory() as tmp:
        gen = cs.CodeGenerator(f"{name}.c", {"with_header": False, "casadi_int": "long long int"})
        gen.add(fn)
        gen.generate(tmp + os.sep)
        text = (Path(tmp) / f"{name}.c").read_text()
    path = _compile(text, f"casadi_{name}")
    return None if path is None else (_load(path), name)
