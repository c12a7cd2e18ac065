"""Flash a controller firmware build onto a real board through a debug probe.

:func:`flash_real` programs the ``controller.elf`` (or its ``controller.bin``) that
:func:`rlmpc.codegen.firmware.build_firmware` writes, with the first of these tools found on ``PATH``
(or the one asked for):

* ``openocd`` (Debian ``openocd``): ``openocd -f interface/stlink.cfg -f target/stm32f4x.cfg
  -c "program {controller.elf} verify reset exit"``; any OpenOCD adapter through ``interface``
  (``stlink``, ``cmsis-dap``, ``jlink``, … or a ``.cfg`` path); serial: ``adapter serial``.
* ``pyocd`` (``pip install pyocd``): ``pyocd flash --no-wait -t stm32f405rgtx controller.elf``.
  pyOCD has no built-in STM32F405: its CMSIS pack is installed once with
  ``pyocd pack install stm32f405rg``.  It picks the probe (ST-Link, CMSIS-DAP, J-Link) itself;
  serial: ``-u``.  ``--no-wait``: without it pyOCD waits forever for a probe.
* ``st-flash`` (Debian ``stlink-tools``, ST-Link only): ``st-flash --reset write controller.bin
  0x08000000``; it verifies what it wrote.  Serial: ``--serial``.

The tool runs with a timeout in its own process group (killed whole on timeout); its output is
kept in ``flash.log`` next to the firmware.  A failure raises :class:`FlashError` with a one-line
message and a :class:`FlashFailure` kind recognised from the tool's output: tool not installed, no
probe answered, probe not accessible (USB permissions), target not responding, target support
missing (pyOCD pack), verification failed, programming failed, timeout.

Boards: ``stm32f405`` (1 MB flash at 0x08000000).  ``mps2-an386`` is not flashed through a
probe: a real MPS2+ board loads its images from its USB mass storage (the board's
``images.txt``), and the firmware is linked for the FPGA image's code memory at 0x00000000,
not a flash a probe tool could program; ``host`` is a native program.  Both raise
:class:`FlashError` (``UNSUPPORTED``).
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROBES = ("openocd", "pyocd", "st-flash")  # preference order when none is chosen
DEFAULT_TIMEOUT = 120.0  # s; erasing and writing the F405's first sectors takes a few seconds
LOG_NAME = "flash.log"
OBJCOPY = "arm-none-eabi-objcopy"


class FlashFailure(enum.Enum):
    """Why flashing failed."""

    UNSUPPORTED = "unsupported"  # board without a probe route (mps2-an386, host)
    BAD_IMAGE = "bad-image"  # not an ARM ELF, or not linked for the board's flash
    NOT_INSTALLED = "not-installed"
    NO_PROBE = "no-probe"
    PROBE_ACCESS = "probe-access"
    NO_TARGET = "no-target"
    TARGET_SUPPORT = "target-support"
    VERIFY = "verify"
    PROGRAM = "program"
    TIMEOUT = "timeout"
    FAILED = "failed"  # non-zero exit without a recognised message


class FlashError(RuntimeError):
    """Flashing failed: a one-line message, its :class:`FlashFailure` and the log (if a tool ran)."""

    def __init__(self, message: str, kind: FlashFailure, log: Path | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.log = log


@dataclass(frozen=True)
class FlashTarget:
    """A board that a probe can program: its flash and how each tool names it."""

    board: str
    chip: str
    flash_address: int
    flash_size: int
    openocd_target: str  # OpenOCD target script
    openocd_interface: str  # default adapter (OpenOCD interface script)
    pyocd_target: str  # pyOCD target type (CMSIS pack part number)
    pyocd_pack: str  # what `pyocd pack install` takes


TARGETS = {
    "stm32f405": FlashTarget("stm32f405", "STM32F405", 0x0800_0000, 1024 * 1024,
                             "target/stm32f4x.cfg", "interface/stlink.cfg",
                             "stm32f405rgtx", "stm32f405rg"),
}
_UNSUPPORTED = {
    "mps2-an386": "a real MPS2+ board (AN386) is not programmed through a debug probe: copy "
                  "controller.bin to the board's USB mass storage and list it in its images.txt; "
                  "`rlmpc flash --board mps2-an386` (no --probe) runs it in QEMU",
    "host": "the host program is not flashed: `rlmpc flash --board host` runs it",
}
FLASH_BOARDS = tuple(TARGETS)


@dataclass(frozen=True)
class ProbeTool:
    """A flashing program: its executable, where it comes from and what it flashes."""

    name: str
    install: str  # how to install it, for the message when it is missing
    image: str  # "elf" or "bin"
    verifies: bool  # reads the flash back after writing


TOOLS = {
    "openocd": ProbeTool("openocd", "install the Debian package openocd (apt-get install openocd)",
                         "elf", True),
    "pyocd": ProbeTool("pyocd", "install it from PyPI (pip install pyocd)", "elf", False),
    "st-flash": ProbeTool("st-flash", "install the Debian package stlink-tools "
                                      "(apt-get install stlink-tools)", "bin", True),
}

# What the tools print, lower case, checked in this order (the first match classifies).
_PATTERNS: tuple[tuple[FlashFailure, tuple[str, ...]], ...] = (
    (FlashFailure.PROBE_ACCESS, ("libusb_error_access", "access denied (insufficient permissions)")),
    (FlashFailure.NO_PROBE, (
        # openocd
        "error: open failed", "st-link open failed", "unable to find a matching cmsis-dap device",
        "no j-link device found", "unable to open ftdi device", "libusb_error", "no device found",
        # st-flash
        "couldn't find any st-link", "found 0 stlink programmers",
        # pyocd
        "no connected debug probes", "no connected debug probe matches", "no available debug probes",
    )),
    (FlashFailure.TARGET_SUPPORT, ("not recognized. use 'pyocd list --targets'",)),
    (FlashFailure.NO_TARGET, (
        # openocd
        "unable to connect to the target", "cannot read idr", "failed to connect",
        "target voltage may be too low", "examination failed", "target not examined",
        # st-flash
        "failed to enter swd mode", "failed to connect to target", "unknown chip id",
        "can not connect to target",
        # pyocd
        "swd/jtag communication failure", "no ack", "get idcode error", "no target device available",
    )),
    (FlashFailure.VERIFY, ("verify failed", "verification of flash failed", "checksum mismatch",
                           "write verification error")),
    (FlashFailure.PROGRAM, ("programming failed", "flash programming error", "failed to erase",
                            "no flash bank found", "flasherasefailure", "flashprogramfailure")),
)


@dataclass(frozen=True)
class FlashResult:
    """A successful flashing run."""

    board: str
    tool: str
    command: tuple[str, ...]
    image: Path  # the file the tool wrote (ELF or BIN)
    log: Path
    seconds: float
    output: str
    verified: bool  # the tool read the flash back

    def summary(self) -> str:
        """One line for the user."""
        how = "verified, reset" if self.verified else "reset; not read back"
        return (f"flashed {self.image.name} to the {self.board} with {self.tool} ({how}) "
                f"in {self.seconds:.1f} s; log: {self.log}")


# ---- choosing the board and the tool ------------------------------------------------------

def flash_target(board: str) -> FlashTarget:
    """The flash target of ``board``; :class:`FlashError` (``UNSUPPORTED``) if it has none.

    Raises
    ------
    ValueError
        ``board`` is no board at all.
    """
    if board in TARGETS:
        return TARGETS[board]
    if board in _UNSUPPORTED:
        raise FlashError(f"{board}: {_UNSUPPORTED[board]}", FlashFailure.UNSUPPORTED)
    raise ValueError(f"board: expected one of {[*TARGETS, *_UNSUPPORTED]}, got {board!r}")


def available_probes() -> list[str]:
    """The flashing tools found on ``PATH``, in preference order."""
    return [name for name in PROBES if shutil.which(name) is not None]


def select_probe(probe: str | None = None) -> ProbeTool:
    """The tool ``probe`` if installed, else the first installed one of :data:`PROBES`.

    Raises
    ------
    FlashError
        ``NOT_INSTALLED``: the chosen tool (or every tool) is not on ``PATH``.
    ValueError
        ``probe`` is not one of :data:`PROBES`.
    """
    if probe is not None:
        if probe not in TOOLS:
            raise ValueError(f"probe: expected one of {list(PROBES)}, got {probe!r}")
        if shutil.which(probe) is None:
            raise FlashError(f"{probe} not found on PATH: {TOOLS[probe].install}",
                             FlashFailure.NOT_INSTALLED)
        return TOOLS[probe]
    found = available_probes()
    if not found:
        raise FlashError("no flashing tool found on PATH (tried " + ", ".join(PROBES) + "): install "
                         "one: Debian openocd, Debian stlink-tools (st-flash) or pip install pyocd",
                         FlashFailure.NOT_INSTALLED)
    return TOOLS[found[0]]


def _openocd_interface(interface: str | None, target: FlashTarget) -> str:
    if interface is None:
        return target.openocd_interface
    if interface.endswith(".cfg") or "/" in interface:
        return interface
    return f"interface/{interface}.cfg"


def flash_command(tool: str, image: Path, target: FlashTarget, *, serial: str | None = None,
                  interface: str | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that writes ``image`` (ELF for openocd/pyocd, BIN for st-flash).

    Parameters
    ----------
    tool
        One of :data:`PROBES`.
    serial
        Probe serial number (``adapter serial`` / ``-u`` / ``--serial``).
    interface
        OpenOCD adapter: a name under ``interface/`` (``stlink``, ``cmsis-dap``) or a ``.cfg``;
        openocd only.
    extra_args
        Given to the tool before the write command (openocd: e.g. ``-c "adapter speed 1000"``).
    """
    if interface is not None and tool != "openocd":
        raise ValueError(f"interface: only openocd takes an adapter script, not {tool}")
    if tool == "openocd":
        cmd = ["openocd", "-f", _openocd_interface(interface, target)]
        if serial:
            cmd += ["-c", f"adapter serial {serial}"]
        return [*cmd, "-f", target.openocd_target, *extra_args,
                "-c", f"program {{{image}}} verify reset exit"]
    if tool == "pyocd":
        cmd = ["pyocd", "flash", "--no-wait", "-t", target.pyocd_target]
        if serial:
            cmd += ["-u", serial]
        return [*cmd, *extra_args, str(image)]
    if tool == "st-flash":
        cmd = ["st-flash", "--reset"]
        if serial:
            cmd += ["--serial", serial]
        return [*cmd, *extra_args, "write", str(image), f"0x{target.flash_address:08x}"]
    raise ValueError(f"probe: expected one of {list(PROBES)}, got {tool!r}")


