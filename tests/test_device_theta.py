"""Run-time θ (SET_THETA) and parameters p (STEP_PARAMS) on the device, without rebuilding.

The LTI bundle (float32) on QEMU mps2-an386 takes a second θ and then matches the workstation MPC
at that θ; bad θ frames are refused with the protocol's codes and leave θ as it was.  A tracking
problem whose reference is p follows a p that changes during a HIL run on the host board.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from processes import connected

from rlmpc.codegen.firmware import Bundle, build_firmware
from rlmpc.codegen.firmware_link import FirmwareLink
from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.mcu.host_check import random_states
from rlmpc.codegen.mcu.qemu_bench import qemu_available
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.codegen.protocol import (
    Ack,
    Action,
    Error,
    Hello,
    Info,
    Reset,
    SetTheta,
    Step,
    StepTheta,
    StepThetaDelta,
    encode,
    encode_frame,
    hash_prefix,
    tagged_theta_hash,
    theta_delta,
    theta_tag,
)
from rlmpc.codegen.protocol_spec import Capability, ErrorCode, MsgType
from rlmpc.hil.runner import run_hil
from rlmpc.hil.transport import Device, DeviceRefusalError
from rlmpc.toolkit import MPC, SolverOptions
from rlmpc.toolkit.envs import LtiGrosZanon
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.registry import PROBLEMS
from rlmpc.toolkit.theta_file import save_theta, theta_document


def _export(root: Path, name: str, precision: str = "float32") -> tuple[ProblemFunctions, Bundle]:
    fns = PROBLEMS[name]().build()
    save_theta(root / "theta.json", theta_document(name, {}, fns, fns.theta.default()))
    return fns, Bundle.load(export_mcu(root / "theta.json", root / "bundle", precision=precision))


def second_theta(fns: ProblemFunctions) -> np.ndarray:
    """Another θ of the LTI problems: a different model and a tighter upper state bound."""
    d = {k: np.array(v, dtype=float) for k, v in fns.theta.unflatten(fns.theta.default()).items()}
    d["A"] = d["A"] + np.array([[-0.05, 0.08], [0.02, 0.06]])
    d["B"] = 1.3 * d["B"]
    d["x_ub"] = d["x_ub"] - 0.1
    return fns.theta.flatten(d)


def _actions(link: FirmwareLink, states: np.ndarray) -> np.ndarray:
    out = []
    for k, x in enumerate(states):
        assert isinstance(link.request(Reset()), Ack)
        reply = link.request(Step(k, x))
        out.append(reply.u)
    return np.array(out, dtype=float)


@pytest.fixture(scope="module")
def lti(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProblemFunctions, Bundle, Path]:
    assert qemu_available(), "qemu-system-arm / arm-none-eabi-gcc missing: run make setup"
    root = tmp_path_factory.mktemp("theta")
    fns, bundle = _export(root, "lti")
    return fns, bundle, build_firmware(bundle.directory, "mps2-an386", root / "mps2-an386")


def test_set_theta_on_mps2_matches_the_mpc_at_the_new_theta(lti: tuple[ProblemFunctions, Bundle, Path]) -> None:
    fns, bundle, program = lti
    states = random_states(fns, 10, 5).astype(np.float32).astype(float)
    th1 = second_theta(fns)
    u_old = np.array([MPC(fns, SolverOptions(tol=1e-9)).value(x).u0 for x in states])
    u_new = np.array([MPC(fns, SolverOptions(tol=1e-9), theta=th1).value(x).u0 for x in states])
    assert np.max(np.abs(u_new - u_old)) > 1e-2  # the second θ is a different controller
    problem = hash_prefix(bundle.manifest["problem"]["hash"])
    with connected(program, "mps2-an386") as (_, link):
        info = link.hello()
        assert info.ntheta == fns.ntheta and info.capabilities & Capability.SET_THETA
        assert np.max(np.abs(_actions(link, states) - u_old)) < 1e-5
        new_hash = hash_prefix(theta_hash(th1))
        assert link.request(SetTheta(problem, new_hash, tuple(th1))) == Ack(int(MsgType.SET_THETA))
        reply = link.request(Hello())
        assert isinstance(reply, Info) and reply.theta_hash == new_hash
        assert np.max(np.abs(_actions(link, states) - u_new)) < 1e-5
        # refusals: θ stays the one in use
        bad = th1.copy()
        bad[3] = fns.theta.upper()[3] + 1.0
        assert link.request(SetTheta(problem, bytes(16), tuple(bad))) == \
            Error(ErrorCode.OUT_OF_BOUNDS, MsgType.SET_THETA, 3)
        assert link.request(SetTheta(bytes(16), bytes(16), tuple(th1))) == \
            Error(ErrorCode.BAD_HASH, MsgType.SET_THETA, 0)
        assert link.request(SetTheta(problem, bytes(16), tuple(th1[:-1]))) == \
            Error(ErrorCode.BAD_DIMENSION, MsgType.SET_THETA, fns.ntheta)
        payload = problem + bytes(16) + len(th1).to_bytes(2, "little") + bytes(4 * len(th1) - 1)
        link.send_raw(encode_frame(MsgType.SET_THETA, 9, payload))
        assert link.receive(9, 2.0) == Error(ErrorCode.BAD_LENGTH, MsgType.SET_THETA, len(payload))
        assert link.request(Hello()).theta_hash == new_hash
        assert np.max(np.abs(_actions(link, states) - u_new)) < 1e-5


class CorruptFirst:
    """A port that flips one payload bit of the first ``n`` frames of type ``ftype`` it writes."""

    def __init__(self, port: Any, ftype: int, n: int = 1) -> None:
        self.port, self.ftype, self.left = port, ftype, n

    def write(self, data: bytes) -> Any:
        if self.left and len(data) > 8 and data[2] == self.ftype:
            self.left -= 1
            data = data[:10] + bytes([data[10] ^ 0x04]) + data[11:]
        return self.port.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)


def test_step_theta_on_mps2_is_set_theta_and_step_in_one_frame(lti: tuple[ProblemFunctions, Bundle, Path]) -> None:
    """STEP_THETA: θ and the step in one frame (92 bytes instead of 128); its ACTION is bit for bit the
    one of SET_THETA, then STEP from a cold start; INFO names θ by the tag; θ out of its bounds or not
    finite is refused with SET_THETA's codes (no step, θ in use kept); a corrupted frame is retried."""
    fns, bundle, program = lti
    states = random_states(fns, 6, 7).astype(np.float32).astype(float)
    th1 = second_theta(fns)
    tag = theta_tag(theta_hash(th1))
    problem = hash_prefix(bundle.manifest["problem"]["hash"])
    u_mpc = np.array([MPC(fns, SolverOptions(tol=1e-9), theta=th1).value(x).u0 for x in states])
    assert len(encode(StepTheta(0, tag, states[0], (), th1))) == 92
    with connected(program, "mps2-an386") as (_, link):
        assert link.hello().capabilities & Capability.STEP_THETA
        assert link.request(SetTheta(problem, hash_prefix(theta_hash(th1)), tuple(th1))) == Ack(int(MsgType.SET_THETA))
        u_pair = _actions(link, states)  # SET_THETA, then cold STEPs (RESET before each)
        th0 = fns.theta.default()
        assert link.request(SetTheta(problem, hash_prefix(theta_hash(th0)), tuple(th0))) == \
            Ack(int(MsgType.SET_THETA))  # back to θ0: the frames below must set θ1
        assert np.max(np.abs(_actions(link, states) - u_pair)) > 1e-2
        u_frame = []
        for k, x in enumerate(states):
            reply = link.request(StepTheta(100 + k, tag, x, (), th1))
            assert isinstance(reply, Action) and reply.step == 100 + k
            u_frame.append(reply.u)
        assert np.array_equal(np.array(u_frame), u_pair)  # bit for bit
        assert np.max(np.abs(np.array(u_frame) - u_mpc)) < 1e-5
        assert link.request(Hello()).theta_hash == tagged_theta_hash(tag)
        # refusals: SET_THETA's codes, θ in use kept (INFO and the answers unchanged), no step answered
        bad = th1.copy()
        bad[3] = fns.theta.upper()[3] + 1.0
        refused = link.request(StepTheta(1, 5, states[0], (), bad))
        assert refused == Error(ErrorCode.OUT_OF_BOUNDS, MsgType.STEP_THETA, 3)
        bad = th1.copy()
        bad[0] = np.nan
        refused = link.request(StepTheta(1, 5, states[0], (), bad))
        assert refused == Error(ErrorCode.OUT_OF_BOUNDS, MsgType.STEP_THETA, 0)
        assert link.request(StepTheta(1, 5, states[0], (), th1[:-1])) == \
            Error(ErrorCode.BAD_DIMENSION, MsgType.STEP_THETA, fns.ntheta)
        assert link.request(StepTheta(1, 5, states[0][:1], (), th1)) == \
            Error(ErrorCode.BAD_DIMENSION, MsgType.STEP_THETA, fns.nx)
        assert link.request(Hello()).theta_hash == tagged_theta_hash(tag)
        assert np.array_equal(_actions(link, states), u_pair)
        # a corrupted STEP_THETA (device: BAD_CRC) is sent again after a resync; the same answer
        device = Device(CorruptFirst(link.port, MsgType.STEP_THETA))
        device.connect()
        result = device.step_theta(tag, th1, states[2])
        assert device.stats.retries == 1 and "code 1" in device.stats.errors[0]  # ERROR BAD_CRC
        assert result.retries == 1 and np.array_equal(np.array(result.u), u_pair[2])
        # a refusal through the transport is final (DeviceRefusalError), not retried
        bad = th1.copy()
        bad[5] = fns.theta.lower()[5] - 1.0
        with pytest.raises(DeviceRefusalError, match=r"code 8 .*detail 5"):
            device.step_theta(tag, bad, states[2])
        assert device.stats.retries == 1



