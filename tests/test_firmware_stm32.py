"""The controller firmware of the LTI bundle on the ``stm32f405`` board, in QEMU ``netduinoplus2``.

arm-none-eabi-gcc and qemu-system-arm are installed by the set-up: their absence is a failure,
not a skip.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import serial
from processes import alive, connected, lti_bundle, processes_running

from rlmpc.codegen.boards import ALL_BOARDS, MCU_BOARDS
from rlmpc.codegen.firmware import (
    QEMU_MACHINES,
    TEMPLATES,
    Bundle,
    Emulator,
    build_firmware,
    start_emulator,
)
from rlmpc.codegen.firmware_link import FirmwareLink
from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.mcu.host_check import HostSolver
from rlmpc.codegen.mcu.qemu_bench import qemu_available
from rlmpc.codegen.mcu.toolchain import ARM_GCC, CORTEX_M4F, WARNINGS, build_host_harness
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.codegen.protocol import Ack, Action, Exit, Hello, Info, Ping, Pong, Reset, Step, encode, hash_prefix
from rlmpc.codegen.protocol_spec import CostUnit, MsgType, Precision, StatusFlag

BOARD = "stm32f405"
BOARD_DIR = TEMPLATES / "boards" / BOARD
N_STATES = 12
INSTRUCTIONS_PER_CYCLE = 1e9 / 168e6  # under -icount shift=0: 1 ns per instruction, 168 MHz SysTick


@dataclass(frozen=True)
class Build:
    bundle: Bundle
    elf: Path
    reference: Path  # host float32 line harness of the same solver
    states: np.ndarray  # float32-exact reference states


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    root = tmp_path_factory.mktemp("firmware_stm32")
    lti = lti_bundle(root, N_STATES)
    elf = build_firmware(lti.bundle.directory, BOARD, root / BOARD)
    yield Build(lti.bundle, elf, lti.reference, lti.states)
    assert processes_running(root) == [], "a QEMU process survived the tests"


@pytest.fixture
def device(build: Build) -> Iterator[tuple[Emulator, FirmwareLink]]:
    with connected(build.elf, BOARD) as (emu, link):
        yield emu, link


def test_board_registration() -> None:
    assert BOARD in ALL_BOARDS and BOARD in MCU_BOARDS
    flags = QEMU_MACHINES[BOARD]
    assert flags[:2] == ("-M", "netduinoplus2") and "shift=0" in flags
    assert "enable=on,target=native" in flags


def test_image_layout(build: Build) -> None:
    """Vector table at the start of flash (0x08000000), stack at the top of the 128 KB SRAM."""
    sections = subprocess.run(["arm-none-eabi-objdump", "-h", str(build.elf)], capture_output=True,
                              text=True, check=True).stdout
    vma = {parts[1]: int(parts[3], 16) for parts in (line.split() for line in sections.splitlines())
           if len(parts) >= 7 and parts[0].isdigit()}
    assert vma[".isr_vector"] == 0x08000000
    assert 0x08000000 < vma[".text"] < 0x08100000
    assert vma[".data"] == 0x20000000
    raw = (build.elf.parent / "controller.bin").read_bytes()
    assert int.from_bytes(raw[0:4], "little") == 0x20020000  # initial SP: end of SRAM
    reset = int.from_bytes(raw[4:8], "little")
    assert reset & 1 and 0x08000000 < reset < 0x08100000  # Thumb, in flash
    usart1 = int.from_bytes(raw[4 * (16 + 37):4 * (16 + 38)], "little")
    symbols = subprocess.run(["arm-none-eabi-nm", str(build.elf)], capture_output=True, text=True,
                             check=True).stdout
    handler = next(int(line.split()[0], 16) for line in symbols.splitlines()
                   if line.endswith(" USART1_IRQHandler"))
    assert usart1 == handler | 1
    size = (build.elf.parent / "size.txt").read_text().splitlines()[1].split()
    text, data, bss = (int(v) for v in size[:3])
    assert text + data < 64 * 1024 and data + bss + 32 * 1024 <= 128 * 1024
    # the Intel HEX image holds the same bytes as the BIN, at the flash address
    hex_lines = (build.elf.parent / "controller.hex").read_text().splitlines()
    assert hex_lines[0] == ":020000040800F2" and hex_lines[-1] == ":00000001FF"  # upper address 0x0800
    first = bytes.fromhex(hex_lines[1][9:-2])
    assert hex_lines[1][3:7] == "0000" and raw.startswith(first)
    for line in hex_lines:
        record = bytes.fromhex(line[1:])
        assert sum(record) % 256 == 0  # every record's checksum


def test_real_board_clock_tree_compiles(tmp_path: Path) -> None:
    """The HSE -> PLL -> 168 MHz set-up (for real boards only, unused in QEMU) builds warning-free."""
    for hse in (8_000_000, 25_000_000):
        subprocess.run([ARM_GCC, *CORTEX_M4F, *WARNINGS, f"-DRLMPC_STM32_HSE_HZ={hse}",
                        f"-I{BOARD_DIR.parent}", f"-I{BOARD_DIR.parent / 'cortex-m'}", "-c",
                        str(BOARD_DIR / "board.c"),
                        "-o", str(tmp_path / f"board_{hse}.o")], check=True)


def test_hello_answers_info_from_the_manifest(build: Build, device: tuple[Emulator, FirmwareLink]) -> None:
    _, link = device
    info = link.request(Hello())
    assert isinstance(info, Info)
    m = build.bundle.manifest
    assert info.theta_hash == hash_prefix(theta_hash(m["theta"]["flat"])) == hash_prefix(m["theta"]["hash"])
    assert info.problem_hash == hash_prefix(m["problem"]["hash"])
    assert (info.nx, info.nu, info.np) == (2, 1, 0)
    assert info.precision == Precision.F32 and info.board_name == BOARD
    assert info.cost_unit == CostUnit.CYCLES
    assert link.request(Ping(bytes(range(256)) * 2)) == Pong(bytes(range(256)) * 2)


def test_hello_after_a_frame_lost_its_head(device: tuple[Emulator, FirmwareLink]) -> None:
    """What QEMU's USART does to bytes sent before it is enabled: a frame's head is lost and only
    its tail arrives.  The repeated HELLO still gets INFO."""
    _, link = device
    frame = encode(Hello(), seq=200)
    for k in range(1, len(frame)):
        link.send_raw(frame[k:])
        assert isinstance(link.hello(attempts=10), Info)


def _run_states(link: FirmwareLink, states: np.ndarray) -> tuple[list[Action], list[float]]:
    assert link.request(Reset()) == Ack(MsgType.RESET)
    actions, seconds = [], []
    for i, x in enumerate(states):
        t0 = time.perf_counter()
        a = link.request(Step(i, x))
        seconds.append(time.perf_counter() - t0)
        assert isinstance(a, Action) and a.step == i
        actions.append(a)
    return actions, seconds


def test_steps_match_the_host_float32_solver(build: Build, device: tuple[Emulator, FirmwareLink]) -> None:
    _, link = device
    actions, seconds = _run_states(link, build.states)
    with HostSolver(build.reference) as ref:
        ref.reset()
        expected = np.array([ref.solve(x).u0 for x in build.states])
    u = np.array([a.u for a in actions])
    assert len(actions) >= 10
    np.testing.assert_array_equal(u, expected)  # bit-identical on the emulated STM32F405
    assert all(a.flags & StatusFlag.SOLVER_OK and a.sqp_iterations == 1 for a in actions)
    costs = np.array([a.cost for a in actions])
    assert np.all(costs > 0)
    # 168 MHz ticks of virtual time: ~6 instructions each; an unconstrained LTI step is ~800
    # instructions (DAQP skipped), a constrained one thousands
    assert np.all(costs * INSTRUCTIONS_PER_CYCLE > 300) and np.all(costs < 10_000_000)
    again, more_seconds = _run_states(link, build.states)
    assert [a.u for a in again] == [a.u for a in actions]
    assert np.max(np.abs(np.array([a.cost for a in again]) - costs)) <= 1  # one tick of jitter at most
    print(f"\nstm32f405 STEP round trip: median {statistics.median(seconds + more_seconds) * 1e3:.2f} ms, "
          f"cost median {int(np.median(costs))} cycles "
          f"(~{np.median(costs) * INSTRUCTIONS_PER_CYCLE:.0f} instructions)")


def test_exit_ends_qemu(build: Build) -> None:
    with connected(build.elf, BOARD) as (emu, link):
        assert link.request(Exit(5)) == Ack(MsgType.EXIT)
        assert emu.process.wait(timeout=10) == 5
    assert processes_running(build.elf) == []


def test_float64_bundle(build: Build, tmp_path: Path) -> None:
    """A float64 solver (soft-float doubles on the M4F): INFO.precision 8, same u0 as the host harness."""
    bundle = Bundle.load(export_mcu(build.bundle.directory.parent / "theta.json", tmp_path / "bundle64",
                                    precision="float64"))
    reference = build_host_harness(bundle, tmp_path / "reference" / "harness")
    with HostSolver(reference) as ref:
        expected = np.array([ref.solve(x).u0 for x in build.states[:4]])
    emu = start_emulator(build_firmware(bundle.directory, BOARD, tmp_path / BOARD), BOARD)
    port = None
    try:
        port = serial.serial_for_url(emu.serial_url, timeout=0.01)
        link = FirmwareLink(port)
        assert link.hello().precision == Precision.F64 and link.precision == Precision.F64
        u = np.array([a.u for a in _run_states(link, build.states[:4])[0]])
        np.testing.assert_allclose(u, expected, rtol=0, atol=1e-12)
    finally:
        emu.stop(port)
        if port is not None:
            port.close()
    assert not alive(emu.process.pid)


def test_cli_board_choices_match_the_firmware_builder() -> None:
    from rlmpc.codegen.firmware_cli import FIRMWARE_BOARDS
    from rlmpc.hil.cli import TARGETS
    from rlmpc.hil.pytest_plugin import TARGETS as PLUGIN_TARGETS

    assert FIRMWARE_BOARDS == TARGETS == PLUGIN_TARGETS == ALL_BOARDS
