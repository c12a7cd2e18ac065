"""Flashing a real board through a debug probe (:mod:`rlmpc.codegen.flash_probe`).

Only the external process is faked: small ``openocd`` / ``pyocd`` / ``st-flash`` shell scripts
on a ``PATH`` of their own record their argv and print what the real tools print (OpenOCD
0.12.0, stlink-tools 1.7.0 and pyOCD 0.46 without a probe; the rest from their sources) with
their exit codes.  The firmware is a real tiny ELF linked with the ``stm32f405`` and
``mps2-an386`` linker scripts (arm-none-eabi-gcc is installed by the set-up: its absence is a
failure, not a skip).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlmpc.codegen.flash_probe import (
    PROBES,
    FlashError,
    FlashFailure,
    available_probes,
    flash_command,
    flash_real,
    flash_target,
    select_probe,
)

REPO = Path(__file__).resolve().parents[1]
BOARDS_DIR = REPO / "firmware_templates" / "boards"
GCC = shutil.which("arm-none-eabi-gcc") or "arm-none-eabi-gcc"
OBJCOPY = shutil.which("arm-none-eabi-objcopy") or "arm-none-eabi-objcopy"
STACK_TOP = 0x2002_0000  # _estack of the stm32f405 link.ld: first word of the image

TINY_FIRMWARE = r"""
#include <stdint.h>
extern uint32_t _estack[];
volatile uint32_t counter = 42u; /* .data: a second segment, loaded from flash */
void Reset_Handler(void) { for (;;) { counter++; } }
__attribute__((section(".isr_vector"), used))
const uintptr_t vectors[2] = {(uintptr_t)_estack, (uintptr_t)Reset_Handler};
"""

OPENOCD_OK = """\
Open On-Chip Debugger 0.12.0
Info : STLINK V2J29S7 (API v2) VID:PID 0483:3748
Info : Target voltage: 3.237569
Info : [stm32f4x.cpu] Cortex-M4 r0p1 processor detected
[stm32f4x.cpu] halted due to debug-request, current mode: Thread
** Programming Started **
Info : device id = 0x10076413
Info : flash size = 1024 KiB
** Programming Finished **
** Verify Started **
** Verified OK **
** Resetting Target **
shutdown command invoked
"""
OPENOCD_NO_STLINK = """\
Open On-Chip Debugger 0.12.0
Info : auto-selecting first available session transport "hla_swd".
Info : clock speed 2000 kHz
Error: open failed
in procedure 'program'
** OpenOCD init failed **
shutdown command invoked
"""
OPENOCD_NO_CMSIS_DAP = """\
Open On-Chip Debugger 0.12.0
Info : auto-selecting first available session transport "swd".
Error: unable to find a matching CMSIS-DAP device
** OpenOCD init failed **
shutdown command invoked
"""
OPENOCD_USB_ACCESS = """\
Open On-Chip Debugger 0.12.0
Error: libusb_open() failed with LIBUSB_ERROR_ACCESS
Error: open failed
"""
OPENOCD_UNPOWERED = """\
Info : STLINK V2J29S7 (API v2) VID:PID 0483:3748
Info : Target voltage: 0.005236
Warn : target voltage may be too low for reliable debugging
Error: init mode failed (unable to connect to the target)
** OpenOCD init failed **
"""
OPENOCD_VERIFY_FAILED = """\
** Programming Started **
** Programming Finished **
** Verify Started **
Error: checksum mismatch - attempting binary compare
diff 0 address 0x08000000. Was 0xff instead of 0x00
** Verify Failed **
shutdown command invoked
"""
OPENOCD_PROGRAM_FAILED = """\
** Programming Started **
Error: error writing to flash at address 0x08000000 at offset 0x00000000
** Programming Failed **
shutdown command invoked
"""
ST_FLASH_OK = """\
st-flash 1.7.0
2026-11-22T06:47:04 INFO common.c: F4xx: 192 KiB SRAM, 1024 KiB flash in at least 16 KiB pages.
file controller.bin md5 checksum: 3e0b5c2f, stlink checksum: 0x001b3a6e
2026-11-22T06:47:05 INFO common.c: Starting verification of write complete
2026-11-22T06:47:05 INFO common.c: Flash written and verified! jolly good!
"""
ST_FLASH_NONE = """\
st-flash 1.7.0
2026-11-22T06:47:04 WARN usb.c: Couldn't find any ST-Link devices
"""
ST_FLASH_NO_TARGET = """\
st-flash 1.7.0
2026-11-22T06:47:04 WARN common.c: unknown chip id! 0
Failed to connect to target
"""
ST_FLASH_VERIFY = """\
st-flash 1.7.0
2026-11-22T06:47:05 INFO common.c: Starting verification of write complete
2026-11-22T06:47:05 ERROR common.c: Verification of flash failed at offset: 0
"""
PYOCD_OK = """\
0000421 I Loading /fw/controller.elf [load_cmd]
[==================================================] 100%
0001822 I Erased 16384 bytes (1 sector), programmed 16384 bytes (32 pages) [loader]
"""
PYOCD_NONE = "No connected debug probes\n0000344 E No target device available [load_cmd]\n"
PYOCD_NO_UID = ("No connected debug probe matches unique ID '0669FF'\n"
                "0000344 E No target device available [load_cmd]\n")
PYOCD_NO_ACK = ("0000712 C SWD/JTAG communication failure (No ACK); check USB cable, reduce "
                "debugger clock [__main__]\n")
PYOCD_NO_PACK = ("0000288 C Target type stm32f405rgtx not recognized. Use 'pyocd list --targets' "
                 "to see currently available target types. See "
                 "<https://pyocd.io/docs/target_support.html> for how to install additional target "
                 "support. [__main__]\n")


def _link(out: Path, board: str, work: Path) -> Path:
    src = work / "tiny.c"
    src.write_text(TINY_FIRMWARE)
    subprocess.run([GCC, "-mcpu=cortex-m4", "-mthumb", "-O1", "-nostdlib", "-nostartfiles",
                    "-T", str(BOARDS_DIR / board / "link.ld"), str(src), "-o", str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny firmware linked for the stm32f405 (ELF + BIN, as build_firmware writes) and mps2-an386."""
    work = tmp_path_factory.mktemp("images")
    stm32 = _link(work / "controller.elf", "stm32f405", work)
    subprocess.run([OBJCOPY, "-O", "binary", str(stm32), str(work / "controller.bin")], check=True)
    mps2 = _link(work / "mps2.elf", "mps2-an386", work)
    return {"elf": stm32, "bin": work / "controller.bin", "mps2": mps2}


