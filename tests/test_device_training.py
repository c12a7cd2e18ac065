"""Learning through the device (issue #16): the host side of ``rlmpc train --device/--port`` against a
device double that speaks the serial protocol on a pty (a Python device running the workstation's
MPC in double precision, with SET_THETA, and with STEP_THETA where a test asks for it). It checks what
the host must do: take the device's action, push θ after every update (in one STEP_THETA frame with the
step where the device offers it, else as SET_THETA+STEP pairs, as to a firmware built before
STEP_THETA), push it again after the device reset, and learn the same θ as a run without a device."""

from __future__ import annotations

import os
import threading
import tty
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import serial
from lti_configs import lti_qlearning_config

from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.protocol import (
    Ack,
    Action,
    DeviceLimits,
    Error,
    Frame,
    FrameParser,
    Hello,
    Info,
    Reset,
    SetTheta,
    Step,
    StepTheta,
    board_bytes,
    check_request,
    decode,
    encode,
    hash_prefix,
    tagged_theta_hash,
)
from rlmpc.codegen.protocol_spec import (
    PROTOCOL_VERSION,
    Capability,
    CostUnit,
    ErrorCode,
    MsgType,
    Precision,
    StatusFlag,
)
from rlmpc.hil.device_training import DeviceInTheLoop
from rlmpc.hil.transport import Device, TransportError
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.rl.training import Trainer

CONFIG = lti_qlearning_config(seed=11, steps=300, checkpoint_every=100, eval_episodes=2, eval_steps=50,
                              exploration='{ type = "gaussian", std = 0.05 }')


class PythonDevice(threading.Thread):
    """The device side of the protocol on a pty: the workstation's MPC at the device's θ (float64).
    ``reboot_at``: at that STEP the device 'resets' (θ back to its exported θ) and does not answer."""

    def __init__(self, fd: int, mpc: MPC, reboot_at: int | None = None, cold: bool = False,
                 theta_fault: tuple[int, str] | None = None, step_theta: bool = False) -> None:
        super().__init__(daemon=True)
        self.fd, self.mpc, self.reboot_at, self.cold = fd, mpc, reboot_at, cold
        self.step_theta = step_theta  # offer STEP_THETA (capability), else SET_THETA only
        # (n, "refuse" | "drop"): the n-th SET_THETA is refused / gets no answer, θ stays the old one;
        # until the next θ arrives every STEP answers with a poisoned action (STALE_U).  The n-th
        # STEP_THETA: refused (θ kept, no step), or applied and stepped with its answer lost
        self.theta_fault = theta_fault
        self.stale = False
        self.stale_steps = 0
        fns = mpc.fns
        self.theta0 = np.array(mpc.theta)
        self.limits = DeviceLimits(fns.nx, fns.np, fns.ntheta, hash_prefix(fns.problem_hash),
                                   fns.theta.lower(), fns.theta.upper(), Precision.F64)
        self.theta_hash = hash_prefix(theta_hash(self.theta0))
        self.steps = 0
        self.set_theta = 0
        self.stopped = threading.Event()

    def info(self) -> Info:
        fns = self.mpc.fns
        caps = Capability.SET_THETA | (Capability.STEP_THETA if self.step_theta else 0)
        return Info(PROTOCOL_VERSION, 0, 1, 0, int(Precision.F64), int(caps), int(CostUnit.NONE),
                    fns.nx, fns.nu, fns.np, fns.ntheta, board_bytes("python"), bytes(16),
                    hash_prefix(fns.problem_hash), self.theta_hash)

    def answer(self, msg: object) -> object | None:
        if isinstance(msg, Hello):
            return self.info()
        if isinstance(msg, Step):
            self.steps += 1
            if self.stale:
                self.stale_steps += 1
                return Action(msg.step, int(StatusFlag.SOLVER_OK), 0, 1, 1, 0, (STALE_U,))
            if self.reboot_at is not None and self.steps == self.reboot_at:
                self.mpc.theta = self.theta0  # a reset: the exported θ again, and no answer
                self.theta_hash = hash_prefix(theta_hash(self.theta0))
                return None
            if self.cold:
                self.mpc.reset()  # every step from a cold start: the answer does not depend on the past
            sol = self.mpc.value(np.asarray(msg.x))
            return Action(msg.step, int(StatusFlag.SOLVER_OK), 0, 1, 1, 1000 + self.steps, tuple(sol.u0))
        if isinstance(msg, SetTheta):
            if self.theta_fault is not None and self.set_theta + 1 == self.theta_fault[0] and not self.stale:
                self.set_theta += 1
                self.stale = True
                return Error(ErrorCode.OUT_OF_BOUNDS, int(MsgType.SET_THETA), 0) \
                    if self.theta_fault[1] == "refuse" else None
            self.stale = False
            self.mpc.theta = np.asarray(msg.theta)
            self.theta_hash = msg.theta_hash
            self.set_theta += 1
            return Ack(int(MsgType.SET_THETA))
        if isinstance(msg, StepTheta):
            fault = self.theta_fault is not None and self.set_theta + 1 == self.theta_fault[0]
            self.set_theta += 1
            if fault and self.theta_fault is not None and self.theta_fault[1] == "refuse":
                return Error(ErrorCode.OUT_OF_BOUNDS, int(MsgType.STEP_THETA), 0)
            self.mpc.theta = np.asarray(msg.theta)
            self.theta_hash = tagged_theta_hash(msg.theta_tag)
            reply = self.answer(Step(msg.step, msg.x, msg.p))
            if fault:
                self.theta_fault = None  # (the resent frame is answered)
                self.stale_steps += 1  # a step made whose answer is lost
                return None
            return reply
        if isinstance(msg, Reset):
            return Ack(int(MsgType.RESET))
        return None

    def run(self) -> None:
        parser = FrameParser()
        while not self.stopped.is_set():
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            for item in parser.feed(data):
                if not isinstance(item, Frame):
                    continue
                msg = decode(item, Precision.F64)
                bad = check_request(msg, self.limits) if not hasattr(msg, "code") else None
                reply = Error(bad.code, int(item.type), bad.detail) if bad is not None else self.answer(msg)
                if reply is not None:
                    os.write(self.fd, encode(reply, item.seq, Precision.F64))


