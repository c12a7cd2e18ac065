#!/usr/bin/env python3
"""Learning through the device, link side: wall time per learning step (a new θ and a STEP) on mps2-an386.

The LTI bundle (float32, run-time θ) is built twice: with the θ-dependent precomputation in software
double precision (``-DRLMPC_PRECOMPUTE_DOUBLE``, as before issue #16) and in the build's float32 (the
default).  A sequence of θ (the model moving from θ0 to the true plant's A, B and the back-offs moving,
as while learning) and states is sent these ways, in interleaved rounds (the machine's load hits all
alike): old = double precomputation, SET_THETA then STEP (two round trips); float = float32
precomputation, two round trips; pair = float32, SET_THETA and STEP back to back
(:meth:`rlmpc.hil.transport.Device.step_with_theta`, one round trip); frame = float32, θ and the step
in one STEP_THETA frame without hashes (:meth:`rlmpc.hil.transport.Device.step_theta`); delta = the same
with θ as differences to the θ in use (STEP_THETA_DELTA, varints; whole θ where not shorter); step = a plain
STEP, θ unchanged (the floor: what a step costs without a new θ).  Printed: median ms per step
and steps/s over the link alone (no workstation solve, no learning update), the ratios, and the frame
sizes, which bound the rate: QEMU's CMSDK UART takes one host→device byte per main-loop turn.

``--history RUN/history.npz`` sends the θ of a learning run (``rlmpc train``; its first ``--steps`` rows) instead
of the straight line: the differences, and so the STEP_THETA_DELTA frames, are those of learning.

    .venv/bin/python bench/device_theta_link.py [--history RUN/history.npz] [--steps 300] [--rounds 3] \\
        [--ways old,float,pair,frame,delta,step]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import serial

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator  # noqa: E402
from rlmpc.codegen.manifest import theta_hash  # noqa: E402
from rlmpc.codegen.mcu_export import export_mcu  # noqa: E402
from rlmpc.codegen.protocol import SetTheta, Step, StepTheta, encode, hash_prefix, theta_tag  # noqa: E402
from rlmpc.hil.transport import Device, RecordingPort  # noqa: E402
from rlmpc.toolkit.problems import lti_mpc  # noqa: E402
from rlmpc.toolkit.problems.lti import A_TRUE, B_TRUE  # noqa: E402
from rlmpc.toolkit.theta_file import save_theta, theta_document  # noqa: E402


def thetas_and_states(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """θ moving from θ0 to the true model with back-offs (a straight line), states in the box."""
    fns = lti_mpc().build()
    d = {k: np.array(v, dtype=float) for k, v in fns.theta.unflatten(fns.theta.default()).items()}
    d["A"], d["B"], d["x_lb"], d["x_ub"] = A_TRUE.copy(), B_TRUE.copy(), np.array([0.1, -0.2]), np.array([-0.1, 0.2])
    th0, th1 = fns.theta.default(), fns.theta.flatten(d)
    s = np.linspace(0.0, 1.0, steps)[:, None]
    rng = np.random.default_rng(0)
    states = np.column_stack([rng.uniform(-0.2, 1.1, steps), rng.uniform(-0.5, 0.5, steps)])
    return th0 + s * (th1 - th0), states


def build(root: Path, precompute_double: bool) -> tuple[Path, bytes]:
    fns = lti_mpc().build()
    root.mkdir(parents=True, exist_ok=True)
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = Bundle.load(export_mcu(root / "theta.json", root / "bundle"))
    if precompute_double:
        c = bundle.directory / "rlmpc_solver.c"
        c.write_text("#define RLMPC_PRECOMPUTE_DOUBLE\n" + c.read_text())
    program = build_firmware(bundle.directory, "mps2-an386", root / "fw", allow_modified=precompute_double)
    return program, hash_prefix(bundle.manifest["problem"]["hash"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(program: Path, problem: bytes, thetas: np.ndarray, states: np.ndarray, way: str) -> float:
    """Median seconds per step; prints QEMU's CPU time per step (what a busy machine must find for it)."""
    emu = start_emulator(program, "mps2-an386")
    port = None
    try:
        port = RecordingPort(serial.serial_for_url(emu.serial_url, timeout=0.01))
        device = Device(port, timeout=2.0, theta_delta=way == "delta")
        device.connect()
        times = []
        cpu0, own0 = cpu_seconds(emu.process.pid), time.process_time()
        for th, x in zip(thetas, states, strict=True):
            t0 = time.perf_counter()
            if way == "pair":
                device.step_with_theta(problem, hash_prefix(theta_hash(th)), th, x)
            elif way in ("frame", "delta"):
                device.step_theta(theta_tag(theta_hash(th)), th, x)
            elif way == "step":
                device.step(x)
            else:
                device.set_theta(problem, hash_prefix(theta_hash(th)), th, refresh_info=False)
                device.step(x)
            times.append(time.perf_counter() - t0)
        if way == "delta":
            print(f"  ({device.stats.theta_deltas} of {len(thetas)} steps as STEP_THETA_DELTA)")
        print(f"  ({port.bytes_tx / len(thetas):.1f} B host→device per step, handshake included; QEMU CPU "
              f"{1e3 * (cpu_seconds(emu.process.pid) - cpu0) / len(thetas):.2f} ms per step, this process "
              f"{1e3 * (time.process_time() - own0) / len(thetas):.2f} ms)")
        if device.stats.retries:
            print(f"  ({device.stats.retries} retries: {device.stats.errors[0]})")
        return float(np.median(times))
    finally:
        emu.stop(port)
        if port is not None:
            port.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=Path, help="history.npz of `rlmpc train`: send its θ rows")
    parser.add_argument("--ways", default="old,float,pair,frame,delta,step",
                        help="comma-separated, from old, float, pair, frame, delta, step; the first is the base of "
                             "the ratios")
    args = parser.parse_args()
    ways = args.ways.split(",")
    names = ("old", "float", "pair", "frame", "delta", "step")
    if not ways or any(w not in names for w in ways):
        parser.error(f"--ways: expected names from {', '.join(names)}, got {args.ways!r}")
    thetas, states = thetas_and_states(args.steps)
    if args.history is not None:
        rows = np.load(args.history)["theta"]
        if rows.shape[1] != thetas.shape[1] or len(rows) < args.steps:
            parser.error(f"--history: expected at least {args.steps} rows of {thetas.shape[1]} θ values, "
                         f"got {rows.shape}")
        thetas = rows[:args.steps]
    results: dict[str, list[float]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory() as tmp:
        old = build(Path(tmp) / "old", True) if "old" in ways else None
        new = build(Path(tmp) / "new", False)
        for _ in range(args.rounds):
            for w in ways:
                program = old if w == "old" and old is not None else new
                results[w].append(run(*program, thetas, states, w))
                print(f"  round {len(results[w])}: {w} {1e3 * results[w][-1]:.2f} ms/step", flush=True)
    n = thetas.shape[1]
    print(f"frames host→device: SET_THETA {len(encode(SetTheta(bytes(16), bytes(16), (0.0,) * n)))} B, "
          f"STEP {len(encode(Step(0, (0.0, 0.0))))} B, "
          f"STEP_THETA {len(encode(StepTheta(0, 0, (0.0, 0.0), (), (0.0,) * n)))} B")
    base = float(np.median(results[ways[0]]))
    print(f"{'way':10} {'ms/step':>8} {'steps/s':>8} {'vs ' + ways[0]:>9}   (median over {args.rounds} rounds of "
          f"{args.steps} steps)")
    for w in ways:
        t = float(np.median(results[w]))
        print(f"{w:10} {1e3 * t:8.2f} {1 / t:8.0f} {base / t:9.2f}")


if __name__ == "__main__":
    main()