def test_step_theta_delta_on_mps2_rebuilds_theta_bit_for_bit(lti: tuple[ProblemFunctions, Bundle, Path]) -> None:
    """STEP_THETA_DELTA: θ as differences to the θ in use; the device's ACTION is bit for bit STEP_THETA's; a
    base that is not the θ in use is refused (BAD_HASH, no step, θ kept); through the transport: deltas
    where the device offers them, a refused base and a corrupted delta both answered by STEP_THETA."""
    fns, _, program = lti
    states = random_states(fns, 4, 8).astype(np.float32).astype(float)
    th0, th1 = fns.theta.default(), second_theta(fns)
    th_a = th0 + 0.01 * (th1 - th0)  # a base near θ1, as while learning
    tag_a, tag1 = theta_tag(theta_hash(th_a)), theta_tag(theta_hash(th1))
    with connected(program, "mps2-an386") as (_, link):
        assert link.hello().capabilities & Capability.THETA_DELTA
        u_full, u_delta = [], []
        for k, x in enumerate(states):
            reply = link.request(StepTheta(k, tag1, x, (), th1))
            assert isinstance(reply, Action)
            u_full.append(reply.u)
            assert isinstance(link.request(StepTheta(50 + k, tag_a, x, (), th_a)), Action)  # the base
            delta = theta_delta(th_a, th1)
            reply = link.request(StepThetaDelta(100 + k, tag_a, tag1, fns.ntheta, x, (), delta))
            assert isinstance(reply, Action) and reply.step == 100 + k
            u_delta.append(reply.u)
        assert np.array_equal(np.array(u_delta), np.array(u_full))  # bit for bit
        assert len(encode(StepThetaDelta(0, tag_a, tag1, fns.ntheta, states[0], (), delta))) < 92
        assert link.request(Hello()).theta_hash == tagged_theta_hash(tag1)
        # a base that is not the θ in use: refused, θ kept, no step
        refused = link.request(StepThetaDelta(7, tag_a, 5, fns.ntheta, states[0], (), theta_delta(th_a, th0)))
        assert refused == Error(ErrorCode.BAD_HASH, MsgType.STEP_THETA_DELTA, 0)
        assert link.request(Hello()).theta_hash == tagged_theta_hash(tag1)
        # the transport: a delta from the θ last acknowledged
        device = Device(link.port)
        device.connect()
        device.step_theta(tag_a, th_a, states[0])  # no base yet: STEP_THETA
        result = device.step_theta(tag1, th1, states[1])
        assert device.stats.theta_deltas == 1 and np.array_equal(np.array(result.u), np.array(u_full[1]))
        # the device runs another θ than the transport's base (here: behind its back): BAD_HASH, then STEP_THETA
        assert isinstance(link.request(StepTheta(9, tag_a, states[0], (), th_a)), Action)
        result = device.step_theta(tag1, th1, states[2])
        assert device.stats.theta_delta_refusals == 1 and np.array_equal(np.array(result.u), np.array(u_full[2]))
        assert device.stats.retries == 0
        # a corrupted delta (BAD_CRC) is sent again as STEP_THETA after a resync: the same answer
        device.step_theta(tag_a, th_a, states[0])
        device.port = CorruptFirst(link.port, MsgType.STEP_THETA_DELTA)
        device.link = FirmwareLink(device.port, device.precision)
        result = device.step_theta(tag1, th1, states[3])
        assert device.stats.retries == 1 and "code 1" in device.stats.errors[-1]
        assert result.retries == 1 and np.array_equal(np.array(result.u), np.array(u_full[3]))
        assert device.stats.theta_deltas == 2  # (the second: the delta to θ_a above)