# ---- the image ----------------------------------------------------------------------------

_EM_ARM = 40
_PT_LOAD = 1


def check_elf(elf: Path, target: FlashTarget) -> None:
    """Check that ``elf`` is a 32-bit ARM ELF whose loaded bytes all lie in the board's flash.

    Raises
    ------
    FlashError
        ``BAD_IMAGE``, e.g. an ``mps2-an386`` build (linked at 0x00000000) or the host program.
    """
    try:
        data = elf.read_bytes()
    except OSError as exc:
        raise FlashError(f"cannot read the firmware {elf}: {exc.strerror}", FlashFailure.BAD_IMAGE) from exc
    rebuild = f"build it with `rlmpc build BUNDLE --board {target.board}`"
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1 \
            or struct.unpack_from("<H", data, 18)[0] != _EM_ARM:
        raise FlashError(f"{elf} is not a 32-bit ARM ELF: {rebuild}", FlashFailure.BAD_IMAGE)
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    end = target.flash_address + target.flash_size
    loaded = 0
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 32 > len(data):
            raise FlashError(f"{elf}: truncated ELF program headers", FlashFailure.BAD_IMAGE)
        p_type, _, _, p_paddr, p_filesz = struct.unpack_from("<5I", data, off)
        if p_type != _PT_LOAD or p_filesz == 0:
            continue
        loaded += p_filesz
        if not target.flash_address <= p_paddr <= p_paddr + p_filesz <= end:
            raise FlashError(f"{elf} is not linked for the {target.board}'s flash (loads "
                             f"0x{p_paddr:08x}-0x{p_paddr + p_filesz - 1:08x}, flash is "
                             f"0x{target.flash_address:08x}-0x{end - 1:08x}): {rebuild}",
                             FlashFailure.BAD_IMAGE)
    if loaded == 0:
        raise FlashError(f"{elf} loads nothing into flash: {rebuild}", FlashFailure.BAD_IMAGE)


