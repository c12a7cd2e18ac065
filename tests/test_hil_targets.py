"""The other firmware targets end to end: LTI on the embedded-Linux controller (the acados
bundle cross-compiled for linux-aarch64, under qemu-aarch64 on a pty), the nonlinear cart-pole
RTI on the STM32F405 (QEMU netduinoplus2), the acados x86-64 bundle on the host board, and
the firmware's fallback (previous plan shifted, safe action) and overrun flag.

aarch64-linux-gnu-gcc, qemu-aarch64, arm-none-eabi-gcc and qemu-system-arm are installed by
the set-up: their absence is a failure, not a skip.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.bundle import export_bundle
from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator
from rlmpc.codegen.mcu.generate_rti import STARTUP_ITERATIONS
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.codegen.protocol import hash_prefix
from rlmpc.codegen.protocol_spec import StatusFlag
from rlmpc.hil.runner import HilRun, run_hil
from rlmpc.hil.transport import Device, open_link
from rlmpc.hil.verdict import Thresholds, evaluate
from rlmpc.toolkit import MPC, SolverOptions
from rlmpc.toolkit.registry import make_env, make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document

STEPS = 60


@dataclass(frozen=True)
class Target:
    bundle: Bundle
    program: Path
    board: str
    reference: MPC


def _theta_file(root: Path, name: str) -> Path:
    fns = make_problem(name, {}).build()
    theta = fns.theta.default() + (0.01 if name == "lti" else 0.0)
    path = root / f"{name}.json"
    save_theta(path, theta_document(name, {}, fns, theta))
    return path


def _reference(bundle: Bundle) -> MPC:
    fns = make_problem(bundle.manifest["problem"]["name"], {}).build()
    return MPC(fns, SolverOptions(tol=1e-9), theta=np.array(bundle.manifest["theta"]["flat"]))


def _acados_lti(root: Path, target: str, board: str) -> Target:
    """The LTI acados bundle for ``target`` built as the firmware of ``board``."""
    bundle = Bundle.load(export_bundle(_theta_file(root, "lti"), target, root / "bundle"))
    return Target(bundle, build_firmware(bundle.directory, board, root / "fw"), board, _reference(bundle))


@pytest.fixture(scope="module")
def lti_aarch64(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return _acados_lti(tmp_path_factory.mktemp("a64"), "linux-aarch64", "linux-aarch64")


@pytest.fixture(scope="module")
def cartpole_stm32(tmp_path_factory: pytest.TempPathFactory) -> Target:
    root = tmp_path_factory.mktemp("cp")
    bundle = Bundle.load(export_mcu(_theta_file(root, "cartpole"), root / "bundle"))
    program = build_firmware(bundle.directory, "stm32f405", root / "fw")
    return Target(bundle, program, "stm32f405", _reference(bundle))


def _hil(target: Target, plant: str, steps: int = STEPS, seed: int = 3) -> HilRun:
    with start_emulator(target.program, target.board) as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            device.connect()
            return run_hil(device, make_env(plant, {}), target.reference, steps, seed,
                           manifest=target.bundle.manifest)
        finally:
            emu.stop(port)
            port.close()


# ---- linux-aarch64: the acados bundle as the controller ------------------------------------

def test_aarch64_build_carries_its_acados_libraries(lti_aarch64: Target) -> None:
    fw = lti_aarch64.program.parent
    assert {"libacados.so", "libhpipm.so", "libblasfeo.so"} <= {p.name for p in (fw / "lib").iterdir()}
    header = subprocess.run(["aarch64-linux-gnu-readelf", "-h", "-d", str(lti_aarch64.program)],
                            capture_output=True, text=True, check=True).stdout
    assert "AArch64" in header and "(RPATH)" in header and "[$ORIGIN/lib]" in header
    assert "text" in (fw / "size.txt").read_text()


def test_aarch64_hello_and_reference_test_vectors(lti_aarch64: Target) -> None:
    """HELLO gives the bundle's hashes; every test vector (cold start after RESET) matches
    the workstation's u0 to 1e-9 (acados on ARM vs x86-64: a different BLASFEO kernel path)."""
    bundle = lti_aarch64.bundle
    with start_emulator(lti_aarch64.program, "linux-aarch64") as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            info = device.connect()
            assert info.board_name == "linux-aarch64" and info.precision == 8
            assert info.manifest_hash == hash_prefix(bundle.manifest_hash)
            assert info.theta_hash == hash_prefix(bundle.manifest["theta"]["hash"])
            assert info.problem_hash == hash_prefix(bundle.manifest["problem"]["hash"])
            vectors = bundle.test_vectors()
            assert len(vectors) >= 10
            errors = []
            for x0, u0 in vectors:
                device.reset()
                r = device.step(np.array(x0))
                assert r.flags & StatusFlag.SOLVER_OK and r.iterations == 1 and r.qp_iterations > 0
                errors.append(float(np.max(np.abs(np.array(r.u) - u0))))
                assert r.step == 0  # RESET restarts the step count
            assert max(errors) <= 1e-9, max(errors)
        finally:
            emu.stop(port)
            port.close()
    assert emu.process.returncode == 0