STALE_U = 0.777  # the device double's action on a stale θ (after a failed SET_THETA)
holder: dict[str, Any] = {}  # the last device double and loop started (for runs that end in an error)


def _train(tmp_path: Path, name: str, reboot_at: int | None = None, cold: bool = False,
           theta_fault: tuple[int, str] | None = None, step_theta: bool = False
           ) -> tuple[dict, PythonDevice | None, Trainer]:
    cfg_path = tmp_path / "lti.toml"
    cfg_path.write_text(CONFIG)
    trainer = Trainer(load_config(cfg_path, output=tmp_path / name), progress_bar=False)
    if name == "alone":  # the workstation only
        return trainer.run(), None, trainer
    master, slave = os.openpty()
    tty.setraw(master)
    device_mpc = MPC(trainer.mpc.fns, trainer.config.mpc.solver, theta=trainer.theta0)
    double = PythonDevice(master, device_mpc, reboot_at, cold, theta_fault, step_theta)
    double.start()
    port = serial.Serial(os.ttyname(slave), timeout=0.01)
    device = Device(port, timeout=0.3, max_retries=3)
    device.connect()
    loop = DeviceInTheLoop(device, trainer.mpc.fns.problem_hash, trainer.mpc.fns.ntheta)
    trainer.agent.greedy_source = loop.action
    trainer.agent.greedy_prefetch = loop.prefetch  # as `rlmpc train --device` does (STEP_THETA written ahead)
    trainer.agent.greedy_episode_start = loop.episode_start  # (and RESET at each episode's start)
    holder["double"], holder["loop"] = double, loop
    try:
        summary = trainer.run()
        summary["device"] = loop.save(trainer.out)
    finally:
        double.stopped.set()
        port.close()
        os.close(slave)
        os.close(master)
        device_mpc.close()
    return summary, double, trainer


