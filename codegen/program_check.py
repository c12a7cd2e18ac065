"""Is a firmware program one that runs on a board?  Read from its ELF header before it is started.

A program for the wrong board would fault in the emulator (a lockup, with a register dump) or,
on a real board, be written to the wrong place.  Checked: that it is an ELF file, for the board's
processor, and (bare metal) linked for the board's flash, as the board's ``link.ld`` places it.
"""

from __future__ import annotations

import platform
import re
import struct
from pathlib import Path

from rlmpc.codegen.boards import ALL_BOARDS

BOARDS_DIR = Path(__file__).resolve().parent.parent / "firmware_templates" / "boards"
EM_ARM, EM_X86_64, EM_AARCH64 = 40, 62, 183
MACHINE_NAMES = {EM_ARM: "32-bit ARM (Cortex-M)", EM_X86_64: "x86-64", EM_AARCH64: "aarch64"}
PT_LOAD = 1
FLASH_REGION = re.compile(r"FLASH\s*\([^)]*\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,"
                          r"\s*LENGTH\s*=\s*(\d+)([KM]?)")


def _host_machine() -> int:
    return {"x86_64": EM_X86_64, "amd64": EM_X86_64, "aarch64": EM_AARCH64,
            "arm64": EM_AARCH64}.get(platform.machine().lower(), EM_X86_64)


def board_flash(board: str) -> tuple[int, int] | None:
    """Origin and length of a bare-metal board's FLASH region (from its link.ld), else None."""
    script = BOARDS_DIR / board / "link.ld"
    if not script.is_file():
        return None
    m = FLASH_REGION.search(script.read_text())
    if m is None:
        return None
    return int(m.group(1), 0), int(m.group(2)) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(3)]


def _elf(path: Path) -> tuple[int, list[int]]:
    """(e_machine, physical addresses of the PT_LOAD segments) of an ELF file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path}: not a firmware program (not an ELF file)")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    machine = struct.unpack_from(order + "H", data, 18)[0]
    if wide:
        phoff, = struct.unpack_from(order + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(order + "I", data, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 42)
    loads = []
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, = struct.unpack_from(order + "I", data, off)
        if wide:  # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz
            paddr, filesz = struct.unpack_from(order + "QQ", data, off + 24)
        else:  # Elf32_Phdr: type, offset, vaddr, paddr, filesz
            paddr, filesz = struct.unpack_from(order + "II", data, off + 12)
        if p_type == PT_LOAD and filesz > 0:
            loads.append(paddr)
    return machine, loads


def check_program(program: str | Path, board: str) -> Path:
    """The program if it runs on ``board``; else a one-line ValueError saying why not."""
    path = Path(program)
    if board not in ALL_BOARDS:
        raise ValueError(f"board: expected one of {list(ALL_BOARDS)}, got {board!r}")
    if path.is_dir():
        name = "controller" if board in ("host", "linux-aarch64") else "controller.elf"
        raise ValueError(f"{path}: is a folder; expected the firmware file (e.g. {path / name})")
    if not path.is_file():
        raise ValueError(f"{path}: no such firmware program")
    try:
        machine, loads = _elf(path)
    except (OSError, struct.error) as exc:
        raise ValueError(f"{path}: not a readable firmware program ({exc})") from None
    expected = {"host": _host_machine(), "linux-aarch64": EM_AARCH64}.get(board, EM_ARM)
    if machine != expected:
        raise ValueError(f"{path}: a program for {MACHINE_NAMES.get(machine, f'machine {machine}')}, "
                         f"not for {board} ({MACHINE_NAMES[expected]}); build it with "
                         f"`rlmpc build BUNDLE --board {board}`")
    flash = board_flash(board)
    if flash is not None and loads:
        origin, length = flash
        outside = [a for a in loads if not origin <= a < origin + length]
        if len(outside) == len(loads):
            raise ValueError(f"{path}: linked for flash at {min(loads):#010x}, not for {board}'s "
                             f"({origin:#010x}); build it with `rlmpc build BUNDLE --board {board}`")
    return path