def test_aarch64_lti_hil_passes(lti_aarch64: Target) -> None:
    run = _hil(lti_aarch64, "LtiGrosZanon")
    verdict = evaluate(run, Thresholds())
    assert verdict.passed, verdict.reasons
    assert run.board == "linux-aarch64" and run.cost_unit == "microseconds"
    assert run.identity["theta_matches_manifest"] and not run.lost.any()
    assert np.max(run.action_error) < 1e-8  # double precision, the same acados solver
    assert abs(run.total_cost / run.ref_total_cost - 1) < 1e-6


def test_acados_bundle_refuses_a_bare_metal_board(lti_aarch64: Target, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"target 'linux-aarch64' does not run on board 'mps2-an386'.*"
                                         r"\['linux-aarch64'\]"):
        build_firmware(lti_aarch64.bundle.directory, "mps2-an386", tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


# ---- stm32f405: the nonlinear cart-pole RTI ------------------------------------------------

def test_cartpole_rti_hil_on_stm32f405(cartpole_stm32: Target) -> None:
    """The float32 RTI reproduces the converged workstation MPC within 1e-3 along the closed
    loop: the first step after RESET iterates to convergence (start-up iterations), the others
    are one Gauss-Newton iteration each."""
    run = _hil(cartpole_stm32, "CartPole", steps=100)
    verdict = evaluate(run, Thresholds())
    assert verdict.passed, verdict.reasons
    assert run.board == "stm32f405" and run.cost_unit == "cycles" and run.precision == 4
    assert np.max(run.action_error) <= 1e-3
    assert abs(run.total_cost / run.ref_total_cost - 1) < 1e-3
    assert run.iterations[0] == STARTUP_ITERATIONS and np.all(run.iterations[1:] == 1)
    assert run.device_cost[0] > 3 * np.median(run.device_cost[1:]) > 0


# ---- the acados x86-64 bundle on the host board, and the fallback ---------------------------

@pytest.fixture(scope="module")
def lti_x86(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return _acados_lti(tmp_path_factory.mktemp("x86"), "linux-x86_64", "host")


def test_x86_acados_bundle_on_the_host_board_is_bit_exact(lti_x86: Target) -> None:
    with start_emulator(lti_x86.program, "host") as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            device.connect()
            for x0, u0 in lti_x86.bundle.test_vectors():
                device.reset()
                assert list(device.step(np.array(x0)).u) == u0
        finally:
            emu.stop(port)
            port.close()


def test_invalid_state_falls_back_to_the_previous_plan_shifted(lti_x86: Target) -> None:
    x = np.array([0.3, -0.1])
    prediction = lti_x86.reference.value(x).stage  # u_k of the workstation's plan from x
    with start_emulator(lti_x86.program, "host") as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            device.connect()
            device.reset()
            first = device.step(x)
            assert first.flags & StatusFlag.SOLVER_OK
            for k in (1, 2, 3):  # no finite state: the plan's input for this instant
                r = device.step(np.array([math.nan, 0.0]))
                assert r.flags & StatusFlag.FALLBACK and r.flags & StatusFlag.INVALID_INPUT
                assert not r.flags & StatusFlag.SOLVER_OK
                assert abs(r.u[0] - float(prediction("u", k)[0])) < 1e-8
            device.reset()  # no plan: the safe action (zero, inside |u| <= 1)
            assert device.step(np.array([math.inf, 0.0])).u == (0.0,)
        finally:
            emu.stop(port)
            port.close()


def test_overrun_flags_and_falls_back(lti_x86: Target, tmp_path: Path) -> None:
    program = build_firmware(lti_x86.bundle.directory, "host", tmp_path / "fw", budget=1, safe=[0.25])
    with start_emulator(program, "host") as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            device.connect()
            for _ in range(3):  # every solve takes more than 1 µs: late, so never applied
                r = device.step(np.array([0.3, -0.1]))
                assert r.flags & StatusFlag.OVERRUN and r.flags & StatusFlag.FALLBACK
                assert r.cost > 1 and r.u == (0.25,)
        finally:
            emu.stop(port)
            port.close()


def test_more_gauss_newton_iterations_per_step(cartpole_stm32: Target, tmp_path: Path) -> None:
    """On a transient where one real-time iteration is 1e-3 from the converged MPC (seed 8: the
    cart runs into its bound), two iterations per step (``sqp_iterations=2``) are within 1e-4."""
    errors = {}
    for k in (1, 2):
        program = build_firmware(cartpole_stm32.bundle.directory, "host", tmp_path / f"k{k}",
                                 sqp_iterations=k)
        run = _hil(Target(cartpole_stm32.bundle, program, "host", cartpole_stm32.reference), "CartPole",
                   steps=30, seed=8)
        assert np.all(run.iterations[1:] == k) and run.iterations[0] == STARTUP_ITERATIONS
        errors[k] = float(np.max(run.action_error))
    assert errors[1] > 5e-4 and errors[2] < 1e-4, errors
    with pytest.raises(ValueError, match=r"sqp_iterations: expected 1 to 100, got 0"):
        build_firmware(cartpole_stm32.bundle.directory, "host", tmp_path / "k0", sqp_iterations=0)


def test_unconverged_real_time_iteration_is_flagged_inexact(tmp_path: Path) -> None:
    """acados reports success for a real-time iteration whose QP stopped at its iteration limit;
    the exported controller flags such a step INEXACT (still SOLVER_OK: u is the last iterate),
    exactly where the workstation's MPC with the same options calls the solve unverified."""
    capped = SolverOptions(qp_max_iter=14, hpipm_mode="SPEED", fallback_hpipm_mode=None)
    bundle = Bundle.load(export_bundle(_theta_file(tmp_path, "lti"), "linux-x86_64", tmp_path / "bundle",
                                       options=capped))
    program = build_firmware(bundle.directory, "host", tmp_path / "fw")
    as_exported = dataclasses.replace(capped, merge_soft_pairs=False)  # (exports keep the problem's rows)
    workstation = MPC(make_problem("lti", {}).build(), as_exported, theta=np.array(bundle.manifest["theta"]["flat"]))
    states = [np.array(x) for x in ([0.9, 0.8], [-0.4, 0.9], [0.3, -0.1], [0.0, 0.0], [0.5, 0.5], [1.1, 0.2])]
    unverified = []
    for x in states:
        workstation.reset()
        unverified.append(not workstation.value(x).success)
    assert 0 < sum(unverified) < len(states), unverified  # both kinds among the states
    with start_emulator(program, "host") as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            device.connect()
            flags = []
            for x in states:
                device.reset()
                flags.append(device.step(x).flags)
        finally:
            emu.stop(port)
            port.close()
    assert all(f & StatusFlag.SOLVER_OK for f in flags)
    assert [bool(f & StatusFlag.INEXACT) for f in flags] == unverified, flags
