"""The controller firmware of the LTI bundle on the host board (pty) and in QEMU mps2-an386 (TCP).

gcc, arm-none-eabi-gcc and qemu-system-arm are installed by the set-up: their absence is a
failure, not a skip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import serial
from processes import connected, lti_bundle, processes_running

from rlmpc.codegen.firmware import Bundle, Emulator, build_firmware, safe_action, start_emulator
from rlmpc.codegen.firmware_link import FirmwareLink
from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.mcu.host_check import HostSolver
from rlmpc.codegen.mcu.qemu_bench import RESOLUTION, qemu_available
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.codegen.protocol import (
    Ack,
    Action,
    Error,
    Exit,
    Hello,
    Info,
    Ping,
    Pong,
    Reset,
    Step,
    encode,
    encode_frame,
    hash_prefix,
)
from rlmpc.codegen.protocol_spec import CostUnit, ErrorCode, MsgType, Precision, StatusFlag

N_STATES = 12

BOARDS = ("host", "mps2-an386")  # stm32f405: tests/test_firmware_stm32.py


@dataclass(frozen=True)
class Builds:
    bundle: Bundle
    programs: dict[str, Path]
    reference: Path  # host float32 line harness of the same solver
    states: np.ndarray  # float32-exact reference states


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    root = tmp_path_factory.mktemp("firmware")
    lti = lti_bundle(root, N_STATES)
    programs = {b: build_firmware(lti.bundle.directory, b, root / b) for b in BOARDS}
    yield Builds(lti.bundle, programs, lti.reference, lti.states)
    assert processes_running(root) == [], "a firmware process survived the tests"


@pytest.fixture(params=BOARDS)
def device(request: pytest.FixtureRequest, builds: Builds) -> Iterator[tuple[str, Emulator, FirmwareLink]]:
    board: str = request.param
    with connected(builds.programs[board], board) as (emu, link):
        yield board, emu, link


def test_hello_answers_info_from_the_manifest(builds: Builds, device: tuple[str, Emulator, FirmwareLink]
                                              ) -> None:
    board, _, link = device
    info = link.request(Hello())
    assert isinstance(info, Info)
    m = builds.bundle.manifest
    assert info.theta_hash == hash_prefix(theta_hash(m["theta"]["flat"])) == hash_prefix(m["theta"]["hash"])
    assert info.problem_hash == hash_prefix(m["problem"]["hash"])
    manifest_bytes = (builds.bundle.directory / "manifest.json").read_bytes()
    assert info.manifest_hash == hash_prefix(hashlib.sha256(manifest_bytes).hexdigest())
    assert (info.nx, info.nu, info.np) == (m["dims"]["nx"], m["dims"]["nu"], m["dims"]["np"]) == (2, 1, 0)
    assert info.precision == Precision.F32 and info.board_name == board
    assert info.cost_unit == (CostUnit.INSTRUCTIONS if board == "mps2-an386" else CostUnit.MICROSECONDS)


def _run_states(link: FirmwareLink, states: np.ndarray) -> list[Action]:
    assert link.request(Reset()) == Ack(MsgType.RESET)
    actions = []
    for i, x in enumerate(states):
        a = link.request(Step(i, x))
        assert isinstance(a, Action) and a.step == i
        actions.append(a)
    return actions


def test_steps_match_the_host_float32_solver(builds: Builds, device: tuple[str, Emulator, FirmwareLink]
                                             ) -> None:
    board, _, link = device
    actions = _run_states(link, builds.states)
    with HostSolver(builds.reference) as ref:
        ref.reset()
        expected = np.array([ref.solve(x).u0 for x in builds.states])
    u = np.array([a.u for a in actions])
    np.testing.assert_array_equal(u, expected)  # bit-identical, also on the Cortex-M4F
    assert all(a.flags & StatusFlag.SOLVER_OK and a.sqp_iterations == 1 for a in actions)
    assert max(a.qp_iterations for a in actions) > 1
    costs = [a.cost for a in actions]
    assert all(c > 0 for c in costs)
    if board == "mps2-an386":  # instruction counts, repeatable up to the phase of the 40-instruction tick
        assert all(c % RESOLUTION == 0 for c in costs)
        again = [a.cost for a in _run_states(link, builds.states)]
        assert np.max(np.abs(np.array(again) - np.array(costs))) <= RESOLUTION
        assert [a.u for a in _run_states(link, builds.states)] == [a.u for a in actions]


def test_non_finite_state_gives_the_safe_action(device: tuple[str, Emulator, FirmwareLink]) -> None:
    _, _, link = device
    for x in ([float("nan"), 0.0], [0.0, float("inf")]):
        a = link.request(Step(7, x))
        assert isinstance(a, Action)
        assert a.flags == StatusFlag.INVALID_INPUT | StatusFlag.FALLBACK
        assert a.u == (0.0,)  # zero, clipped to |u| <= 1
    ok = link.request(Step(8, [0.1, 0.1]))
    assert isinstance(ok, Action) and ok.flags & StatusFlag.SOLVER_OK


def test_bad_frames_get_errors_and_the_link_resynchronises(device: tuple[str, Emulator, FirmwareLink]
                                                           ) -> None:
    _, _, link = device
    frame = bytearray(encode(Ping(b"abc"), seq=42))
    frame[-1] ^= 0x5A
    bad_crc = Error(ErrorCode.BAD_CRC, MsgType.PING, 0)
    assert link.request_frame(b"\x00garbage\xa5" + bytes(frame), 42) == bad_crc
    assert link.request_frame(encode_frame(0x33, 43, b""), 43) == Error(ErrorCode.UNKNOWN_TYPE, 0x33, 0)
    assert link.request_frame(encode_frame(MsgType.ACK, 44, b"\x01"), 44) == Error(
        ErrorCode.UNEXPECTED_TYPE, MsgType.ACK, 0)
    assert link.request(Step(0, [0.1, 0.2, 0.3])) == Error(ErrorCode.BAD_DIMENSION, MsgType.STEP, 2)
    assert link.request(Hello(protocol_version=99)) == Error(ErrorCode.BAD_VERSION, MsgType.HELLO, 1)
    truncated = encode(Ping(b"lost"), seq=45)[:-3]
    assert link.request_frame(truncated + bytes(600) + encode(Ping(b"back"), seq=46), 46) == Pong(b"back")
    assert link.request(Ping(bytes(range(256)) * 2)) == Pong(bytes(range(256)) * 2)


@pytest.mark.parametrize("board", BOARDS)
def test_exit_ends_the_firmware(builds: Builds, board: str) -> None:
    with connected(builds.programs[board], board) as (emu, link):
        assert link.request(Exit(5)) == Ack(MsgType.EXIT)
        assert emu.process.wait(timeout=10) == 5
    assert emu._fds == []  # the pty is closed


def test_float64_bundle_on_both_boards(builds: Builds, tmp_path: Path) -> None:
    """A float64 solver: INFO.precision 8, STEP and ACTION in doubles, same u0 as the host harness."""
    bundle = Bundle.load(export_mcu(builds.bundle.directory.parent / "theta.json", tmp_path / "bundle64",
                                    precision="float64"))
    reference = build_host_harness(bundle, tmp_path / "reference" / "harness")
    with HostSolver(reference) as ref:
        expected = np.array([ref.solve(x).u0 for x in builds.states[:4]])
    for board in BOARDS:
        emu = start_emulator(build_firmware(bundle.directory, board, tmp_path / board), board)
        port = None
        try:
            port = serial.serial_for_url(emu.serial_url, timeout=0.01)
            link = FirmwareLink(port)
            assert link.hello().precision == Precision.F64 and link.precision == Precision.F64
            u = np.array([a.u for a in _run_states(link, builds.states[:4])])
            np.testing.assert_allclose(u, expected, rtol=0, atol=1e-12)
        finally:
            emu.stop(port)
            if port is not None:
                port.close()


def test_safe_action_and_bundle_info(builds: Builds) -> None:
    bundle = builds.bundle
    assert bundle.input_bounds() == ([-1.0], [1.0])
    assert safe_action(bundle) == [0.0] and safe_action(bundle, [3.0]) == [1.0]
    with pytest.raises(ValueError, match="expected 1 values"):
        safe_action(bundle, [0.0, 0.0])
    with pytest.raises(ValueError, match="board: expected one of"):
        build_firmware(bundle.directory, "stm32", bundle.directory.parent / "nope")
    header = (builds.programs["host"].parent / "gen" / "bundle_info.h").read_text()
    assert '#define RLMPC_BUNDLE_SOLVER_HEADER "rlmpc_solver.h"' in header
    assert "#define RLMPC_BUNDLE_SAFE_ACTION {0.0f}" in header
    size = (builds.programs["mps2-an386"].parent / "size.txt").read_text().splitlines()[1].split()
    assert 0 < int(size[0]) < 64 * 1024  # text: the whole firmware fits a small MCU