FRAMES = pytest.mark.parametrize("step_theta", [True, False], ids=["STEP_THETA", "pairs"])


@FRAMES
def test_learning_through_the_device_pushes_theta_and_learns_what_the_workstation_learns(
        tmp_path: Path, step_theta: bool) -> None:
    alone, _, _ = _train(tmp_path, "alone")
    through, double, trainer = _train(tmp_path, "device", step_theta=step_theta)
    assert double is not None
    d = through["device"]
    assert d["theta_frame"] == ("STEP_THETA" if step_theta else "SET_THETA+STEP")
    # one request per step with STEP_THETA (θ0 by SET_THETA, the handshake and calibration aside), two with pairs
    assert d["steps_sent_ahead"] == (299 if step_theta else 0)  # each update's θ, written before the solves
    low = 300 if step_theta else 600
    assert low <= d["link"]["requests"] <= low + 10
    assert d["steps"] == 301  # one device action per agent action (the episode's first, then one per step)
    assert d["distance_max"] < 1e-6  # the device double runs the same MPC at the same θ
    # θ0 at the start, then each update's θ before the next device step (the last update is not needed
    # for an action any more): as many pushes as updates
    assert double.set_theta == d["theta_pushes"] == trainer.agent.updates == 300
    for key in alone["theta_final"]:
        np.testing.assert_allclose(through["theta_final"][key], alone["theta_final"][key], rtol=0, atol=1e-6)
    assert abs(through["greedy_cost_final"] - alone["greedy_cost_final"]) <= 1e-6 * abs(alone["greedy_cost_final"])
    assert (tmp_path / "device" / "device_panel.png").stat().st_size > 10_000
    with np.load(tmp_path / "device" / "device_steps.npz") as steps:  # the panel marks where episodes start
        assert steps["episode_start"].tolist() == [0] and steps["distance"].size == 301


@FRAMES
def test_a_device_that_resets_gets_the_current_theta_again(tmp_path: Path, step_theta: bool) -> None:
    """A reset at step 120 (θ back to the exported one, the request unanswered): retried, shaken hands
    again, θ pushed again, no step lost; the same θ as a clean run through the same device. (The double
    starts every solve cold, so that its answers do not depend on a warm start the reset would lose.)"""
    clean, _, _ = _train(tmp_path, "clean", cold=True, step_theta=step_theta)
    faulty, _, _ = _train(tmp_path, "device", reboot_at=120, cold=True, step_theta=step_theta)
    d = faulty["device"]
    assert d["theta_repushes_after_reset"] == 1 and d["link"]["retries"] >= 1 and d["link"]["resyncs"] >= 1
    assert d["link"]["lost_steps"] == 0
    assert faulty["theta_final"] == clean["theta_final"]  # the reset cost no step and did not corrupt θ


def test_a_refused_step_theta_ends_the_run_without_a_step(tmp_path: Path) -> None:
    """The device refuses the θ of the 40th STEP_THETA (it keeps its θ and makes no step): the run ends
    with the refusal named, and no action of a stale θ reaches the agent."""
    with pytest.raises(TransportError, match="pushing θ to the device: STEP_THETA 40: the device refused it"):
        _train(tmp_path, "refused", theta_fault=(40, "refuse"), step_theta=True)
    double, loop = holder["double"], holder["loop"]
    assert double.set_theta == 40 and double.steps == 40  # the first step (θ0) and 39 frames; the refused one made none
    assert len(loop.record.distance) == 40 and max(loop.record.distance) < 1e-6


