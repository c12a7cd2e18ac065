"""A nonlinear MPC learned through a real-time-iteration device (issue #16, session 9): the pendulum
swing-up (Pendulum-v1, θ changing at every step) through the RTI firmware on the host board.

The device keeps its warm start across θ (SET_THETA, STEP_THETA): one Gauss-Newton iteration a step
from the last plan, not a cold SQP from zero after every push (which failed on half the steps and
made the learned θ worse than θ0).  Every episode starts with RESET (cold), so a resume at an
episode boundary is bit for bit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from processes import connected

from rlmpc.cli import main
from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.protocol import Ack, Action, Reset, SetTheta, Step, hash_prefix

CONFIG = """seed = 11
episodes = 2
steps = 100
checkpoint_every = 100
[env]
name = "Pendulum-v1"
[mpc]
problem = "pendulum"
[agent]
type = "lstd_q"
order = 1
optimizer = { type = "sgd", learning_rate = 1e-4, max_relative_step = 0.02 }
[agent.replay]
capacity = 100
sample_size = 20
include_latest = 5
[evaluation]
episodes = 1
steps = 30
seed = 1000
"""


def _device(out: Path) -> dict[str, Any]:
    return json.loads((out / "device.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The config and a run through the host board (its firmware is reused by the other tests)."""
    root = tmp_path_factory.mktemp("rti_learning")
    cfg = root / "pendulum.toml"
    cfg.write_text(CONFIG)
    assert main(["train", str(cfg), "--out", str(root / "run"), "--quiet", "--no-plots", "--device", "host"]) in (0, 3)
    return cfg, root / "run"


def test_theta_at_every_step_keeps_the_rti_warm(run: tuple[Path, Path]) -> None:
    """θ pushed at every step: at most the cold first step of an episode falls back (the old firmware,
    cold after every push: 188 of 202), and the device's action is the workstation's π_θ(s) to 1e-4 on
    most steps (the old: median 0.78)."""
    d = _device(run[1])
    assert d["steps"] == 202 and d["theta_pushes"] >= 150 and d["episode_resets"] == 2
    assert d["fallbacks"] <= 2
    assert d["distance_median"] < 1e-4
    distance = np.load(run[1] / "device_steps.npz")["distance"]
    assert np.nanpercentile(distance, 75) < 1e-3


def test_set_theta_keeps_the_warm_start_and_reset_forgets_it(run: tuple[Path, Path]) -> None:
    """On the firmware: after start-up or RESET a step iterates to convergence (10 SQP iterations); after
    SET_THETA the next step is one real-time iteration from the last plan (the old firmware: 10 again)."""
    program = run[1] / "device" / "firmware" / "controller"
    manifest = json.loads((run[1] / "device" / "bundle" / "manifest.json").read_text())
    x = (0.3, -0.5)
    with connected(program, "host") as (_, link):
        first = link.request(Step(0, x))
        again = link.request(Step(1, x))
        assert isinstance(first, Action) and isinstance(again, Action)
        assert first.sqp_iterations == 10 and again.sqp_iterations == 1
        th = 1.01 * np.array(manifest["theta"]["flat"], dtype=float)  # every entry a little (inside its bounds)
        push = SetTheta(hash_prefix(manifest["problem"]["hash"]), hash_prefix(theta_hash(th)), tuple(th))
        assert link.request(push) == Ack(int(push.TYPE))
        warm = link.request(Step(2, x))
        assert isinstance(warm, Action) and warm.sqp_iterations == 1 and warm.solver_status > 0
        assert link.request(Reset()) == Ack(int(Reset.TYPE))
        cold = link.request(Step(0, x))
        assert isinstance(cold, Action) and cold.sqp_iterations == 10


def test_a_repeated_step_is_answered_from_memory(run: tuple[Path, Path]) -> None:
    """A host that lost an ACTION sends the step again (same step index, x, θ): the device answers it
    again without iterating, so its warm start is that of a device that answered once (the firmware
    before session 9 iterated a second time at that state: another answer, and another next step).  A
    new θ or RESET forgets the answer."""
    program = run[1] / "device" / "firmware" / "controller"
    manifest = json.loads((run[1] / "device" / "bundle" / "manifest.json").read_text())
    xs = [(0.03, -0.05), (0.025, -0.04), (0.02, -0.03)]  # (near upright: inputs within their bounds)

    def answers(repeat: bool) -> list[Action]:
        out = []
        with connected(program, "host") as (_, link):
            for k, x in enumerate(xs):
                first = link.request(Step(k, x))
                assert isinstance(first, Action) and first.solver_status > 0
                if repeat and k == 1:
                    assert link.request(Step(k, x)) == first  # the same ACTION: u, flags, iterations, cost
                out.append(first)
            if repeat:
                th = 1.01 * np.array(manifest["theta"]["flat"], dtype=float)
                push = SetTheta(hash_prefix(manifest["problem"]["hash"]), hash_prefix(theta_hash(th)), tuple(th))
                assert link.request(push) == Ack(int(push.TYPE))
                new_theta = link.request(Step(2, xs[2]))  # the same step, another θ: solved again
                assert isinstance(new_theta, Action) and new_theta.u != out[2].u
                assert link.request(Reset()) == Ack(int(Reset.TYPE))
                cold = link.request(Step(2, xs[2]))  # after RESET: solved again, cold
                assert isinstance(cold, Action) and cold.sqp_iterations == 10
        return out

    repeated, once = answers(repeat=True)[2], answers(repeat=False)[2]
    assert replace(repeated, cost=0) == replace(once, cost=0)  # (the host board's cost is wall-clock µs)


def test_resume_at_an_episode_boundary_is_bit_for_bit(run: tuple[Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted in the second episode, resumed from the checkpoint at its start: the device (restarted)
    and the uninterrupted one both start that episode with RESET, so the learned θ is the same bit for
    bit (without the RESET, the uninterrupted device starts it warm from the first episode's plan)."""
    from rlmpc.hil import train_device
    from rlmpc.hil.device_training import DeviceInTheLoop

    cfg, clean = run
    out = tmp_path / "resumed"

    class Interrupted(DeviceInTheLoop):
        def action(self, sol: Any) -> Any:
            if len(self.record.distance) == 150:  # Ctrl-C after the checkpoint at step 100
                raise KeyboardInterrupt
            return super().action(sol)

    monkeypatch.setattr(train_device, "DeviceInTheLoop", Interrupted)
    args = ["train", str(cfg), "--out", str(out), "--quiet", "--no-plots", "--device", "host"]
    assert main(args) == 130
    monkeypatch.setattr(train_device, "DeviceInTheLoop", DeviceInTheLoop)
    assert main([*args, "--resume"]) in (0, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["theta_final"] == json.loads((clean / "summary.json").read_text())["theta_final"]
    assert _device(out)["steps"] == 202
