"""Build the controller firmware of a bare-metal solver bundle for a board, and run it.

``build_firmware(bundle, board, out)`` compiles :file:`firmware_templates/app/controller.c`
(the protocol's main loop), the protocol library, the bundle's solver (from
:func:`rlmpc.codegen.mcu_export.export_mcu`) and the board support into one program:

* ``host``: a native executable (gcc) serving the protocol on a file descriptor or a path
  (software in the loop); ``ACTION.cost`` in microseconds (``clock_gettime``).  Builds
  bare-metal bundles and ``linux-x86_64`` acados bundles;
* ``mps2-an386``: an ELF and a raw BIN for QEMU's Cortex-M4F (arm-none-eabi-gcc, the flags of
  :mod:`rlmpc.codegen.mcu.qemu_bench`) with a size report; ``ACTION.cost`` in instructions
  (``-icount shift=0``).
* ``stm32f405``: the same for an STM32F405 (1 MB flash at 0x08000000, 128 KB SRAM), run in
  QEMU ``-M netduinoplus2`` (USART1 on the first ``-serial``); ``ACTION.cost`` in core clock
  cycles (SysTick at 168 MHz; under ``-icount shift=0`` one cycle ≈ 5.95 instructions).
* ``linux-aarch64``: the embedded-Linux controller: the acados solver of a ``linux-aarch64``
  bundle (:mod:`rlmpc.codegen.bundle`) behind the same control loop, cross-compiled with
  ``aarch64-linux-gnu-gcc`` against the aarch64 acados libraries; serial on a termios port
  (``--serial /dev/ttyS0 --baud 115200``), run here under ``qemu-aarch64`` on a pty;
  ``ACTION.cost`` in microseconds.

The board names: :mod:`rlmpc.codegen.boards`.

The INFO constants (firmware version, hashes, dimensions, board) are generated from the
bundle's ``manifest.json`` into ``bundle_info.h`` in the build folder.  :func:`start_emulator`
starts a build (QEMU with the UART on a TCP socket, or the host program on a pty) and gives
the pyserial URL; :meth:`Emulator.stop` sends EXIT, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import time
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.codegen import protocol_header
from rlmpc.codegen import toolchain as linux_toolchain
from rlmpc.codegen.boards import ALL_BOARDS
from rlmpc.codegen.manifest import file_sha256, theta_hash
from rlmpc.codegen.mcu.generate_rti import STARTUP_ITERATIONS
from rlmpc.codegen.mcu.qemu_bench import LINK_FLAGS, QEMU
from rlmpc.codegen.mcu.toolchain import ARM_GCC, CORTEX_M4F, WARNINGS, ToolchainError
from rlmpc.codegen.program_check import check_program
from rlmpc.codegen.protocol_spec import BOARD_LEN, HASH_LEN, Capability, CostUnit
from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder

BUILD_OUTPUTS = ("build.json", "controller.elf", "controller.bin", "controller.hex", "controller.map", "controller",
                 "size.txt", "gen", "obj", "lib", "flash.log")  # what build_firmware writes in its folder
REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = REPO_ROOT / "firmware_templates"
APP_DIR = TEMPLATES / "app"
CORTEX_M_DIR = TEMPLATES / "boards" / "cortex-m"  # shared start-up and exit of the Cortex-M boards
POSIX_DIR = TEMPLATES / "boards" / "posix"  # serial on a file descriptor: host and linux-aarch64
ACADOS_SOLVER_HEADER = "rlmpc_acados_solver.h"  # the solver API over an acados bundle (app/)
MCU_TARGET = "cortex-m4"
FW_VERSION = (0, 1, 0)
DAQP_ITERLIMIT = -4  # DAQP_EXIT_ITERLIMIT
SOLVER_HEADERS = ("rlmpc_solver.h", "rlmpc_rti.h")
ACADOS_ITERLIMIT = -2  # ACADOS_MAXITER, negated by rlmpc_acados_solver.c
QEMU_MACHINE_FLAGS = ("-M", "mps2-an386", "-display", "none", "-monitor", "none", "-icount", "shift=0",
                      "-semihosting-config", "enable=on,target=native")
_QEMU_COMMON = QEMU_MACHINE_FLAGS[2:]
# QEMU flags of each emulated board; the UART is the machine's first -serial
QEMU_MACHINES = {
    "mps2-an386": QEMU_MACHINE_FLAGS,  # CMSDK UART0
    "stm32f405": ("-M", "netduinoplus2", *_QEMU_COMMON),  # USART1
}


@dataclass(frozen=True)
class Board:
    """How to build for a board: compiler, flags, board sources and the unit of ``ACTION.cost``."""

    name: str
    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    sources: tuple[Path, ...]
    cost_unit: CostUnit
    cost_divisor: int  # board_cycles() units per cost unit
    bundle_targets: tuple[str, ...]  # the bundle targets whose solver runs on this board
    directory: Path


def _board(name: str) -> Board:
    bdir = TEMPLATES / "boards" / name
    posix = (POSIX_DIR / "board.c", POSIX_DIR / "main.c")
    if name == "host":
        return Board(name, "gcc", ("-O2",), ("-lm",), posix, CostUnit.MICROSECONDS, 1000,
                     (MCU_TARGET, "linux-x86_64"), POSIX_DIR)
    if name == "linux-aarch64":  # board_cycles(): CLOCK_MONOTONIC ns (emulated wall time under qemu)
        return Board(name, linux_toolchain.CROSS_CC, ("-O2",), ("-lm",), posix, CostUnit.MICROSECONDS,
                     1000, ("linux-aarch64",), POSIX_DIR)
    if name in ("mps2-an386", "stm32f405"):
        # mps2-an386: instructions (25 MHz SysTick, -icount shift=0); stm32f405: 168 MHz core cycles
        unit = CostUnit.INSTRUCTIONS if name == "mps2-an386" else CostUnit.CYCLES
        return Board(name, ARM_GCC, tuple(CORTEX_M4F),
                     (*LINK_FLAGS, "-T", str(bdir / "link.ld"), "-lm"),
                     (bdir / "startup.c", bdir / "board.c", CORTEX_M_DIR / "cortex_m.c",
                      APP_DIR / "main.c"),
                     unit, 1, (MCU_TARGET,), bdir)
    raise ValueError(f"board: expected one of {list(ALL_BOARDS)}, got {name!r}")




# ---- the bundle ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Bundle:
    """A solver bundle folder and what the firmware needs from it.

    Bare-metal bundles (target ``cortex-m4``, :mod:`rlmpc.codegen.mcu_export`) bring the
    malloc-free solver and DAQP; acados bundles (``linux-*``, :mod:`rlmpc.codegen.bundle`) bring the
    acados solver, linked against the acados libraries of their target.
    """

    directory: Path
    manifest: dict[str, Any]
    manifest_hash: str  # SHA-256 hex of manifest.json's bytes

    modified: tuple[str, ...] = ()  # files that differ from the manifest's sha256 (with allow_modified)

    @classmethod
    def load(cls, directory: str | Path, *, allow_modified: bool = False) -> Bundle:
        """Read ``manifest.json`` and verify the bundle against it: every listed file's sha256 and
        θ's hash recomputed from its values.  A difference is refused (one-line ValueError) unless
        ``allow_modified``: then it is recorded in :attr:`modified`."""
        d = Path(directory)
        try:
            raw = (d / "manifest.json").read_bytes()
            doc = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{d / 'manifest.json'}: not a readable bundle manifest ({exc})") from None
        targets = (MCU_TARGET, *linux_toolchain.TARGETS)
        if not isinstance(doc, dict) or doc.get("target") not in targets:
            got = doc.get("target") if isinstance(doc, dict) else None
            raise ValueError(f"{d / 'manifest.json'}: target: expected one of {list(targets)}, got {got!r}")
        modified = verify_bundle(d, doc)
        if modified and not allow_modified:
            raise ValueError(f"{d / 'manifest.json'}: {modified[0]}"
                             + (f" (and {len(modified) - 1} more differences)" if len(modified) > 1 else "")
                             + "; re-export the bundle, or pass --allow-modified to build it as it is")
        return cls(d, doc, hashlib.sha256(raw).hexdigest(), tuple(modified))

    @property
    def firmware_manifest_hash(self) -> str:
        """The manifest hash the firmware reports: the manifest's own, or for a modified bundle a
        hash over the manifest and the modified files (so INFO does not claim the exported bundle)."""
        if not self.modified:
            return self.manifest_hash
        h = hashlib.sha256(bytes.fromhex(self.manifest_hash))
        for entry in self.manifest.get("files", []):
            f = self.directory / str(entry.get("path", ""))
            h.update(f.read_bytes() if f.is_file() else b"")
        return h.hexdigest()

    @property
    def target(self) -> str:
        return str(self.manifest["target"])

    @property
    def is_acados(self) -> bool:
        """An acados bundle (embedded Linux) rather than a bare-metal solver."""
        return self.target != MCU_TARGET

    @property
    def precision_bytes(self) -> int:
        return 4 if self.manifest["precision"] == "float32" else 8

    @property
    def solver_header(self) -> str:
        if self.is_acados:
            return ACADOS_SOLVER_HEADER
        return next(h for h in SOLVER_HEADERS if (self.directory / h).is_file())

    @property
    def has_plan(self) -> bool:
        """The solver offers ``rlmpc_get_plan`` (the fallback uses the previous plan)."""
        if self.is_acados:
            return True
        return "rlmpc_get_plan(" in (self.directory / self.solver_header).read_text()

    @property
    def is_rti(self) -> bool:
        """A real-time iteration solver (one Gauss-Newton step per control step)."""
        return not self.is_acados and self.solver_header == "rlmpc_rti.h"

    @property
    def iteration_limit_status(self) -> int:
        """The solver status that means 'iteration limit reached'."""
        return ACADOS_ITERLIMIT if self.is_acados else DAQP_ITERLIMIT

    @property
    def sources(self) -> list[Path]:
        if self.is_acados:  # the bundle's C files but its test program, and the adapter
            names = [s for s in self.manifest["build"]["sources"] if not s.endswith("rlmpc_test_main.c")]
            return [self.directory / s for s in names] + [APP_DIR / "rlmpc_acados_solver.c"]
        daqp = sorted((self.directory / "daqp" / "src").glob("*.c"))
        return sorted(self.directory.glob("rlmpc_*.c")) + daqp

    @property
    def include_dirs(self) -> list[Path]:
        if self.is_acados:
            return [self.directory / d for d in self.manifest["build"]["include_dirs"]]
        return [self.directory, self.directory / "daqp" / "include"]

    @property
    def cflags(self) -> list[str]:
        single = self.precision_bytes == 4
        return ["-DDAQP_SINGLE_PRECISION", "-fsingle-precision-constant"] if single else []

    def input_bounds(self) -> tuple[list[float], list[float]]:
        """The input bounds from the manifest (±inf where unbounded)."""
        bounds = self.manifest.get("input_bounds")
        if bounds is None:
            raise ValueError(f"{self.directory / 'manifest.json'}: input_bounds: missing "
                             "(re-export the bundle with this toolkit)")
        return [float(v) for v in bounds["lb"]], [float(v) for v in bounds["ub"]]

    def test_vectors(self) -> list[tuple[list[float], list[float]]]:
        """The reference test vectors (state, u0 of the workstation solver at the same θ)."""
        name = self.manifest.get("test_vectors", {}).get("json")
        if not name:
            raise ValueError(f"{self.directory / 'manifest.json'}: test_vectors: missing "
                             "(re-export the bundle with this toolkit)")
        doc = json.loads((self.directory / name).read_text())
        return [([float(v) for v in t["x0"]], [float(v) for v in t["u0"]]) for t in doc["vectors"]]


def verify_bundle(directory: Path, doc: dict[str, Any]) -> list[str]:
    """The differences between a bundle folder and its manifest: files whose sha256 differs or
    that are missing, and a θ whose hash is not that of its values (empty: as exported)."""
    problems: list[str] = []
    files = doc.get("files")
    if not isinstance(files, list) or not files:
        return ["files: missing (the list of the bundle's files with their sha256)"]
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or "sha256" not in entry:
            problems.append(f"files: expected entries {{path, sha256}}, got {entry!r:.60}")
            continue
        f = directory / entry["path"]
        if not f.is_file():
            problems.append(f"files: {entry['path']} is missing from the bundle")
        elif file_sha256(f) != entry["sha256"]:
            problems.append(f"files: {entry['path']} was modified (its sha256 differs from the manifest's)")
    theta = doc.get("theta")
    try:
        flat = [float(v) for v in theta["flat"]]  # type: ignore[index]
        same = theta_hash(flat) == theta["hash"]  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return [*problems, "theta: expected {flat: [numbers], hash}"]
    if not same:
        problems.append("theta: its values do not give its hash (θ was edited in the manifest)")
    source_theta = _generated_theta_hash(directory)
    if source_theta is not None:
        values = hashlib.sha256(np.ascontiguousarray(flat, dtype="<f8").tobytes()).hexdigest()
        if not values.startswith(source_theta):
            problems.append("theta: the manifest's θ values are not those the solver sources were generated "
                            f"from (theta sha256 {source_theta} in rlmpc_solver.h)")
    return problems


def _generated_theta_hash(directory: Path) -> str | None:
    """The θ hash the bare-metal generator wrote into ``rlmpc_solver.h`` (None if there is none)."""
    header = directory / "rlmpc_solver.h"
    if not header.is_file():
        return None
    match = re.search(r"theta sha256 ([0-9a-f]{8,64})", header.read_text(encoding="utf-8", errors="replace"))
    return match.group(1) if match else None


def _c_bytes(data: bytes) -> str:
    return "{" + ", ".join(f"0x{b:02x}u" for b in data) + "}"


def _c_real(value: float, precision_bytes: int) -> str:
    return f"{value!r}f" if precision_bytes == 4 else repr(value)


def safe_action(bundle: Bundle, override: Sequence[float] | None = None) -> list[float]:
    """The input sent when the solver gives none: ``override`` or zero, clipped to the input bounds."""
    nu = int(bundle.manifest["dims"]["nu"])
    u = [0.0] * nu if override is None else [float(v) for v in override]
    if len(u) != nu:
        raise ValueError(f"safe action: expected {nu} values, got {len(u)}")
    lb, ub = bundle.input_bounds()
    return [min(max(v, lo), hi) for v, lo, hi in zip(u, lb, ub, strict=True)]


def bundle_info_header(bundle: Bundle, board: Board, safe_u: Sequence[float], budget: int = 0,
                       sqp_iterations: int = 1) -> str:
    """``bundle_info.h``: the INFO constants, the solver header, the safe action, the fallback."""
    m = bundle.manifest
    dims = m["dims"]
    if not board.name.isascii() or len(board.name) > BOARD_LEN:
        raise ValueError(f"board name {board.name!r}: at most {BOARD_LEN} ASCII characters")
    caps = int(Capability.EXIT)
    lines = [
        "/* Generated by rlmpc.codegen.firmware from the bundle's manifest.json; do not edit. */",
        "#ifndef RLMPC_BUNDLE_INFO_H", "#define RLMPC_BUNDLE_INFO_H",
        f'#define RLMPC_BUNDLE_SOLVER_HEADER "{bundle.solver_header}"',
        f"#define RLMPC_FW_MAJOR {FW_VERSION[0]}u", f"#define RLMPC_FW_MINOR {FW_VERSION[1]}u",
        f"#define RLMPC_FW_PATCH {FW_VERSION[2]}u",
        f"#define RLMPC_BUNDLE_NP {int(dims['np'])}u",
        f"#define RLMPC_BUNDLE_CAPABILITIES {caps}u",
        f"#define RLMPC_BUNDLE_ITERLIMIT ({bundle.iteration_limit_status})",
        f"#define RLMPC_BUNDLE_BUDGET {int(budget)}u /* ACTION.cost above this sets OVERRUN; 0: none */",
        f"#define RLMPC_BUNDLE_HAS_PLAN {int(bundle.has_plan)} /* fallback: the previous plan, shifted */",
        f"#define RLMPC_BUNDLE_STARTUP_ITERATIONS {STARTUP_ITERATIONS if bundle.is_rti else 1}",
        f"#define RLMPC_BUNDLE_SQP_ITERATIONS {int(sqp_iterations) if bundle.is_rti else 1}",
        f"#define RLMPC_BOARD_COST_UNIT {int(board.cost_unit)}u",
        f"#define RLMPC_BOARD_COST_DIVISOR {int(board.cost_divisor)}u",
        f"#define RLMPC_BUNDLE_BOARD {_c_bytes(board.name.encode().ljust(BOARD_LEN, bytes(1)))}",
        f"#define RLMPC_BUNDLE_MANIFEST_HASH {_c_bytes(bytes.fromhex(bundle.firmware_manifest_hash)[:HASH_LEN])}",
        f"#define RLMPC_BUNDLE_PROBLEM_HASH {_c_bytes(bytes.fromhex(m['problem']['hash'])[:HASH_LEN])}",
        f"#define RLMPC_BUNDLE_THETA_HASH {_c_bytes(bytes.fromhex(theta_hash(m['theta']['flat']))[:HASH_LEN])}",
        "#define RLMPC_BUNDLE_SAFE_ACTION {"
        + ", ".join(_c_real(v, bundle.precision_bytes) for v in safe_u) + "}",
        "#endif /* RLMPC_BUNDLE_INFO_H */", "",
    ]
    return "\n".join(lines)


# ---- building -----------------------------------------------------------------------------

def _run(cmd: Sequence[str]) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"{' '.join(cmd[:4])} … failed (exit {proc.returncode}):\n"
                             f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout


def _check_compatible(bundle: Bundle, board: Board) -> None:
    if bundle.target not in board.bundle_targets:
        fit = [name for name in ALL_BOARDS if bundle.target in _board(name).bundle_targets]
        raise ValueError(f"{bundle.directory / 'manifest.json'}: target {bundle.target!r} does not run on "
                         f"board {board.name!r}; boards for this bundle: {fit}")


def _runtime_libraries(tools: linux_toolchain.Toolchain, out: Path) -> list[str]:
    """Where an acados controller finds libacados at run time; its linker flags.

    linux-aarch64: the target's libraries are copied to ``out/lib`` and found through
    ``RPATH=$ORIGIN/lib``, so the build folder is what goes onto the controller.  x86-64 (a
    workstation build): the installed wheel's folder.
    """
    if tools.target != "linux-aarch64":
        return [f"-Wl,-rpath,{tools.library_dir}"]
    lib = out / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for so in sorted(tools.library_dir.glob("*.so*")):
        shutil.copy2(so, lib / so.name)
    return ["-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/lib"]  # RPATH also serves libacados' own needs


def build_firmware(bundle_dir: str | Path, board: str, out_dir: str | Path, *,
                   safe: Sequence[float] | None = None, budget: int = 0, sqp_iterations: int = 1,
                   allow_modified: bool = False) -> Path:
    """Compile the controller firmware of a bundle for ``board`` into ``out_dir``; its program.

    ``safe``: the fallback input when there is no plan (default zero, clipped to the bounds);
    ``budget``: ACTION.cost above it sets OVERRUN and sends the fallback (0: no budget);
    ``sqp_iterations``: Gauss-Newton iterations per step of a real-time-iteration solver.
    ``allow_modified``: build a bundle whose files differ from its manifest's sha256 (otherwise
    refused); the differences go to ``out_dir/build.json`` and the firmware's manifest hash.

    ``host``, ``linux-aarch64``: ``out_dir/controller`` (native / aarch64 Linux executable)
    with ``size.txt``; for linux-aarch64 also ``out_dir/lib`` (the acados libraries it loads:
    copy the folder onto the controller).  ``mps2-an386``, ``stm32f405``: ``out_dir/controller.elf`` with
    ``controller.bin``, ``controller.hex`` (Intel HEX), ``controller.map`` and ``size.txt``
    (``arm-none-eabi-size``).
    """
    b = _board(board)
    bundle = Bundle.load(bundle_dir, allow_modified=allow_modified)
    _check_compatible(bundle, b)
    if not 1 <= sqp_iterations <= 100:
        raise ValueError(f"sqp_iterations: expected 1 to 100, got {sqp_iterations}")
    if sqp_iterations != 1 and not bundle.is_rti:
        kind = "a condensed QP" if bundle.target == "cortex-m4" else "an acados solver"
        raise ValueError(f"sqp_iterations: only for a real-time iteration (a nonlinear cortex-m4 "
                         f"bundle); {bundle.directory} holds {kind}")
    out = claim_output_folder(out_dir, "build", BUILD_OUTPUTS)
    (out / "build.json").write_text(json.dumps({
        "bundle": str(bundle.directory), "board": board, "budget": int(budget), "sqp_iterations": sqp_iterations,
        "manifest_sha256": bundle.manifest_hash, "firmware_manifest_hash": bundle.firmware_manifest_hash,
        "allow_modified": allow_modified, "modified": list(bundle.modified)}, indent=2) + "\n")
    gen_dir = out / "gen"
    obj_dir = out / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    protocol_header.generate(gen_dir)
    (gen_dir / "bundle_info.h").write_text(
        bundle_info_header(bundle, b, safe_action(bundle, safe), budget, sqp_iterations))
    incs = [f"-I{d}" for d in (gen_dir, APP_DIR, b.directory, b.directory.parent, CORTEX_M_DIR,
                               protocol_header.C_SOURCES_DIR,
                               *bundle.include_dirs)]
    defs = [f"-DRLMPC_PROTO_PRECISION={bundle.precision_bytes}", *bundle.cflags]
    link_extra: list[str] = []
    acados_sources: set[Path] = set()
    if bundle.is_acados:
        tools = linux_toolchain.toolchain(bundle.target)
        incs += list(tools.include_flags)
        link_extra = [*tools.link_flags, *_runtime_libraries(tools, out)]
        acados_sources = {p for p in bundle.sources if p.parent != APP_DIR}
    sources = [APP_DIR / "controller.c", *protocol_header.c_sources(), *b.sources, *bundle.sources]
    objects = []
    for i, src in enumerate(sources):
        obj = obj_dir / f"{i:02d}_{src.stem}.o"
        # acados-generated code is compiled as acados' own Makefile does (no -Werror -pedantic)
        flags = list(linux_toolchain.CFLAGS) if src in acados_sources else [*b.cflags, *WARNINGS]
        _run([b.cc, *flags, *defs, *incs, "-c", str(src), "-o", str(obj)])
        objects.append(str(obj))
    if board in ("host", "linux-aarch64"):
        exe = out / "controller"
        _run([b.cc, *b.cflags, *objects, "-o", str(exe), *link_extra, *b.ldflags])
        size = "aarch64-linux-gnu-size" if board == "linux-aarch64" else "size"
        (out / "size.txt").write_text(_run([size, str(exe)]))
        complete_output_folder(out, "build")
        return exe
    elf = out / "controller.elf"
    _run([b.cc, *b.cflags, *objects, "-o", str(elf), f"-Wl,-Map={out / 'controller.map'}", *b.ldflags])
    _run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(out / "controller.bin")])
    _run(["arm-none-eabi-objcopy", "-O", "ihex", str(elf), str(out / "controller.hex")])
    (out / "size.txt").write_text(_run(["arm-none-eabi-size", str(elf)]))
    complete_output_folder(out, "build")
    return elf


# ---- running ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    """A running firmware: its process and the pyserial URL of its serial port.

    Unpacks as ``(process, serial_url)``.  Use as a context manager or call :meth:`stop`.
    """

    process: subprocess.Popen[bytes]
    serial_url: str
    board: str
    _fds: list[int] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.process, self.serial_url))

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, port: Any = None, timeout: float = 2.0) -> int:
        """EXIT over ``port`` (an open pyserial port, if given), then SIGTERM, then SIGKILL; the exit code."""
        from rlmpc.codegen.protocol import Exit, encode

        try:
            if port is not None and self.process.poll() is None:
                try:
                    port.write(encode(Exit(0), seq=0xFF))
                    port.flush()
                    self.process.wait(timeout=timeout)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()
        return int(self.process.returncode)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def start_emulator(elf: str | Path, board: str, timeout: float = 10.0) -> Emulator:
    """Start a build: QEMU with the UART on a TCP socket (``socket://127.0.0.1:P``), or the
    host / linux-aarch64 (under ``qemu-aarch64``) program on a pty (the slave's path).  A program
    that is not one for ``board`` is refused first (one-line ValueError)."""
    check_program(elf, board)
    if board in ("host", "linux-aarch64"):
        master, slave = pty.openpty()
        tty.setraw(slave)
        prefix: list[str] = []
        if board == "linux-aarch64":
            qemu = linux_toolchain.toolchain("linux-aarch64").run_prefix[0]
            prefix = [qemu, "-L", str(linux_toolchain.AARCH64_SYSROOT)]  # libacados: RPATH $ORIGIN/lib
        proc = subprocess.Popen([*prefix, str(elf), "--fd", str(master)], pass_fds=(master,),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(master)
        return Emulator(proc, os.ttyname(slave), board, [slave])  # the slave stays open: no EIO
    if board not in QEMU_MACHINES:
        raise ValueError(f"board: expected one of {list(ALL_BOARDS)}, got {board!r}")
    last = ""
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        cmd = [QEMU, *QEMU_MACHINES[board],
               "-chardev", f"socket,id=s0,host=127.0.0.1,port={port},server=on,wait=off,nodelay=on",
               "-serial", "chardev:s0", "-kernel", str(elf)]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            if _wait_listening(proc, port, timeout):
                return Emulator(proc, f"socket://127.0.0.1:{port}", board)
        except BaseException:
            Emulator(proc, "", board).stop(timeout=1.0)
            raise
        Emulator(proc, "", board).stop(timeout=1.0)
        last = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    raise RuntimeError(f"QEMU did not start listening: {last[-2000:]}")
