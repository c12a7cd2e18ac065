"""Fault injection (issue #6 item 4): corrupted, dropped and delayed bytes and a device reset
mid-run.  The link must recover (resync, retry, new handshake), the report must count every
retry, lost step and injected fault, and too many lost steps must FAIL the verdict.

gcc, arm-none-eabi-gcc and qemu-system-arm are installed by the set-up: no skips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from processes import LtiPrograms, lti_programs

from rlmpc.codegen.firmware import start_emulator
from rlmpc.codegen.mcu.qemu_bench import qemu_available
from rlmpc.codegen.protocol import Ping, Step, encode
from rlmpc.hil.faults import FaultConfig, FaultyPort, attach_fault_counts, emulator_restarter, find_faulty
from rlmpc.hil.report import write_report
from rlmpc.hil.runner import HilRun, run_hil
from rlmpc.hil.transport import Device, RecordingPort, open_link
from rlmpc.hil.verdict import Thresholds, evaluate
from rlmpc.toolkit.envs.lti import LtiGrosZanon

Setup = LtiPrograms


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    return lti_programs(tmp_path_factory.mktemp("hil_faults"), ("host", "mps2-an386"))


def _faulty_run(setup: Setup, board: str, config: FaultConfig, steps: int, *, restart: bool = False,
                **device_kwargs: Any) -> tuple[HilRun, FaultyPort]:
    holder: dict[str, Any] = {"emu": start_emulator(setup.programs[board], board)}
    port: RecordingPort | None = None
    try:
        port = open_link(holder["emu"].serial_url)
        hook = emulator_restarter(setup.programs[board], board, holder) if restart else None
        faulty = FaultyPort(port, config, reset_device=hook)
        device = Device(faulty, **device_kwargs)
        device.connect()
        run = run_hil(device, LtiGrosZanon(), setup.reference, steps, seed=3, manifest=setup.bundle.manifest)
        attach_fault_counts(run, device.port)
    finally:
        holder["emu"].stop(port)
        if port is not None:
            port.close()
    return run, faulty


# --- the wrapper alone (loop://: no firmware) ------------------------------------------------


def test_wrapper_is_seeded_and_counts_what_it_injects() -> None:
    frame = encode(Step(1, [0.5, -0.25]), seq=1)
    outs = []
    for _ in range(2):
        port = FaultyPort(open_link("loop://"), FaultConfig(seed=7, flip_rate=0.05, drop_rate=0.05,
                                                             directions=("tx",)))
        sent = b""
        for _ in range(200):
            port.write(frame)
            sent += port.read(port.in_waiting)
        outs.append((sent, port.counts.as_dict()))
        # the bytes that arrived differ from the bytes sent by exactly the injected faults
        assert len(sent) == 200 * len(frame) - port.counts.dropped_bytes
        assert port.counts.steps_written == 200 and port.counts.bytes_tx == 200 * len(frame)
        assert port.counts.bit_flips > 0 and port.counts.dropped_bytes > 0
        assert port.counts.flips_by_direction["rx"] == 0
        assert port.log[0][1] == "tx"  # the RecordingPort's log is reachable through the wrapper
        port.close()
    assert outs[0] == outs[1]  # same seed, same faults


def test_window_delay_and_reset_hook() -> None:
    raw = open_link("loop://")
    calls: list[int] = []
    port = FaultyPort(raw, FaultConfig(delay_rate=1.0, delay_s=0.01, start_step=2, stop_step=3,
                                       reset_at=(2,)),
                      reset_device=lambda: calls.append(1))
    frame = encode(Step(0, [0.0, 0.0]), seq=1)
    for _ in range(3):
        port.write(frame)
        assert port.read(port.in_waiting) == frame  # only delays: nothing is lost
    assert calls == [1] and port.counts.resets == 1
    assert port.counts.delays == 2  # step 2 only: its write and its read
    assert find_faulty(RecordingPort(port)) is port and find_faulty(raw) is None
    port.write(encode(Ping(b"x"), seq=2))
    assert port.counts.steps_written == 3 and port.counts.hellos_written == 0
    with pytest.raises(ValueError, match="reset_device"):
        FaultyPort(raw, FaultConfig(reset_at=(1,)))
    with pytest.raises(ValueError, match="flip_rate"):
        FaultConfig(flip_rate=1.5)
    port.close()


# --- closed loops through the firmware -------------------------------------------------------

MODERATE = FaultConfig(seed=1, flip_rate=0.001, drop_rate=0.001, delay_rate=0.02, delay_s=0.02)


@pytest.mark.parametrize("board,steps", [("host", 80), ("mps2-an386", 30)])
def test_moderate_faults_are_recovered_and_reported(setup: Setup, board: str, steps: int,
                                                    tmp_path: Path) -> None:
    config = MODERATE if board == "host" else FaultConfig(seed=2, flip_rate=0.002, drop_rate=0.002)
    # (8 retries: the reply deadlines now follow the measured round trip, ~50 ms on the host pty, so a
    # reply held up by several 20-ms byte delays costs a retry more often than under the fixed 0.2 s;
    # with 5, one of 80 steps was lost once in a CI run)
    run, faulty = _faulty_run(setup, board, config, steps, timeout=0.2, max_retries=8)
    counts = faulty.counts
    assert counts.bit_flips > 0 and counts.dropped_bytes > 0
    assert run.link["retries"] > 0 and run.link["resyncs"] >= run.link["retries"]
    assert run.link["lost_steps"] == 0 and not run.lost.any()
    assert int(run.retries.sum()) == run.link["retries"]
    assert counts.hellos_written > 1  # every resync shook hands again
    print(f"{board}: {steps} steps, injected {counts.as_dict()}, retries {run.link['retries']}")
    verdict = evaluate(run, Thresholds(cost_budget=1e6))
    assert verdict.passed, verdict.reasons

    paths = write_report(run, verdict, tmp_path / "report")
    doc = json.loads(paths["json"].read_text())
    assert doc["verdict"] == "PASS"
    assert doc["link"]["retries"] == run.link["retries"] > 0
    assert doc["link"]["faults"]["bit_flips"] == counts.bit_flips
    assert doc["link"]["faults"]["dropped_bytes"] == counts.dropped_bytes
    assert doc["link"]["faults"]["config"]["flip_rate"] == config.flip_rate
    assert sum(doc["trace"]["retries"]) == run.link["retries"]


def test_heavy_loss_fails_on_max_lost_steps(setup: Setup, tmp_path: Path) -> None:
    config = FaultConfig(seed=3, drop_rate=0.3, start_step=5, stop_step=11)
    run, faulty = _faulty_run(setup, "host", config, 16, timeout=0.1, max_retries=1, hello_attempts=2)
    assert faulty.counts.dropped_bytes > 0
    assert run.lost.sum() >= 1 and run.link["lost_steps"] == int(run.lost.sum())
    assert not run.lost[:4].any() and not run.lost[-1]  # before and after the window: fine
    verdict = evaluate(run)
    assert not verdict.passed
    assert any(r.startswith("max_lost_steps:") for r in verdict.reasons), verdict.reasons
    doc = json.loads(write_report(run, verdict, tmp_path)["json"].read_text())
    assert doc["verdict"] == "FAIL" and doc["metrics"]["lost_steps"] == run.link["lost_steps"]
    assert doc["link"]["faults"]["dropped_bytes"] == faulty.counts.dropped_bytes
    # with a threshold that tolerates the losses the same run passes the lost-steps check
    tolerant = evaluate(run, Thresholds(max_lost_steps=int(run.lost.sum())))
    assert not any(r.startswith("max_lost_steps:") for r in tolerant.reasons)


@pytest.mark.parametrize("board,steps", [("host", 30), ("mps2-an386", 20)])
def test_a_device_reset_mid_run_is_survived(setup: Setup, board: str, steps: int) -> None:
    """The 10th STEP is written, then the emulator / host program is killed and started again
    (a power cycle on a new link): no reply, a resync with a new handshake, the step retried."""
    run, faulty = _faulty_run(setup, board, FaultConfig(reset_at=(10,)), steps, restart=True,
                              timeout=0.3, max_retries=3)
    assert faulty.counts.resets == 1 and not faulty.counts.errors
    assert not run.lost.any() and run.link["lost_steps"] == 0
    assert run.retries[9] >= 1 and run.link["resyncs"] >= 1  # STEP 9 (the 10th) had no reply
    assert faulty.counts.hellos_written >= 2  # the first handshake and the one after the reset
    assert any("STEP 9" in e for e in run.link["errors"])
    assert run.link["faults"]["resets"] == 1
    assert evaluate(run).passed



def test_a_connection_reset_during_the_handshake_is_a_link_error() -> None:
    import serial

    from rlmpc.hil.transport import Device, TransportError

    class ResetPort:  # a board that drops the connection (e.g. firmware of another board faulted)
        timeout = 0.01
        in_waiting = 0

        def write(self, data: bytes) -> int:
            raise serial.SerialException("Connection reset by peer")

        def read(self, n: int = 1) -> bytes:
            return b""

        def flush(self) -> None:
            pass

        def reset_input_buffer(self) -> None:
            pass

        def close(self) -> None:
            pass

    with pytest.raises(TransportError, match=r"handshake failed: the link closed \(Connection reset by peer\)"):
        Device(ResetPort(), hello_attempts=1).connect()  # type: ignore[arg-type]


def test_resync_completes_a_frame_whose_length_was_corrupted(setup: Setup) -> None:
    """A STEP header whose length field says 500 bytes (a flipped bit): the firmware's parser waits for
    them and swallows the HELLOs of a resync; the resync completes the frame with filler bytes and
    shakes hands again (before: 'handshake failed' until the HELLOs alone had filled 500 bytes)."""
    from rlmpc.codegen.protocol_spec import SYNC, MsgType

    emu = start_emulator(setup.programs["host"], "host")
    port: RecordingPort | None = None
    try:
        port = open_link(emu.serial_url)
        device = Device(port, timeout=0.3)
        device.connect()
        device.calibrate()
        port.write(bytes([SYNC[0], SYNC[1], int(MsgType.STEP), 7, 0xF4, 0x01]))  # length 500, no payload
        device.resync()
        assert device.stats.flushes == 1 and device.info().nx == 2
        assert device.step([0.1, 0.0]).u  # the link works again
    finally:
        emu.stop(port)
        if port is not None:
            port.close()
