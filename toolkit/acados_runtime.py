"""The one place that knows where acados lives and how to load it.

acados comes from PyPI as ``comma-deps-acados`` (acados v0.2.2).  Its wheel
installs a package ``acados`` with the Python template in
``acados/acados_template`` and the C runtime (headers, ``libacados``,
``libhpipm``, ``libblasfeo``, ``libqpOASES_e``, the ``t_renderer`` binary) in
``acados/install``.  The shared libraries carry no RPATH, and the template
reads ``ACADOS_SOURCE_DIR`` / ``ACADOS_PYTHON_INTERFACE_PATH`` from the
environment.  Every other module asks this one for paths, flags and the
template module; nobody else sets those variables or loads those libraries.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ACADOS_DISTRIBUTION = "comma-deps-acados"
REPAIR_HINT = (
    "repair with `make setup` (it reinstalls comma-deps-acados, then casadi==3.8.2), "
    "or by hand: .venv/bin/pip install --force-reinstall comma-deps-acados && "
    ".venv/bin/pip install --force-reinstall --no-deps casadi==3.8.2"
)
# Load order matters: libacados needs the symbols of the other three.
_RUNTIME_LIBRARIES = ("libblasfeo.so", "libhpipm.so", "libqpOASES_e.so.3.1", "libacados.so")
_loaded_handles: list[ctypes.CDLL] = []


class AcadosInstallError(RuntimeError):
    """The acados installation is missing or broken."""


@dataclass(frozen=True)
class AcadosPaths:
    """Locations inside the installed ``comma-deps-acados`` wheel."""

    package: Path
    install: Path
    include: Path
    lib: Path
    template: Path
    t_renderer: Path


def acados_paths() -> AcadosPaths:
    """Locate the acados package without importing its template."""
    spec = importlib.util.find_spec("acados")
    if spec is None or spec.origin is None:
        raise AcadosInstallError(f"the Python package 'acados' is not installed; {REPAIR_HINT}")
    package = Path(spec.origin).parent
    install = package / "install"
    return AcadosPaths(
        package=package,
        install=install,
        include=install / "include",
        lib=install / "lib",
        template=package / "acados_template",
        t_renderer=install / "bin" / "t_renderer",
    )


def acados_version() -> str:
    """Version string of the installed acados wheel (e.g. ``0.2.2.post92``)."""
    try:
        return importlib.metadata.version(ACADOS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise AcadosInstallError(f"{ACADOS_DISTRIBUTION} is not installed; {REPAIR_HINT}") from exc


def ensure_acados() -> AcadosPaths:
    """Set acados' environment variables and load its runtime libraries (idempotent)."""
    paths = acados_paths()
    os.environ["ACADOS_SOURCE_DIR"] = str(paths.install)
    os.environ["ACADOS_PYTHON_INTERFACE_PATH"] = str(paths.template)
    os.environ["TERA_PATH"] = str(paths.t_renderer)
    if not _loaded_handles:
        for name in _RUNTIME_LIBRARIES:
            path = paths.lib / name
            if not path.is_file():
                raise AcadosInstallError(f"missing acados library {path}; {REPAIR_HINT}")
            try:
                _loaded_handles.append(ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL))
            except OSError as exc:
                raise AcadosInstallError(f"cannot load {path}: {exc}; {REPAIR_HINT}") from exc
    return paths


def acados_template() -> ModuleType:
    """The ``acados.acados_template`` module, imported with the environment in place."""
    ensure_acados()
    return importlib.import_module("acados.acados_template")


def compile_flags() -> list[str]:
    """Include flags for C code that uses the acados C interface."""
    inc = acados_paths().include
    return [f"-I{inc}", f"-I{inc / 'acados'}", f"-I{inc / 'blasfeo' / 'include'}",
            f"-I{inc / 'hpipm' / 'include'}"]


def link_flags() -> list[str]:
    """Linker flags for a shared library that calls libacados, with an RPATH to it."""
    lib = acados_paths().lib
    return [f"-L{lib}", f"-Wl,--disable-new-dtags,-rpath,{lib}", "-lacados", "-lhpipm",
            "-lblasfeo", "-lm"]