def _after_set_theta(fns: ProblemFunctions, bundle: Bundle, program: Path, th: np.ndarray,
                     states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The device's u0 at ``states`` after SET_THETA ``th`` (on mps2-an386), and the workstation's."""
    reference = MPC(fns, SolverOptions(tol=1e-9), theta=th)
    u_ref = np.array([reference.value(x).u0 for x in states])
    problem = hash_prefix(bundle.manifest["problem"]["hash"])
    with connected(program, "mps2-an386") as (_, link):
        assert link.request(SetTheta(problem, hash_prefix(theta_hash(th)), tuple(th))) == Ack(int(MsgType.SET_THETA))
        return _actions(link, states), u_ref

def test_set_theta_far_from_theta0_at_violated_soft_bounds_on_mps2(lti: tuple[ProblemFunctions, Bundle, Path]) -> None:
    """θ far from θ0 (the model A, B of the true plant, back-offs and offsets moved) and states beyond
    the soft state bounds: the device's float32 precomputation (issue #16) and solve match the
    workstation MPC at that θ to 1e-5."""
    from rlmpc.toolkit.problems.lti import A_TRUE, B_TRUE

    fns, bundle, program = lti
    d = {k: np.array(v, dtype=float) for k, v in fns.theta.unflatten(fns.theta.default()).items()}
    d["A"], d["B"] = A_TRUE.copy(), B_TRUE.copy()
    d["x_lb"], d["x_ub"], d["b"] = np.array([0.1, -0.2]), np.array([-0.15, 0.3]), np.array([0.02, -0.03])
    d["f"] = np.array([0.3, -0.2, 0.1])
    th = fns.theta.flatten(d)
    rng = np.random.default_rng(3)
    states = np.column_stack([rng.uniform(-0.3, 1.2, 24), rng.uniform(-0.6, 0.6, 24)])
    states = states.astype(np.float32).astype(float)
    u_dev, u_ref = _after_set_theta(fns, bundle, program, th, states)
    violated = (states[:, 0] < d["x_lb"][0]) | (states[:, 0] > 1.0 + d["x_ub"][0])
    assert violated.sum() >= 5  # the soft bounds are violated at the start of these plans
    assert np.max(np.abs(u_dev - u_ref)) < 1e-5


def test_linear_slack_penalties_are_exact_after_set_theta_on_mps2(lti: tuple[ProblemFunctions, Bundle, Path]) -> None:
    """The θ of step 22 of the LTI learning run (the model offset b and the back-off learned a little)
    and the states where the device was off most: the plan must violate x1 >= x_lb for several
    stages, where DAQP's stand-in for the linear penalty (a quadratic weight 1e-4 in float32) moved u
    by up to 1.6e-3; the solver's exact polish brings it to the workstation's within 1e-5 (without the
    polish this test fails: 1.54e-3 on mps2-an386)."""
    fns, bundle, program = lti
    d = {k: np.array(v, dtype=float) for k, v in fns.theta.unflatten(fns.theta.default()).items()}
    d["V0"] = d["V0"] + 0.021
    d["x_lb"] = d["x_lb"] + np.array([0.023, 0.0]).reshape(d["x_lb"].shape)
    d["b"] = d["b"] + np.array([0.085, 0.048]).reshape(d["b"].shape)
    d["f"] = d["f"] + np.array([0.012, -0.009, -0.023]).reshape(d["f"].shape)
    d["A"] = d["A"] + np.array([[0.013, -0.01], [0.001, 0.001]])
    d["B"] = d["B"] + np.array([[-0.024], [-0.013]])
    th = fns.theta.flatten(d)
    states = np.array([[-0.197, -0.016], [-0.183, 0.068], [-0.21, 0.177], [-0.167, 0.12], [-0.156, 0.083],
                       [-0.133, 0.064], [-0.149, 0.161], [-0.147, 0.147], [-0.107, 0.118], [-0.089, 0.099]])
    states = states.astype(np.float32).astype(float)
    u_dev, u_ref = _after_set_theta(fns, bundle, program, th, states)
    assert np.all(np.abs(u_ref) < 0.99)  # inside the input bounds: the linear penalties decide u
    assert np.max(np.abs(u_dev - u_ref)) < 1e-5


def test_hil_follows_a_reference_given_as_p(tmp_path: Path) -> None:
    fns, bundle = _export(tmp_path, "lti_tracking")
    program = build_firmware(bundle.directory, "host", tmp_path / "host")
    steps = 36
    schedule = np.repeat([[0.2], [0.8], [0.5]], steps // 3, axis=0)  # three set-points
    reference = MPC(fns, SolverOptions(tol=1e-9))
    with connected(program, "host") as (_, link):
        device = Device(link.port)
        assert device.connect().capabilities & Capability.STEP_PARAMS
        run = run_hil(device, LtiGrosZanon(noise=False), reference, steps, seed=1, x0=[0.5, 0.0],
                      params=schedule, manifest=bundle.manifest)
    assert np.array_equal(run.params, schedule)
    assert run.lost.sum() == 0 and float(np.max(run.action_error)) < 1e-5
    fixed = MPC(fns, SolverOptions(tol=1e-9))  # at the default p: what a device ignoring p would do
    u_fixed = np.array([fixed.value(x).u0 for x in run.states[:-1]])
    assert np.max(np.abs(u_fixed - run.actions)) > 1e-2
    # the position follows the set-points: down to 0.2, up towards 0.8, back down towards 0.5
    ends = run.states[[12, 24, 36], 0]
    assert ends[0] < 0.4 and ends[1] > ends[0] + 0.2 and ends[2] < ends[1] - 0.1, ends


def test_set_theta_on_an_acados_aarch64_bundle(tmp_path: Path) -> None:
    from rlmpc.codegen.bundle import export_bundle

    fns = PROBLEMS["lti"]().build()
    save_theta(tmp_path / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = Bundle.load(export_bundle(tmp_path / "theta.json", "linux-aarch64", tmp_path / "bundle"))
    program = build_firmware(bundle.directory, "linux-aarch64", tmp_path / "fw")
    states = random_states(fns, 6, 5)
    th1 = second_theta(fns)
    u_new = np.array([MPC(fns, SolverOptions(), theta=th1).value(x).u0 for x in states])
    u_old = np.array([MPC(fns, SolverOptions()).value(x).u0 for x in states])
    assert np.max(np.abs(u_new - u_old)) > 1e-2
    problem = hash_prefix(bundle.manifest["problem"]["hash"])
    with connected(program, "linux-aarch64") as (_, link):
        info = link.hello()
        assert info.ntheta == fns.ntheta and info.capabilities & Capability.SET_THETA
        assert np.max(np.abs(_actions(link, states) - u_old)) < 1e-9
        assert link.request(SetTheta(problem, hash_prefix(theta_hash(th1)), tuple(th1))) == \
            Ack(int(MsgType.SET_THETA))
        assert np.max(np.abs(_actions(link, states) - u_new)) < 1e-9
        bad = th1.copy()
        bad[0] = np.nan
        assert link.request(SetTheta(problem, bytes(16), tuple(bad))) == \
            Error(ErrorCode.OUT_OF_BOUNDS, MsgType.SET_THETA, 0)
        assert link.request(SetTheta(bytes(16), bytes(16), tuple(th1))) == \
            Error(ErrorCode.BAD_HASH, MsgType.SET_THETA, 0)
        assert np.max(np.abs(_actions(link, states) - u_new)) < 1e-9
        # STEP_THETA on the acados bundle: θ1 again with the step, refusals with SET_THETA's codes
        assert info.capabilities & Capability.STEP_THETA
        reply = link.request(StepTheta(7, 1, states[0], (), th1))
        assert isinstance(reply, Action) and abs(reply.u[0] - u_new[0]) < 1e-9
        refused = link.request(StepTheta(8, 1, states[0], (), bad))
        assert refused == Error(ErrorCode.OUT_OF_BOUNDS, MsgType.STEP_THETA, 0)


def test_rti_solver_takes_theta_and_p_at_run_time(tmp_path: Path) -> None:
    """The nonlinear cart-pole (RTI) on the host board: after SET_THETA (heavier pole, shorter) and
    with a reference p, cold starts (SQP to convergence) match the workstation MPC at that θ and p."""
    fns, bundle = _export(tmp_path, "cartpole")
    program = build_firmware(bundle.directory, "host", tmp_path / "host")
    states = np.array([x for x, _ in bundle.test_vectors()[:5]])
    th1 = fns.theta.default().copy()
    th1[fns.theta.names.index("m_pole")] *= 1.3
    th1[fns.theta.names.index("length")] *= 0.85
    p1 = fns.params.default() + np.array([0.1, 0.0, 0.0, 0.0])
    mpc = MPC(fns, SolverOptions(tol=1e-9), theta=th1)
    mpc.p = p1
    u_new = np.array([mpc.value(x).u0 for x in states])
    u_old = np.array([MPC(fns, SolverOptions(tol=1e-9)).value(x).u0 for x in states])
    assert np.max(np.abs(u_new - u_old)) > 1e-2
    with connected(program, "host") as (_, link):
        info = link.hello()
        assert info.capabilities & Capability.SET_THETA and info.capabilities & Capability.STEP_PARAMS
        assert link.request(SetTheta(hash_prefix(bundle.manifest["problem"]["hash"]), bytes(16), tuple(th1))) \
            == Ack(int(MsgType.SET_THETA))
        u_dev = []
        for k, x in enumerate(states):
            assert isinstance(link.request(Reset()), Ack)
            u_dev.append(link.request(Step(k, x, p1)).u)
    assert np.max(np.abs(np.array(u_dev) - u_new)) < 1e-4


def test_unicycle_follows_waypoints_given_by_the_plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unicycle plugin's plant reports its waypoint schedule as info["p"]: `rlmpc hil` sends it
    with each STEP to the RTI device (host board), the SQP_RTI reference uses the same p: PASS."""
    import json
    import shutil
    import sys

    from rlmpc.cli import main
    from rlmpc.toolkit.registry import ENVS

    shutil.copyfile(Path(__file__).parents[1] / "examples" / "unicycle.py", tmp_path / "my_unicycle_p.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLMPC_PLUGINS", "my_unicycle_p")
    monkeypatch.setattr("sys.path", ["", *sys.path])
    try:
        assert main(["theta", "init", "unicycle", "--plant", "Unicycle", "--out", "theta.json"]) == 0
        assert main(["export", "--theta", "theta.json", "--target", "cortex-m4", "--out", "mcu"]) == 0
        assert main(["hil", "mcu", "--target", "host", "--steps", "15", "--plant-params",
                     '{"switch_every": 5}', "--out", "hil"]) == 0
    finally:
        PROBLEMS.pop("unicycle", None)
        ENVS.pop("Unicycle", None)
        sys.modules.pop("my_unicycle_p", None)
    doc = json.loads((tmp_path / "hil" / "hil.json").read_text())
    sent = np.array(doc["trace"]["params"])
    assert sent.shape == (15, 3) and len({tuple(r) for r in sent}) == 3  # three waypoints
    assert doc["verdict"] == "PASS"