def binary_image(elf: Path) -> Path:
    """The raw image next to ``elf`` (``controller.bin``), remade with objcopy if missing or stale."""
    bin_path = elf.with_suffix(".bin")
    if bin_path.is_file() and bin_path.stat().st_mtime >= elf.stat().st_mtime:
        return bin_path
    if shutil.which(OBJCOPY) is None:
        raise FlashError(f"{bin_path.name} is missing or older than {elf.name} and {OBJCOPY} is not "
                         "on PATH: install the Debian package binutils-arm-none-eabi",
                         FlashFailure.NOT_INSTALLED)
    proc = subprocess.run([OBJCOPY, "-O", "binary", str(elf), str(bin_path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise FlashError(f"{OBJCOPY} -O binary {elf.name} failed: {last}", FlashFailure.BAD_IMAGE)
    return bin_path


# ---- running the tool ---------------------------------------------------------------------

def _run(cmd: Sequence[str], timeout: float) -> tuple[int | None, str, float]:
    """Run ``cmd`` in its own process group; exit code (None on timeout), output, seconds."""
    t0 = time.monotonic()
    proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        # the whole group: a wrapper script's children would otherwise keep the pipe open
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    return code, out.decode("utf-8", errors="replace"), time.monotonic() - t0


def classify(output: str) -> FlashFailure:
    """The failure that a tool's output shows (``FAILED`` if none is recognised)."""
    low = output.lower()
    for kind, needles in _PATTERNS:
        if any(n in low for n in needles):
            return kind
    return FlashFailure.FAILED


def _last_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for words in (("error", " e ", " c "), ("fail",)):  # pyocd: "0000344 E …", "… C …"
        for ln in reversed(lines):
            if any(w in ln.lower() for w in words):
                return ln
    return lines[-1] if lines else "no output"


def _message(kind: FlashFailure, tool: str, target: FlashTarget, serial: str | None,
             interface: str, output: str) -> str:
    probe = f"{tool}, {interface}" if tool == "openocd" else tool
    if kind is FlashFailure.NO_PROBE:
        if serial:
            return (f"no debug probe with serial {serial} answered ({probe}): check the serial "
                    "(`st-info --probe`, `pyocd list`) and the USB cable")
        return (f"no debug probe answered ({probe}): connect the probe over USB and check its cable"
                + (" and the adapter (--probe-interface)" if tool == "openocd" else ""))
    if kind is FlashFailure.PROBE_ACCESS:
        return (f"the debug probe was found but cannot be opened ({probe}: USB permission denied): "
                "install the udev rules of the openocd/stlink-tools packages and re-plug it, or "
                "join the plugdev group")
    if kind is FlashFailure.NO_TARGET:
        return (f"the probe answered but the {target.chip} did not ({probe}): check the board's "
                "power and the SWD wires (SWDIO, SWCLK, GND, NRST)")
    if kind is FlashFailure.TARGET_SUPPORT:
        return (f"pyocd does not know the target {target.pyocd_target}: install its pack once with "
                f"`pyocd pack install {target.pyocd_pack}`, or use openocd or st-flash")
    if kind is FlashFailure.VERIFY:
        return (f"verification failed after writing the {target.chip}'s flash ({probe}): the "
                "flash may be write-protected (option bytes) or the wiring unreliable; retry at "
                "a lower SWD clock")
    if kind is FlashFailure.PROGRAM:
        return f"programming the {target.chip}'s flash failed ({probe}): {_last_error(output)}"
    return f"{tool} failed: {_last_error(output)}"


def _write_log(log: Path, cmd: Sequence[str], code: int | None, output: str, seconds: float,
               timeout: float) -> None:
    end = (f"# timed out after {timeout:g} s (killed)" if code is None
           else f"# exit {code} after {seconds:.1f} s")
    log.write_text(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} rlmpc flash\n$ "
                   + subprocess.list2cmdline(list(cmd)) + f"\n{output}"
                   + ("" if output.endswith("\n") or not output else "\n") + end + "\n")


def flash_real(elf: str | Path, board: str, probe: str | None = None, *, serial: str | None = None,
               interface: str | None = None, extra_args: Sequence[str] = (),
               timeout: float = DEFAULT_TIMEOUT, log: str | Path | None = None) -> FlashResult:
    """Write a firmware build to a real board through a debug probe, verify it and reset the board.

    Parameters
    ----------
    elf
        ``controller.elf`` of ``build_firmware(..., board, out)``; st-flash writes the
        ``controller.bin`` beside it (remade with objcopy if missing or older than the ELF).
    board
        One of :data:`FLASH_BOARDS` (``mps2-an386`` and ``host`` raise ``UNSUPPORTED``).
    probe
        ``openocd``, ``pyocd`` or ``st-flash``; ``None``: the first of :data:`PROBES` on ``PATH``.
    serial
        Serial number of the probe to use when several are connected.
    interface
        OpenOCD adapter script (``stlink`` default, ``cmsis-dap``, ``jlink``, or a ``.cfg``).
    extra_args
        More arguments for the tool, before its write command.
    timeout
        Seconds before the tool (and its process group) is killed.
    log
        Where to keep the tool's output; default ``flash.log`` next to ``elf``.

    Returns
    -------
    FlashResult
        The command, the log and the tool's output.

    Raises
    ------
    FlashError
        With a one-line message and its :class:`FlashFailure`.
    """
    target = flash_target(board)
    elf = Path(elf)
    tool = select_probe(probe)
    check_elf(elf, target)
    image = binary_image(elf) if tool.image == "bin" else elf
    cmd = flash_command(tool.name, image, target, serial=serial, interface=interface,
                        extra_args=extra_args)
    log_path = Path(log) if log is not None else elf.parent / LOG_NAME
    try:
        code, output, seconds = _run(cmd, timeout)
    except OSError as exc:  # vanished between which() and exec, or not executable
        raise FlashError(f"{tool.name} could not be started ({exc.strerror}): {tool.install}",
                         FlashFailure.NOT_INSTALLED) from exc
    _write_log(log_path, cmd, code, output, seconds, timeout)
    if code is None:
        raise FlashError(f"{tool.name} did not finish within {timeout:g} s and was killed (a probe "
                         f"or target that hangs; try again after re-plugging it); log: {log_path}",
                         FlashFailure.TIMEOUT, log_path)
    if code != 0:
        kind = classify(output)
        iface = _openocd_interface(interface, target)
        raise FlashError(_message(kind, tool.name, target, serial, iface, output)
                         + f"; log: {log_path}", kind, log_path)
    return FlashResult(board, tool.name, tuple(cmd), image, log_path, seconds, output, tool.verifies)
