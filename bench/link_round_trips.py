#!/usr/bin/env python3
"""Round trips of each request over an emulated board's serial link, and what a byte costs.

The LTI bundle (float32, run-time θ) is built for each ``--boards`` board and started in QEMU; each
request is sent ``--n`` times in interleaved rounds and its median round trip printed with its frame
sizes (host → device and back): HELLO, PING of 60 bytes, STEP, SET_THETA, SET_THETA+STEP as a pair
(one write), STEP_THETA.  The last line fits ``round trip ≈ a + b · (bytes host → device)`` over the
requests without θ work on the device (HELLO, PING, STEP), i.e. what one host → device byte costs:
QEMU's UARTs take one byte per main-loop turn.

    .venv/bin/python bench/link_round_trips.py [--n 200] [--boards mps2-an386,stm32f405]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import serial

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator  # noqa: E402
from rlmpc.codegen.manifest import theta_hash  # noqa: E402
from rlmpc.codegen.mcu_export import export_mcu  # noqa: E402
from rlmpc.codegen.protocol import (  # noqa: E402
    Action,
    Hello,
    Info,
    Ping,
    SetTheta,
    Step,
    StepTheta,
    encode,
    hash_prefix,
    theta_tag,
)
from rlmpc.hil.transport import Device  # noqa: E402
from rlmpc.toolkit.problems import lti_mpc  # noqa: E402
from rlmpc.toolkit.theta_file import save_theta, theta_document  # noqa: E402

REQUESTS = ("HELLO", "PING 60 B", "STEP", "SET_THETA", "SET_THETA+STEP", "STEP_THETA")


def build(root: Path, board: str) -> tuple[Path, bytes, np.ndarray]:
    fns = lti_mpc().build()
    root.mkdir(parents=True, exist_ok=True)
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = Bundle.load(export_mcu(root / "theta.json", root / "bundle"))
    program = build_firmware(bundle.directory, board, root / board)
    return program, hash_prefix(bundle.manifest["problem"]["hash"]), fns.theta.default()


def sizes(problem: bytes, theta: np.ndarray) -> dict[str, tuple[int, int]]:
    """Bytes host → device and device → host of each request."""
    x = (0.1, 0.2)
    action = len(encode(Action(0, 1, 0, 1, 1, 0, (0.0,))))
    ack = 9
    return {"HELLO": (len(encode(Hello())), 8 + 77), "PING 60 B": (len(encode(Ping(bytes(60)))),) * 2,
            "STEP": (len(encode(Step(0, x))), action),
            "SET_THETA": (len(encode(SetTheta(problem, bytes(16), theta))), ack),
            "SET_THETA+STEP": (len(encode(SetTheta(problem, bytes(16), theta))) + len(encode(Step(0, x))),
                               ack + action),
            "STEP_THETA": (len(encode(StepTheta(0, 0, x, (), theta))), action)}


def measure(program: Path, board: str, problem: bytes, theta: np.ndarray, n: int) -> dict[str, list[float]]:
    emu = start_emulator(program, board)
    port = None
    times: dict[str, list[float]] = {r: [] for r in REQUESTS}
    try:
        port = serial.serial_for_url(emu.serial_url, timeout=0.01)
        device = Device(port, timeout=2.0)
        assert isinstance(device.connect(), Info)
        rng = np.random.default_rng(0)
        th_hash = hash_prefix(theta_hash(theta))
        tag = theta_tag(theta_hash(theta))
        calls: dict[str, Callable[[np.ndarray], object]] = {
            "HELLO": lambda x: device.hello(),
            "PING 60 B": lambda x: device.ping(bytes(60)),
            "STEP": lambda x: device.step(x),
            "SET_THETA": lambda x: device.set_theta(problem, th_hash, theta, refresh_info=False),
            "SET_THETA+STEP": lambda x: device.step_with_theta(problem, th_hash, theta, x),
            "STEP_THETA": lambda x: device.step_theta(tag, theta, x),
        }
        for _ in range(n):
            x = np.array([rng.uniform(-0.2, 1.1), rng.uniform(-0.5, 0.5)])
            for name in REQUESTS:
                t0 = time.perf_counter()
                calls[name](x)
                times[name].append(time.perf_counter() - t0)
        if device.stats.retries:
            print(f"  ({device.stats.retries} retries: {device.stats.errors[0]})")
        return times
    finally:
        emu.stop(port)
        if port is not None:
            port.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="round trips of each request")
    parser.add_argument("--boards", default="mps2-an386,stm32f405")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for board in args.boards.split(","):
            program, problem, theta = build(Path(tmp) / board, board)
            times = measure(program, board, problem, theta, args.n)
            size = sizes(problem, theta)
            print(f"{board}: median round trip of {args.n} (bytes host→device / device→host)")
            for name in REQUESTS:
                tx, rx = size[name]
                print(f"  {name:15} {1e3 * float(np.median(times[name])):6.2f} ms   {tx:4d} B / {rx:3d} B")
            fit = [(size[r][0], float(np.median(times[r]))) for r in ("HELLO", "PING 60 B", "STEP")]
            b, a = np.polyfit([f[0] for f in fit], [f[1] for f in fit], 1)
            print(f"  fit over HELLO, PING, STEP: {1e3 * a:.2f} ms + {1e6 * b:.1f} µs per host→device byte")


if __name__ == "__main__":
    main()
