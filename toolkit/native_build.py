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
from typing import Any

import casadi as cs
import numpy as np

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


def address(fn: Any) -> int:
    """The address of a ctypes function (to hand to C as a pointer)."""
    return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)


def numpy_lapack() -> ctypes.CDLL | None:
    """numpy's own LAPACK (the scipy-openblas64 library numpy.linalg calls: ILP64, ``scipy_*_64_``
    names), or None if this numpy has another layout."""
    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    found = sorted(folder.glob("libscipy_openblas64_*.so"))
    if not found:
        return None
    try:
        lib = ctypes.CDLL(str(found[0]))
        _ = lib.scipy_dsyevd_64_, lib.scipy_dpotrf_64_, lib.scipy_dgetrf_64_, lib.scipy_dgetrs_64_
    except (OSError, AttributeError):
        return None
    return lib


def scipy_lapack(name: str) -> int:
    """The address of scipy's LAPACK routine ``name`` (``scipy.linalg.cython_lapack``: what scipy's
    own wrappers call)."""
    import scipy.linalg.cython_lapack as lapack

    capsule = lapack.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return int(get_pointer(capsule, get_name(capsule)) or 0)


class CasadiCall:
    """A compiled CasADi function with its argument, result and work arrays, for C to call it."""

    def __init__(self, fn: cs.Function, kernels: ctypes.CDLL) -> None:
        built = casadi_library(fn)
        if built is None:
            raise OSError(f"no C compiler for the CasADi function {fn.name()}")
        lib, name = built
        sizes = np.zeros(4, dtype=np.int64)
        kernels.rlmpc_casadi_work.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        kernels.rlmpc_casadi_work(address(getattr(lib, f"{name}_work")), sizes.ctypes.data)
        n_arg, n_res, n_iw, n_w = (max(int(v), 1) for v in sizes)
        self.lib = lib
        self.fn = address(getattr(lib, name))
        self.arg = np.zeros(n_arg, dtype=np.uintp)
        self.res = np.zeros(n_res, dtype=np.uintp)
        self.iw = np.zeros(n_iw, dtype=np.int64)
        self.w = np.zeros(n_w)