@dataclass
class Fakes:
    """The fake tools' folder (the only folder on PATH) and what they were called with."""

    bin: Path
    argv_dir: Path

    def add(self, name: str, output: str = "", code: int = 0, sleep: float = 0.0) -> None:
        out = self.argv_dir / f"{name}.out"
        out.write_text(output)
        script = self.bin / name
        body = [
            "#!/bin/sh",
            f"printf '%s\\n' \"$@\" > '{self.argv_dir / name}.argv'",
            f"/bin/cat '{out}' >&2",
        ]
        if sleep:
            body.append(f"/bin/sleep {sleep}")  # a child: the group must be killed, not only sh
        body.append(f"exit {code}")
        script.write_text("\n".join(body) + "\n")
        script.chmod(0o755)

    def argv(self, name: str) -> list[str]:
        return (self.argv_dir / f"{name}.argv").read_text().splitlines()

    def ran(self, name: str) -> bool:
        return (self.argv_dir / f"{name}.argv").exists()


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    (tmp_path / "bin").mkdir()
    (tmp_path / "argv").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # hermetic: real tools here stay unseen
    return Fakes(tmp_path / "bin", tmp_path / "argv")


@pytest.fixture
def fw(tmp_path: Path, images: dict[str, Path]) -> Path:
    """A build folder with controller.elf and a controller.bin made after it."""
    out = tmp_path / "fw"
    out.mkdir()
    elf = out / "controller.elf"
    shutil.copyfile(images["elf"], elf)
    shutil.copyfile(images["bin"], out / "controller.bin")
    now = time.time()
    os.utime(elf, (now - 10, now - 10))
    return elf


# ---- command lines and success ------------------------------------------------------------

def test_openocd_programs_verifies_and_resets_the_elf(fakes: Fakes, fw: Path) -> None:
    fakes.add("openocd", OPENOCD_OK)
    result = flash_real(fw, "stm32f405", "openocd")
    assert fakes.argv("openocd") == ["-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg",
                                     "-c", f"program {{{fw}}} verify reset exit"]
    assert result.tool == "openocd" and result.image == fw and result.verified
    assert result.command[0] == "openocd"
    assert "Verified OK" in result.output
    log = fw.parent / "flash.log"
    assert result.log == log
    text = log.read_text()
    assert "$ openocd -f interface/stlink.cfg" in text and "** Verified OK **" in text
    assert text.rstrip().endswith("s") and "# exit 0 after" in text
    assert "verified, reset" in result.summary()


def test_openocd_serial_adapter_and_extra_args(fakes: Fakes, fw: Path) -> None:
    fakes.add("openocd", OPENOCD_OK)
    flash_real(fw, "stm32f405", "openocd", serial="0669FF", interface="cmsis-dap",
               extra_args=["-c", "adapter speed 1000"])
    assert fakes.argv("openocd") == ["-f", "interface/cmsis-dap.cfg", "-c", "adapter serial 0669FF",
                                     "-f", "target/stm32f4x.cfg", "-c", "adapter speed 1000",
                                     "-c", f"program {{{fw}}} verify reset exit"]


