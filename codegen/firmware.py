"""Build the controller firmware of a bare-metal solver bundle for a board, and run it.

``build_firmware(bundle, board, out)`` compiles :file:`firmware_templates/app/controller.c`
(the protocol's main loop), the protocol library, the bundle's solver (from
:func:`codegen.mcu_export.export_mcu`) and the board support into one program:

* ``host``: a native executable (gcc) serving the protocol on a file descriptor or a path
  (software in the loop); ``ACTION.cost`` in microseconds (``clock_gettime``);
* ``mps2-an386``: an ELF and a raw BIN for QEMU's Cortex-M4F (arm-none-eabi-gcc, the flags of
  :mod:`codegen.mcu.qemu_bench`) with a size report; ``ACTION.cost`` in instructions
  (``-icount shift=0``).
* ``stm32f405``: the same for an STM32F405 (1 MB flash at 0x08000000, 128 KB SRAM), run in
  QEMU ``-M netduinoplus2`` (USART1 on the first ``-serial``); ``ACTION.cost`` in core clock
  cycles (SysTick at 168 MHz; under ``-icount shift=0`` one cycle ≈ 5.95 instructions).
  Not in :data:`BOARDS` (the boards every firmware test runs on) yet: see :data:`ALL_BOARDS`.

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
import signal
import socket
import subprocess
import time
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegen.mcu.qemu_bench import LINK_FLAGS, QEMU
from codegen.mcu.toolchain import ARM_GCC, CORTEX_M4F, WARNINGS, ToolchainError
from hil import codegen_protocol
from hil.protocol_spec import BOARD_LEN, HASH_LEN, Capability, CostUnit

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = REPO_ROOT / "firmware_templates"
APP_DIR = TEMPLATES / "app"
CORTEX_M_DIR = TEMPLATES / "boards" / "cortex-m"  # shared start-up and exit of the Cortex-M boards
FW_VERSION = (0, 1, 0)
DAQP_ITERLIMIT = -4  # DAQP_EXIT_ITERLIMIT
SOLVER_HEADERS = ("rlmpc_solver.h", "rlmpc_rti.h")
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

    @property
    def directory(self) -> Path:
        return TEMPLATES / "boards" / self.name


def _board(name: str) -> Board:
    bdir = TEMPLATES / "boards" / name
    if name == "host":
        return Board(name, "gcc", ("-O2",), ("-lm",), (bdir / "board.c", bdir / "main_host.c"),
                     CostUnit.MICROSECONDS, 1000)
    if name == "mps2-an386":
        return Board(name, ARM_GCC, tuple(CORTEX_M4F),
                     (*LINK_FLAGS, "-T", str(bdir / "link.ld"), "-lm"),
                     (bdir / "startup.c", bdir / "board.c", CORTEX_M_DIR / "cortex_m.c",
                      APP_DIR / "main.c"),
                     CostUnit.INSTRUCTIONS, 1)
    if name == "stm32f405":  # QEMU netduinoplus2; board_cycles(): 168 MHz core clock ticks
        return Board(name, ARM_GCC, tuple(CORTEX_M4F),
                     (*LINK_FLAGS, "-T", str(bdir / "link.ld"), "-lm"),
                     (bdir / "startup.c", bdir / "board.c", CORTEX_M_DIR / "cortex_m.c",
                      APP_DIR / "main.c"),
                     CostUnit.CYCLES, 1)
    raise ValueError(f"board: expected one of {list(ALL_BOARDS)}, got {name!r}")


BOARDS = ("host", "mps2-an386")
ALL_BOARDS = (*BOARDS, "stm32f405")


# ---- the bundle ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Bundle:
    """A bare-metal solver bundle folder and what the firmware needs from it."""

    directory: Path
    manifest: dict[str, Any]
    manifest_hash: str  # SHA-256 hex of manifest.json's bytes

    @classmethod
    def load(cls, directory: str | Path) -> Bundle:
        d = Path(directory)
        raw = (d / "manifest.json").read_bytes()
        doc = json.loads(raw)
        if doc.get("target") != "cortex-m4":
            raise ValueError(f"{d}: not a bare-metal solver bundle (target {doc.get('target')!r})")
        return cls(d, doc, hashlib.sha256(raw).hexdigest())

    @property
    def precision_bytes(self) -> int:
        return 4 if self.manifest["precision"] == "float32" else 8

    @property
    def solver_header(self) -> str:
        return next(h for h in SOLVER_HEADERS if (self.directory / h).is_file())

    @property
    def sources(self) -> list[Path]:
        daqp = sorted((self.directory / "daqp" / "src").glob("*.c"))
        return sorted(self.directory.glob("rlmpc_*.c")) + daqp

    @property
    def include_dirs(self) -> list[Path]:
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


def bundle_info_header(bundle: Bundle, board: Board, safe_u: Sequence[float], budget: int = 0) -> str:
    """``bundle_info.h``: the INFO constants, the solver header and the safe action."""
    m = bundle.manifest
    dims = m["dims"]
    if not board.name.isascii() or len(board.name) > BOARD_LEN:
        raise ValueError(f"board name {board.name!r}: at most {BOARD_LEN} ASCII characters")
    caps = int(Capability.EXIT)
    lines = [
        "/* Generated by codegen.firmware from the bundle's manifest.json; do not edit. */",
        "#ifndef RLMPC_BUNDLE_INFO_H", "#define RLMPC_BUNDLE_INFO_H",
        f'#define RLMPC_BUNDLE_SOLVER_HEADER "{bundle.solver_header}"',
        f"#define RLMPC_FW_MAJOR {FW_VERSION[0]}u", f"#define RLMPC_FW_MINOR {FW_VERSION[1]}u",
        f"#define RLMPC_FW_PATCH {FW_VERSION[2]}u",
        f"#define RLMPC_BUNDLE_NP {int(dims['np'])}u",
        f"#define RLMPC_BUNDLE_CAPABILITIES {caps}u",
        f"#define RLMPC_BUNDLE_ITERLIMIT ({DAQP_ITERLIMIT})",
        f"#define RLMPC_BUNDLE_BUDGET {int(budget)}u /* ACTION.cost above this sets OVERRUN; 0: none */",
        f"#define RLMPC_BOARD_COST_UNIT {int(board.cost_unit)}u",
        f"#define RLMPC_BOARD_COST_DIVISOR {int(board.cost_divisor)}u",
        f"#define RLMPC_BUNDLE_BOARD {_c_bytes(board.name.encode().ljust(BOARD_LEN, bytes(1)))}",
        f"#define RLMPC_BUNDLE_MANIFEST_HASH {_c_bytes(bytes.fromhex(bundle.manifest_hash)[:HASH_LEN])}",
        f"#define RLMPC_BUNDLE_PROBLEM_HASH {_c_bytes(bytes.fromhex(m['problem']['hash'])[:HASH_LEN])}",
        f"#define RLMPC_BUNDLE_THETA_HASH {_c_bytes(bytes.fromhex(m['theta']['hash'])[:HASH_LEN])}",
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


def build_firmware(bundle_dir: str | Path, board: str, out_dir: str | Path, *,
                   safe: Sequence[float] | None = None, budget: int = 0) -> Path:
    """Compile the controller firmware of a bundle for ``board`` into ``out_dir``; its program.

    ``host``: ``out_dir/controller`` (native).  ``mps2-an386``, ``stm32f405``:
    ``out_dir/controller.elf`` with ``controller.bin``, ``controller.map`` and ``size.txt``
    (``arm-none-eabi-size``).
    """
    b = _board(board)
    bundle = Bundle.load(bundle_dir)
    out = Path(out_dir)
    gen_dir = out / "gen"
    obj_dir = out / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    codegen_protocol.generate(gen_dir)
    (gen_dir / "bundle_info.h").write_text(bundle_info_header(bundle, b, safe_action(bundle, safe), budget))
    incs = [f"-I{d}" for d in (gen_dir, APP_DIR, b.directory, b.directory.parent, CORTEX_M_DIR,
                               codegen_protocol.C_SOURCES_DIR,
                               *bundle.include_dirs)]
    defs = [f"-DRLMPC_PROTO_PRECISION={bundle.precision_bytes}", *bundle.cflags]
    sources = [APP_DIR / "controller.c", *codegen_protocol.c_sources(), *b.sources, *bundle.sources]
    objects = []
    for i, src in enumerate(sources):
        obj = obj_dir / f"{i:02d}_{src.stem}.o"
        _run([b.cc, *b.cflags, *WARNINGS, *defs, *incs, "-c", str(src), "-o", str(obj)])
        objects.append(str(obj))
    if board == "host":
        exe = out / "controller"
        _run([b.cc, *b.cflags, *objects, "-o", str(exe), *b.ldflags])
        return exe
    elf = out / "controller.elf"
    _run([b.cc, *b.cflags, *objects, "-o", str(elf), f"-Wl,-Map={out / 'controller.map'}", *b.ldflags])
    _run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(out / "controller.bin")])
    (out / "size.txt").write_text(_run(["arm-none-eabi-size", str(elf)]))
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
        from hil.protocol import Exit, encode

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
    host program on a pty (the slave's path)."""
    if board == "host":
        master, slave = pty.openpty()
        tty.setraw(slave)
        proc = subprocess.Popen([str(elf), "--fd", str(master)], pass_fds=(master,),
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