def test_a_lost_step_theta_reply_is_sent_again(tmp_path: Path) -> None:
    """The answer to the 40th STEP_THETA is lost (the double applied θ and stepped): the frame is sent
    again after a resync and its answer used; θ ends bit for bit where a clean run through the same
    device ends (the double solves every step cold, so a step made twice gives the same answer)."""
    clean, _, _ = _train(tmp_path, "clean", cold=True, step_theta=True)
    through, double, _ = _train(tmp_path, "lost", theta_fault=(40, "drop"), cold=True, step_theta=True)
    assert double is not None and double.stale_steps == 1 and double.set_theta == 301
    d = through["device"]
    assert d["link"]["retries"] >= 1 and d["link"]["lost_steps"] == 0 and d["steps"] == 301
    assert through["theta_final"] == clean["theta_final"]


def test_a_refused_set_theta_ends_the_run_and_its_stale_action_is_not_used(tmp_path: Path) -> None:
    """The device refuses the 40th SET_THETA (θ stays the previous one) and answers the STEP sent behind
    it on the stale θ: the run ends with the refusal named, and that action never reaches the agent."""
    with pytest.raises(TransportError, match="pushing θ to the device: SET_THETA: the device refused it"):
        _train(tmp_path, "refused", theta_fault=(40, "refuse"))
    double, loop = holder["double"], holder["loop"]
    assert double.set_theta == 40 and double.stale_steps == 1  # the STEP behind it ran on the old θ
    assert len(loop.record.distance) == 40 and max(loop.record.distance) < 1e-6  # … and was not used


def test_a_lost_set_theta_is_sent_again_before_a_step_counts(tmp_path: Path) -> None:
    """The 40th SET_THETA gets no answer (θ not applied) and the STEP behind it is answered on the stale
    θ: the host does not use that action, sends θ and the step again, and learns what the workstation
    learns alone (a STEP on the stale θ used as the policy would change the run)."""
    alone, _, _ = _train(tmp_path, "alone")
    through, double, _ = _train(tmp_path, "lost", theta_fault=(40, "drop"))
    assert double is not None and double.stale_steps == 1
    d = through["device"]
    assert d["link"]["retries"] >= 1 and d["distance_max"] < 1e-6 and d["steps"] == 301
    for key in alone["theta_final"]:
        np.testing.assert_allclose(through["theta_final"][key], alone["theta_final"][key], rtol=0, atol=1e-6)


def test_a_device_without_set_theta_is_refused(tmp_path: Path) -> None:
    cfg_path = tmp_path / "lti.toml"
    cfg_path.write_text(CONFIG)
    trainer = Trainer(load_config(cfg_path, output=tmp_path / "x"), progress_bar=False)

    class Fixed:
        def info(self) -> Info:
            fns = trainer.mpc.fns
            return Info(PROTOCOL_VERSION, 0, 1, 0, 4, 0, 0, fns.nx, fns.nu, 0, 0, board_bytes("mps2-an386"),
                        bytes(16), hash_prefix(fns.problem_hash), bytes(16))

    with pytest.raises(ValueError, match="does not offer SET_THETA"):
        DeviceInTheLoop(Fixed(), trainer.mpc.fns.problem_hash, trainer.mpc.fns.ntheta)  # type: ignore[arg-type]


def test_rlmpc_train_through_the_host_board_runs_the_c_firmware(tmp_path: Path) -> None:
    """The whole command on the host board (the controller firmware, compiled for this machine, on a
    pty): the bundle is exported and built into OUT/device, every action comes from the firmware,
    and θ is pushed with SET_THETA after every update."""
    from rlmpc.cli import main

    cfg = tmp_path / "lti.toml"
    cfg.write_text(CONFIG.replace("steps = 300", "steps = 150").replace("exploration = { type = \"gaussian\", "
                                                                         "std = 0.05 }\n", ""))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--device", "host"]) == 0
    device = __import__("json").loads((out / "device.json").read_text())
    assert device["board"] == "host" and device["steps"] == 151 and device["theta_pushes"] >= 100
    assert device["distance_median"] < 1e-4 and device["link"]["lost_steps"] == 0
    assert (out / "device" / "bundle" / "manifest.json").is_file() and (out / "device_panel.png").is_file()
    assert main(["train", str(cfg), "--out", str(out), "--quiet", "--device", "host"]) == 2  # not over a run
