"""The firmware sub-commands of ``rlmpc``: ``build``, ``flash`` and ``bench-target``.

``rlmpc build BUNDLE --board B`` compiles the controller firmware (:mod:`rlmpc.codegen.firmware`).
``rlmpc flash BUNDLE_OR_PROGRAM --board B`` builds it first when given a bundle, then either
runs it on the emulated board (QEMU, or the host / ``qemu-aarch64`` program on a pty) and
prints the serial URL until Ctrl-C (SIGINT or SIGTERM, also when started in the background), or
with ``--probe`` programs a real board through a debug probe (:mod:`rlmpc.codegen.flash_probe`).
``flash`` builds outside the bundle (:func:`flash_build_dir`, or ``--build-dir``), so that the
bundle folder stays as exported and ``rlmpc export`` can replace it.
``rlmpc bench-target`` is :mod:`rlmpc.hil.bench_target`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from pathlib import Path

from rlmpc.codegen.boards import ALL_BOARDS as FIRMWARE_BOARDS
from rlmpc.toolkit.cache import cache_root


def default_build_dir(bundle: str | Path, board: str) -> Path:
    """``BUNDLE/build/firmware-BOARD``: the bundle's own build output (never the current folder)."""
    return Path(bundle) / "build" / f"firmware-{board}"


def flash_build_dir(bundle: str | Path, board: str) -> Path:
    """``CACHE/flash/NAME-HASH/firmware-BOARD``: where ``rlmpc flash BUNDLE`` builds, outside the bundle.

    ``HASH`` is of the bundle's absolute path, so each bundle folder has its own build (replaced by
    the next flash of that bundle); the cache is :func:`rlmpc.toolkit.cache.cache_root`.
    """
    folder = Path(bundle).resolve()
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return cache_root() / "flash" / f"{folder.name}-{key}" / f"firmware-{board}"


def _build(args: argparse.Namespace) -> int:
    from rlmpc.codegen.firmware import build_firmware
    from rlmpc.codegen.mcu.toolchain import ToolchainError

    if args.budget is not None and args.budget <= 0:
        raise ValueError(f"--budget: expected a positive per-step cost (leave the option out for no budget), "
                         f"got {args.budget}")
    out = Path(args.out) if args.out else default_build_dir(args.bundle, args.board)
    try:
        program = build_firmware(args.bundle, args.board, out, budget=args.budget or 0,
                                 sqp_iterations=args.sqp_iterations, allow_modified=args.allow_modified)
    except ToolchainError as exc:
        print(f"rlmpc: error: {exc}", file=sys.stderr)
        return 1
    modified = json.loads((out / "build.json").read_text())["modified"]
    if modified:
        print(f"warning: built with --allow-modified, the bundle differs from its manifest: {'; '.join(modified)}"
              " (recorded in build.json and in the manifest hash the firmware reports)")
    print(f"firmware ({args.board}): {program}")
    size = out / "size.txt"
    if size.is_file():
        print(size.read_text().rstrip())
    return 0


def _program_of(args: argparse.Namespace) -> Path:
    """The firmware to flash: the given program, or the build of the given bundle."""
    from rlmpc.codegen.firmware import build_firmware

    path = Path(args.firmware)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise ValueError(f"{path}: expected a bundle folder (with manifest.json) or a firmware program")
        out = Path(args.build_dir) if args.build_dir else flash_build_dir(path, args.board)
        print(f"building the firmware for {args.board} → {out}", flush=True)
        return build_firmware(path, args.board, out, allow_modified=args.allow_modified)
    if args.build_dir:
        raise ValueError(f"--build-dir: only with a bundle folder; {path} is a firmware program")
    if not path.is_file():
        raise ValueError(f"{path}: no such bundle folder or firmware program")
    return path


def _stop(*_: object) -> None:
    raise KeyboardInterrupt  # so that a build or the emulator is stopped on the way out