def test_pyocd_does_not_wait_for_a_probe(fakes: Fakes, fw: Path) -> None:
    fakes.add("pyocd", PYOCD_OK)
    result = flash_real(fw, "stm32f405", "pyocd", serial="0669FF")
    assert fakes.argv("pyocd") == ["flash", "--no-wait", "-t", "stm32f405rgtx", "-u", "0669FF", str(fw)]
    assert not result.verified and "not read back" in result.summary()


def test_st_flash_writes_the_bin_at_the_flash_address(fakes: Fakes, fw: Path) -> None:
    fakes.add("st-flash", ST_FLASH_OK)
    bin_before = (fw.parent / "controller.bin").stat().st_mtime
    result = flash_real(fw, "stm32f405", "st-flash", serial="0669FF")
    bin_path = fw.parent / "controller.bin"
    assert fakes.argv("st-flash") == ["--reset", "--serial", "0669FF", "write", str(bin_path),
                                      "0x08000000"]
    assert result.image == bin_path and result.verified
    assert bin_path.stat().st_mtime == bin_before  # the build's BIN, not remade


def test_st_flash_remakes_a_missing_or_stale_bin(fakes: Fakes, fw: Path, tmp_path: Path) -> None:
    (tmp_path / "bin" / "arm-none-eabi-objcopy").symlink_to(OBJCOPY)
    fakes.add("st-flash", ST_FLASH_OK)
    bin_path = fw.parent / "controller.bin"
    bin_path.write_bytes(b"stale")
    os.utime(bin_path, (0, 0))  # older than the ELF
    flash_real(fw, "stm32f405", "st-flash")
    data = bin_path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == STACK_TOP  # vector table at 0x08000000
    bin_path.unlink()
    flash_real(fw, "stm32f405", "st-flash")
    assert bin_path.read_bytes() == data


def test_preference_order_and_explicit_choice(fakes: Fakes, fw: Path) -> None:
    assert PROBES == ("openocd", "pyocd", "st-flash")
    fakes.add("st-flash", ST_FLASH_OK)
    fakes.add("pyocd", PYOCD_OK)
    assert available_probes() == ["pyocd", "st-flash"]
    assert flash_real(fw, "stm32f405").tool == "pyocd"
    fakes.add("openocd", OPENOCD_OK)
    assert select_probe().name == "openocd"
    assert flash_real(fw, "stm32f405", "st-flash").tool == "st-flash"


def test_custom_log_path(fakes: Fakes, fw: Path, tmp_path: Path) -> None:
    fakes.add("openocd", OPENOCD_OK)
    log = tmp_path / "logs" / "probe.log"
    log.parent.mkdir()
    assert flash_real(fw, "stm32f405", "openocd", log=log).log == log
    assert "Verified OK" in log.read_text()
    assert not (fw.parent / "flash.log").exists()


# ---- failures -----------------------------------------------------------------------------

@pytest.mark.parametrize(("tool", "output", "code", "kind", "words"), [
    ("openocd", OPENOCD_NO_STLINK, 1, FlashFailure.NO_PROBE,
     "no debug probe answered (openocd, interface/stlink.cfg)"),
    ("openocd", OPENOCD_NO_CMSIS_DAP, 1, FlashFailure.NO_PROBE, "no debug probe answered"),
    ("openocd", OPENOCD_USB_ACCESS, 1, FlashFailure.PROBE_ACCESS, "udev rules"),
    ("openocd", OPENOCD_UNPOWERED, 1, FlashFailure.NO_TARGET, "the STM32F405 did not"),
    ("openocd", OPENOCD_VERIFY_FAILED, 1, FlashFailure.VERIFY, "verification failed"),
    ("openocd", OPENOCD_PROGRAM_FAILED, 1, FlashFailure.PROGRAM,
     "Error: error writing to flash at address 0x08000000"),
    ("st-flash", ST_FLASH_NONE, 255, FlashFailure.NO_PROBE, "no debug probe answered (st-flash)"),
    ("st-flash", ST_FLASH_NO_TARGET, 255, FlashFailure.NO_TARGET, "check the board's power"),
    ("st-flash", ST_FLASH_VERIFY, 255, FlashFailure.VERIFY, "verification failed"),
    ("pyocd", PYOCD_NONE, 1, FlashFailure.NO_PROBE, "no debug probe answered (pyocd)"),
    ("pyocd", PYOCD_NO_ACK, 1, FlashFailure.NO_TARGET, "SWD wires"),
    ("pyocd", PYOCD_NO_PACK, 1, FlashFailure.TARGET_SUPPORT, "pyocd pack install stm32f405rg"),
    ("openocd", "Info : something\nError: a new kind of trouble\n", 3, FlashFailure.FAILED,
     "openocd failed: Error: a new kind of trouble"),
])
def test_failures_give_one_line_and_keep_the_log(fakes: Fakes, fw: Path, tool: str, output: str,
                                                 code: int, kind: FlashFailure, words: str) -> None:
    fakes.add(tool, output, code)
    with pytest.raises(FlashError) as info:
        flash_real(fw, "stm32f405", tool)
    err = info.value
    msg = str(err)
    assert err.kind is kind
    assert words in msg
    assert "\n" not in msg
    log = fw.parent / "flash.log"
    assert err.log == log and msg.endswith(f"log: {log}")
    text = log.read_text()
    assert output.splitlines()[-1] in text and f"# exit {code} after" in text