def makefile_variables() -> list[str]:
    """Variables for the acados-generated Makefile so it builds against the wheel."""
    paths = acados_paths()
    return [f"INCLUDE_PATH={paths.include}", f"LIB_PATH={paths.lib}"]


@contextmanager
def captured_output() -> Iterator[list[str]]:
    """Capture everything written to the process' stdout and stderr file descriptors.

    acados' C code and its code generator print directly to file descriptor 1,
    which ``contextlib.redirect_stdout`` cannot intercept.  The captured text is
    appended to the yielded list when the block ends.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    sink: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield sink
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


class StdoutTrap:
    """Cheap, reusable capture of file descriptor 1 around a C call.

    For the solve loop, where :func:`captured_output` (a new temporary file per
    use) would cost more than the solve.  The C side must ``fflush(stdout)``
    before returning.  Whatever was printed is returned by :meth:`take`.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - lives with the trap
        self._saved = -1

    def __enter__(self) -> StdoutTrap:
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(self._file.fileno(), 1)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 1)
        os.close(self._saved)

    def take(self) -> str:
        """Text captured since the last call (empty string when nothing was printed)."""
        if os.fstat(self._file.fileno()).st_size == 0:
            return ""
        self._file.seek(0)
        text = self._file.read().decode(errors="replace")
        self._file.seek(0)
        self._file.truncate()
        return text


@dataclass(frozen=True)
class CheckResult:
    """One line of the installation check."""

    name: str
    ok: bool
    detail: str


def check_installation() -> list[CheckResult]:
    """Verify the acados and CasADi installation; never raises."""
    results: list[CheckResult] = []

    def record(name: str, fn: object) -> None:
        try:
            detail = fn()  # type: ignore[operator]
            results.append(CheckResult(name, True, str(detail)))
        except Exception as exc:
            results.append(CheckResult(name, False, f"{exc}"))

    def libraries() -> str:
        paths = ensure_acados()
        return f"{len(_RUNTIME_LIBRARIES)} libraries loaded from {paths.lib}"

    def template() -> str:
        module = acados_template()
        layout = acados_paths().template / "acados_layout.json"
        if not layout.is_file():
            raise AcadosInstallError(f"missing {layout}")
        return f"{module.__name__} {acados_version()}"

    def renderer() -> str:
        paths = acados_paths()
        with tempfile.TemporaryDirectory() as tmp:
            tpl = Path(tmp) / "t.in"
            tpl.write_text("{{ value }}")
            data = Path(tmp) / "d.json"
            data.write_text('{"value": 42}')
            out = Path(tmp) / "out.txt"
            proc = subprocess.run(
                [str(paths.t_renderer), f"{tmp}/*", "t.in", str(data), str(out)],
                cwd=tmp, capture_output=True, text=True, timeout=30, check=False,
            )
            if proc.returncode != 0 or out.read_text().strip() != "42":
                raise AcadosInstallError(f"t_renderer failed: {proc.stderr.strip()[:200]}")
        return str(paths.t_renderer)

    def casadi_plugins() -> str:
        import casadi as cs

        version = cs.CasadiMeta.version()
        major, minor = (int(v) for v in version.split(".")[:2])
        if (major, minor) < (3, 8):
            raise AcadosInstallError(
                f"CasADi {version} is the slim copy vendored by acados; need >= 3.8"
            )
        x = cs.SX.sym("x")
        cs.nlpsol("check", "ipopt", {"x": x, "f": (x - 1) ** 2}, {"print_time": False,
                  "ipopt": {"print_level": 0, "sb": "yes"}})
        return f"CasADi {version} with ipopt"

    def compiler() -> str:
        proc = subprocess.run(["cc", "--version"], capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise AcadosInstallError(f"`cc --version` failed: {proc.stderr.strip()[:200]}")
        first = (proc.stdout.strip().splitlines() or ["cc"])[0]
        return f"{first} (builds the solvers and the compiled learning steps)"

    record("C compiler (cc)", compiler)
    record("acados runtime libraries", libraries)
    record("acados template", template)
    record("t_renderer", renderer)
    record("CasADi >= 3.8 with plugins", casadi_plugins)
    return results