def _interruptible() -> None:
    """SIGINT and SIGTERM stop ``rlmpc flash``.  A shell without job control starts a background
    command (``rlmpc flash … &``) with SIGINT ignored, and Python then keeps it ignored: set it here."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def _flash_real(args: argparse.Namespace, program: Path) -> int:
    from rlmpc.codegen.flash_probe import FlashError, FlashFailure, flash_real

    probe = None if args.probe == "auto" else args.probe
    try:
        result = flash_real(program, args.board, probe, serial=args.probe_serial,
                            interface=args.probe_interface, extra_args=args.probe_arg or (),
                            timeout=args.probe_timeout)
    except FlashError as exc:
        print(f"rlmpc flash: error: {exc}", file=sys.stderr)
        # 2: nothing was tried (no route for the board, not its image, no tool); 1: the flashing failed
        setup = (FlashFailure.UNSUPPORTED, FlashFailure.BAD_IMAGE, FlashFailure.NOT_INSTALLED)
        return 2 if exc.kind in setup else 1
    print(result.summary())
    return 0


def _flash(args: argparse.Namespace) -> int:
    """Real board with ``--probe``; otherwise the emulator, serving until Ctrl-C."""
    from rlmpc.codegen.firmware import start_emulator
    from rlmpc.codegen.mcu.toolchain import ToolchainError

    _interruptible()
    if not args.probe:
        given = [o for o, v in (("--probe-serial", args.probe_serial),
                                ("--probe-interface", args.probe_interface),
                                ("--probe-arg", args.probe_arg)) if v]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --probe (a real board)")
    try:
        program = _program_of(args)
    except ToolchainError as exc:
        print(f"rlmpc flash: error: {exc}", file=sys.stderr)
        return 1
    if args.probe:
        return _flash_real(args, program)
    with start_emulator(program, args.board) as emu:
        print(f"serial: {emu.serial_url}  (pid {emu.process.pid}; Ctrl-C stops it)", flush=True)
        try:
            while emu.process.poll() is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return int(emu.process.returncode or 0)


def add_firmware_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``build`` and ``flash``."""
    from rlmpc.codegen.flash_probe import DEFAULT_TIMEOUT, PROBES

    build = sub.add_parser("build", help="build the controller firmware of a bundle for a board")
    build.add_argument("bundle", help="folder written by rlmpc export (cortex-m4 for the MCU boards and "
                       "host, linux-aarch64 for linux-aarch64, linux-x86_64 for host)")
    build.add_argument("--board", required=True, choices=list(FIRMWARE_BOARDS))
    build.add_argument("--out", default=None, help="build folder (default: BUNDLE/build/firmware-BOARD)")
    build.add_argument("--budget", type=int, default=None,
                       help="per-step cost (> 0, in the board's cost unit) above which the firmware flags "
                       "OVERRUN and sends the fallback (default: no budget)")
    build.add_argument("--allow-modified", action="store_true",
                       help="build a bundle whose files differ from its manifest's sha256 (recorded in "
                       "build.json and the manifest hash the firmware reports); otherwise refused")
    build.add_argument("--sqp-iterations", type=int, default=1,
                       help="nonlinear (RTI) solvers: Gauss-Newton iterations per step (default 1)")
    build.set_defaults(func=_build)

    flash = sub.add_parser("flash", help="run a firmware on its emulated board, or program a real "
                           "board through a debug probe (--probe)")
    flash.add_argument("firmware", help="a bundle folder (built first) or a firmware build "
                       "(controller.elf, or the host / linux-aarch64 controller)")
    flash.add_argument("--board", required=True, choices=list(FIRMWARE_BOARDS))
    flash.add_argument("--allow-modified", action="store_true",
                       help="with a bundle: build it although its files differ from its manifest (recorded)")
    flash.add_argument("--build-dir", default=None,
                       help="with a bundle: build folder (default: CACHE/flash/BUNDLE-HASH/firmware-BOARD, "
                       "outside the bundle; CACHE is ~/.cache/rlmpc or $RLMPC_CACHE_DIR)")
    flash.add_argument("--probe", choices=["auto", *PROBES], default=None,
                       help="program a real board with this tool (auto: the first installed of "
                       f"{', '.join(PROBES)}); without it the emulated board runs")
    flash.add_argument("--probe-serial", default=None, help="serial number of the probe to use")
    flash.add_argument("--probe-interface", default=None,
                       help="openocd adapter (stlink, cmsis-dap, … or a .cfg path; default stlink)")
    flash.add_argument("--probe-timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds before the tool is killed (default {DEFAULT_TIMEOUT:.0f})")
    flash.add_argument("--probe-arg", action="append", default=None,
                       help="extra argument for the tool (repeatable)")
    flash.set_defaults(func=_flash)


__all__ = ["FIRMWARE_BOARDS", "add_firmware_commands", "default_build_dir", "flash_build_dir"]