def test_no_probe_with_that_serial(fakes: Fakes, fw: Path) -> None:
    fakes.add("pyocd", PYOCD_NO_UID, 1)
    with pytest.raises(FlashError, match="no debug probe with serial 0669FF answered") as info:
        flash_real(fw, "stm32f405", "pyocd", serial="0669FF")
    assert info.value.kind is FlashFailure.NO_PROBE


@pytest.mark.parametrize(("probe", "words"), [
    ("openocd", "openocd not found on PATH: install the Debian package openocd"),
    ("st-flash", "st-flash not found on PATH: install the Debian package stlink-tools"),
    ("pyocd", "pyocd not found on PATH: install it from PyPI (pip install pyocd)"),
    (None, "no flashing tool found on PATH (tried openocd, pyocd, st-flash)"),
])
def test_missing_tool(fakes: Fakes, fw: Path, probe: str | None, words: str) -> None:
    with pytest.raises(FlashError) as info:
        flash_real(fw, "stm32f405", probe)
    assert info.value.kind is FlashFailure.NOT_INSTALLED
    assert words in str(info.value)
    assert info.value.log is None and not (fw.parent / "flash.log").exists()


def test_timeout_kills_the_tool_and_its_children(fakes: Fakes, fw: Path) -> None:
    fakes.add("openocd", "Info : clock speed 2000 kHz\n", 0, sleep=30)
    t0 = time.monotonic()
    with pytest.raises(FlashError, match=r"openocd did not finish within 0.5 s") as info:
        flash_real(fw, "stm32f405", "openocd", timeout=0.5)
    assert time.monotonic() - t0 < 5.0
    assert info.value.kind is FlashFailure.TIMEOUT
    text = (fw.parent / "flash.log").read_text()
    assert "clock speed 2000 kHz" in text and "# timed out after 0.5 s" in text


# ---- boards and images that are not flashed -----------------------------------------------

def test_mps2_and_host_are_not_flashed_through_a_probe(fakes: Fakes, images: dict[str, Path]) -> None:
    fakes.add("openocd", OPENOCD_OK)
    with pytest.raises(FlashError, match="USB mass storage") as info:
        flash_real(images["mps2"], "mps2-an386")
    assert info.value.kind is FlashFailure.UNSUPPORTED
    with pytest.raises(FlashError, match="host program is not flashed"):
        flash_real(images["mps2"], "host", "openocd")
    with pytest.raises(ValueError, match="board"):
        flash_target("stm32f407")
    assert not fakes.ran("openocd")


def test_images_not_linked_for_the_flash_are_refused(fakes: Fakes, images: dict[str, Path],
                                                     tmp_path: Path) -> None:
    fakes.add("openocd", OPENOCD_OK)
    with pytest.raises(FlashError, match=r"not linked for the stm32f405's flash \(loads 0x00000000") as info:
        flash_real(images["mps2"], "stm32f405", "openocd")
    assert info.value.kind is FlashFailure.BAD_IMAGE
    host_program = tmp_path / "controller"
    host_program.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(57))  # 64-bit: a host build
    with pytest.raises(FlashError, match="not a 32-bit ARM ELF"):
        flash_real(host_program, "stm32f405", "openocd")
    with pytest.raises(FlashError, match="cannot read the firmware"):
        flash_real(tmp_path / "missing.elf", "stm32f405", "openocd")
    assert not fakes.ran("openocd")


def test_bad_arguments(fw: Path) -> None:
    target = flash_target("stm32f405")
    with pytest.raises(ValueError, match="probe"):
        select_probe("jlink")
    with pytest.raises(ValueError, match="only openocd"):
        flash_command("st-flash", fw, target, interface="cmsis-dap")
    assert flash_command("openocd", fw, target, interface="board/my.cfg")[2] == "board/my.cfg"
