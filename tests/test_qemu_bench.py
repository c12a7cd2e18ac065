"""The bare-metal benchmark in QEMU (mps2-an386, -icount shift=0) on the LTI solver, and the board's UART.

arm-none-eabi-gcc and qemu-system-arm are installed by the set-up: their absence is a
failure, not a skip.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.mcu.generate import GeneratedSolver, generate
from rlmpc.codegen.mcu.host_check import random_states
from rlmpc.codegen.mcu.linearise import linearise
from rlmpc.codegen.mcu.qemu_bench import (
    BENCH_DIR,
    QEMU,
    QEMU_FLAGS,
    RESOLUTION,
    BenchPlan,
    BenchRun,
    Unit,
    bench_data_header,
    build_firmware,
    build_rlmpc_bench,
    c_float,
    host_replay,
    qemu_available,
    run_bench,
    run_qemu,
)
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.toolkit.problems import lti_mpc


@pytest.fixture(scope="module")
def lti_solver(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSolver:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    return generate(lti_mpc().build(), tmp_path_factory.mktemp("lti") / "solver")


@pytest.fixture(scope="module")
def replay(lti_solver: GeneratedSolver, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[BenchPlan, BenchRun, BenchRun, Path]:
    """Two episodes of reference states (warm start carried within each), run twice."""
    fns = lti_mpc().build()
    states = np.vstack([random_states(fns, 6, 0), [[0.9, 0.9], [0.05, -0.6]]])
    plan = BenchPlan.replay([states[:5], states[5:]], fns.nu)
    out = tmp_path_factory.mktemp("replay")
    fw = build_rlmpc_bench(lti_solver, plan, out)
    exe = build_host_harness(lti_solver, out / "host" / "harness")
    return plan, run_bench(fw, plan, timeout=30), run_bench(fw, plan, timeout=30), exe


def test_exits_zero_and_reports_every_step(replay: tuple[BenchPlan, BenchRun, BenchRun, Path]) -> None:
    plan, run, _, _ = replay
    assert run.exit_code == 0
    assert len(run.steps) == plan.n_steps == 8
    assert [s.step for s in run.steps] == [0, 1, 2, 3, 4, 0, 1, 2]
    np.testing.assert_array_equal(run.x, plan.states.astype(np.float32))
    assert all(s.status > 0 for s in run.steps)


def test_counts_positive_and_deterministic(replay: tuple[BenchPlan, BenchRun, BenchRun, Path]) -> None:
    _, run, again, _ = replay
    counts = run.instructions
    assert np.all(counts > 0) and np.all(counts % RESOLUTION == 0)
    np.testing.assert_array_equal(counts, again.instructions)
    np.testing.assert_array_equal(run.u, again.u)
    assert max(s.iterations for s in run.steps) > 1  # some steps change the working set


def test_u0_matches_host_float32_build(replay: tuple[BenchPlan, BenchRun, BenchRun, Path]) -> None:
    _, run, _, exe = replay
    assert np.max(np.abs(run.u - host_replay(exe, run))) <= 1e-5


def test_closed_loop_follows_the_plant(lti_solver: GeneratedSolver, tmp_path: Path) -> None:
    fns = lti_mpc().build()
    st = linearise(fns).stages[0]
    plan = BenchPlan.closed_loop(random_states(fns, 2, 3), 6, st.A, st.B, st.c)
    run = run_bench(build_rlmpc_bench(lti_solver, plan, tmp_path), plan, timeout=30)
    for prev, nxt in zip(run.steps[:-1], run.steps[1:], strict=True):
        if nxt.episode == prev.episode:
            np.testing.assert_allclose(nxt.x, st.A @ prev.x + st.B @ prev.u + st.c, atol=1e-6)
        else:
            np.testing.assert_array_equal(nxt.x, np.float32(plan.states[nxt.episode]))


def test_bench_data_is_exact() -> None:
    assert c_float(0.1) == float(np.float32(0.1)).hex() + "f"
    assert float.fromhex(c_float(-1.5e-7)[:-1]) == float(np.float32(-1.5e-7))
    plan = BenchPlan.replay([np.array([[0.1, -2.0]])], nu=1)
    assert "{0x1.99999a0000000p-4f, -0x1.0000000000000p+1f}" in bench_data_header(plan)


def _read_until(fd: int, want: bytes, deadline: float) -> bytes:
    got = b""
    while not got.endswith(want) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            got += chunk
    return got


def test_uart_interrupt_receive_echo(tmp_path: Path) -> None:
    """uart_echo.c: bytes in through the RX interrupt and ring buffer, back out, exit via NUL."""
    assert qemu_available()
    fw = build_firmware([Unit((BENCH_DIR / "uart_echo.c",))], tmp_path, "echo")
    proc = subprocess.Popen([QEMU, *QEMU_FLAGS, "-kernel", str(fw.elf)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        assert _read_until(fd, b"ready\n", time.monotonic() + 10).endswith(b"ready\n")
        payload = bytes(range(32, 127)) * 4  # more than the 256-byte ring, in frames of 64
        echoed = b""
        for i in range(0, len(payload), 64):
            chunk = payload[i:i + 64]
            proc.stdin.write(chunk)
            proc.stdin.flush()
            echoed += _read_until(fd, chunk, time.monotonic() + 10)
        assert echoed == payload
        proc.stdin.write(b"\0")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_qemu_times_out_and_stops(tmp_path: Path) -> None:
    """A program that never exits: run_qemu raises after the timeout (and stops QEMU)."""
    from rlmpc.codegen.mcu.qemu_bench import QemuError

    fw = build_firmware([Unit((BENCH_DIR / "uart_echo.c",))], tmp_path, "echo")
    with pytest.raises(QemuError, match="no exit"):
        run_qemu(fw.elf, timeout=1.0)


@pytest.mark.parametrize(("body", "code"), [
    ("return 7;", 7),  # main's return value, through board_exit (semihosting)
    ("return (int)*(volatile unsigned *)0xF0000000u;", 131),  # bus fault -> HardFault: 128 + 3
])
def test_exit_codes(tmp_path: Path, body: str, code: int) -> None:
    src = tmp_path / "prog.c"
    src.write_text('#include "board.h"\nint main(void)\n{\n    board_init();\n    ' + body + "\n}\n")
    fw = build_firmware([Unit((src,))], tmp_path, "prog")
    assert run_qemu(fw.elf, timeout=10)[0] == code
