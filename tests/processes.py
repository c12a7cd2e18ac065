"""Helpers of the tests that start firmware processes (emulators, host programs)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import serial

from rlmpc.codegen.firmware import Bundle, Emulator, build_firmware, start_emulator
from rlmpc.codegen.firmware_link import FirmwareLink
from rlmpc.codegen.mcu.host_check import random_states
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.toolkit import MPC, SolverOptions
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.problems import lti_mpc
from rlmpc.toolkit.theta_file import save_theta, theta_document


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (so a stopped emulator counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_running(path: Path) -> list[int]:
    """Live pids whose command line mentions ``path`` (QEMU with an ELF, a host program)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline and alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class LtiBundle:
    """The LTI problem's MCU bundle at its default θ, with a host reference of the same solver."""

    bundle: Bundle
    reference: Path  # host float32 line harness of the same solver
    states: np.ndarray  # float32-exact reference states


def _export_lti(root: Path) -> tuple[ProblemFunctions, Bundle]:
    """The LTI problem at its default θ (``root/theta.json``) and its MCU bundle (``root/bundle``)."""
    fns = lti_mpc().build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    return fns, Bundle.load(export_mcu(root / "theta.json", root / "bundle"))


def lti_bundle(root: Path, n_states: int) -> LtiBundle:
    """Export the LTI bundle under ``root``; ``n_states`` reference states (two of them extreme)."""
    fns, bundle = _export_lti(root)
    reference = build_host_harness(bundle, root / "reference" / "harness")
    states = np.vstack([random_states(fns, n_states - 2, 0), [[0.9, 0.9], [0.05, -0.6]]])
    return LtiBundle(bundle, reference, states.astype(np.float32).astype(float))


@dataclass(frozen=True)
class LtiPrograms:
    """The LTI bundle at its default θ, its firmware for some boards, and the workstation MPC."""

    bundle: Bundle
    programs: dict[str, Path]
    reference: MPC  # at the bundle's θ, converged (the HIL reference)


def lti_programs(root: Path, boards: Sequence[str]) -> LtiPrograms:
    """Export the LTI bundle under ``root`` and build its firmware for ``boards``."""
    fns, bundle = _export_lti(root)
    programs = {b: build_firmware(bundle.directory, b, root / b) for b in boards}
    reference = MPC(fns, SolverOptions(tol=1e-9), theta=np.array(bundle.manifest["theta"]["flat"]))
    return LtiPrograms(bundle, programs, reference)


@contextmanager
def connected(program: Path, board: str) -> Iterator[tuple[Emulator, FirmwareLink]]:
    """Start ``program`` on its (emulated) board and say HELLO; stopped and checked gone on exit."""
    emu = start_emulator(program, board)
    port = None
    try:
        port = serial.serial_for_url(emu.serial_url, timeout=0.01)
        link = FirmwareLink(port)
        link.hello()  # repeated until INFO: QEMU's USART drops bytes sent before it is enabled
        yield emu, link
    finally:
        emu.stop(port)
        if port is not None:
            port.close()
        assert not alive(emu.process.pid)
