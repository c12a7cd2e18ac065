"""Every bare-metal board answers HELLO with the bundle's hashes and reproduces the bundle's
reference test vectors (the workstation MPC at the same θ, cold starts) — and gives exactly the
answers of the host build of the same solver.  LTI (linear, condensed QP) on host, mps2-an386 and
stm32f405; the nonlinear cart-pole RTI on host and mps2-an386 (stm32f405: tests/test_hil_targets.py).

arm-none-eabi-gcc and qemu-system-arm are installed by the set-up: absence is a failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.firmware import Bundle, build_firmware, start_emulator
from rlmpc.codegen.mcu_export import TOLERANCES_U0, export_mcu
from rlmpc.codegen.protocol import hash_prefix
from rlmpc.codegen.protocol_spec import StatusFlag
from rlmpc.hil.transport import Device, open_link
from rlmpc.toolkit.registry import make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document

CASES = {"lti": ("host", "mps2-an386", "stm32f405"), "cartpole": ("host", "mps2-an386")}


@pytest.fixture(scope="module", params=sorted(CASES))
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    name = request.param
    root = tmp_path_factory.mktemp(name)
    fns = make_problem(name, {}).build()
    save_theta(root / "theta.json", theta_document(name, {}, fns, fns.theta.default()))
    return Bundle.load(export_mcu(root / "theta.json", root / "bundle"))


def _answers(bundle: Bundle, board: str, out: Path) -> list[tuple[float, ...]]:
    program = build_firmware(bundle.directory, board, out)
    with start_emulator(program, board) as emu:
        port = open_link(emu.serial_url)
        try:
            device = Device(port)
            info = device.connect()
            assert info.board_name == board
            assert info.manifest_hash == hash_prefix(bundle.manifest_hash)
            assert info.theta_hash == hash_prefix(bundle.manifest["theta"]["hash"])
            assert info.problem_hash == hash_prefix(bundle.manifest["problem"]["hash"])
            answers = []
            for x0, _ in bundle.test_vectors():
                device.reset()
                r = device.step(np.array(x0))
                assert r.flags & StatusFlag.SOLVER_OK, (board, x0, r)
                answers.append(r.u)
            return answers
        finally:
            emu.stop(port)
            port.close()


def test_manifest_names_the_vectors(bundle: Bundle) -> None:
    tv = bundle.manifest["test_vectors"]
    assert tv["count"] == len(bundle.test_vectors()) >= 20
    assert tv["tolerance_u0"] == TOLERANCES_U0[bundle.manifest["precision"]] == 1e-3


def test_every_board_reproduces_the_vectors_like_the_host_build(bundle: Bundle, tmp_path: Path) -> None:
    boards = CASES[bundle.manifest["problem"]["name"]]
    reference = np.array([u for _, u in bundle.test_vectors()])
    tol = bundle.manifest["test_vectors"]["tolerance_u0"]
    answers = {b: np.array(_answers(bundle, b, tmp_path / b)) for b in boards}
    linear = bundle.solver_header == "rlmpc_solver.h"
    for board in boards:
        err = np.max(np.abs(answers[board] - reference))
        assert err <= tol, (board, err)
        if linear:  # same solver, same float32 code: bit for bit
            np.testing.assert_array_equal(answers[board], answers["host"])
        else:  # the RTI calls sinf/cosf: newlib's and glibc's differ in the last bit
            np.testing.assert_allclose(answers[board], answers["host"], rtol=0, atol=1e-5)
