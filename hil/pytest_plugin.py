"""pytest plugin for HIL tests: ``--hil-target``, ``--hil-port``, ``--hil-bundle``; fixtures
``dut`` and ``hil_run``; the raw serial log of every test that used the device.

Load it with ``-p rlmpc.hil.pytest_plugin`` or ``pytest_plugins = ["rlmpc.hil.pytest_plugin"]`` (or the
``pytest11`` entry point ``rlmpc_hil``).

* ``--hil-target host|mps2-an386|stm32f405|linux-aarch64`` (default ``host``): the board to
  build for and start when no port is given.
* ``--hil-port URL`` (and ``--hil-baud``): a real or already-running device (any pyserial URL);
  nothing is built or started and the device is not stopped afterwards.
* ``--hil-bundle DIR``: a bundle folder; default: an LTI bundle at the default θ, exported once
  per session into a temporary folder (bare metal; for ``linux-aarch64`` the acados bundle).

Fixtures:

* ``hil_bundle`` (session): the :class:`rlmpc.codegen.firmware.Bundle`.
* ``hil_device`` (module): the connected :class:`rlmpc.hil.transport.Device`; the emulator / host
  program is started for the module and stopped (EXIT, then signals) at its end.
* ``dut`` (per test): the module's device, with the raw serial log of this test written to
  ``<tmp_path>/serial.log`` at teardown; the path is in the test report's ``user_properties``
  (``hil_serial_log``) and in a report section.
* ``hil_run`` (per test): ``hil_run(steps=50, seed=0, thresholds=None, device=None, **kw)``
  runs :func:`rlmpc.hil.runner.run_hil` against the bundle's plant with the workstation MPC as the
  reference, evaluates it and writes the report into ``<tmp_path>/hil``; returns a
  :class:`HilResult` (``run``, ``verdict``, ``paths``).  A run that loses its link ends early and
  fails its verdict (``completed``); on Ctrl-C the partial report and serial log are written,
  the number of steps run is printed, and the interrupt goes on to pytest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rlmpc.codegen.boards import ALL_BOARDS as TARGETS

LOG_KEY = "hil_serial_log"
REPORT_KEY = "hil_report"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rlmpc-hil", "hardware-in-the-loop (rlmpc)")
    group.addoption("--hil-target", choices=TARGETS, default="host",
                    help="board to build and start when no --hil-port is given (default host)")
    group.addoption("--hil-port", default=None,
                    help="serial URL of a real or already-running device (nothing is started)")
    group.addoption("--hil-baud", type=int, default=115200, help="line speed of --hil-port (default 115200)")
    group.addoption("--hil-bundle", default=None,
                    help="bare-metal bundle folder (default: an LTI bundle built once per session)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: a test that talks to the controller firmware")
    if os.environ.get("RLMPC_PLUGINS"):  # the user's own problems and plants
        from rlmpc.toolkit.registry import load_plugins

        try:
            load_plugins()
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None


@dataclass
class HilResult:
    run: Any  # rlmpc.hil.runner.HilRun
    verdict: Any  # rlmpc.hil.verdict.Verdict
    paths: dict[str, Path]

    @property
    def passed(self) -> bool:
        return bool(self.verdict.passed)


@pytest.fixture(scope="session")
def hil_target(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("hil_target"))


@pytest.fixture(scope="session")
def hil_bundle(pytestconfig: pytest.Config, hil_target: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rlmpc.codegen.firmware import Bundle

    given = pytestconfig.getoption("hil_bundle")
    if given:
        return Bundle.load(given)
    if pytestconfig.getoption("hil_port"):
        raise pytest.UsageError("--hil-port needs --hil-bundle: the bundle the device was flashed with")
    from rlmpc.codegen.mcu_export import export_mcu
    from rlmpc.toolkit.problems import lti_mpc
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    root = tmp_path_factory.mktemp("hil_bundle")
    fns = lti_mpc().build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    if hil_target == "linux-aarch64":
        from rlmpc.codegen.bundle import export_bundle

        return Bundle.load(export_bundle(root / "theta.json", "linux-aarch64", root / "bundle"))
    return Bundle.load(export_mcu(root / "theta.json", root / "bundle"))


@pytest.fixture(scope="session")
def hil_program(pytestconfig: pytest.Config, hil_bundle: Any, hil_target: str,
                tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The firmware built for ``--hil-target`` (None with ``--hil-port``)."""
    if pytestconfig.getoption("hil_port"):
        return None
    from rlmpc.codegen.firmware import build_firmware

    return build_firmware(hil_bundle.directory, hil_target, tmp_path_factory.mktemp(f"fw_{hil_target}"))


@pytest.fixture(scope="session")
def hil_reference(hil_bundle: Any) -> Any:
    """The workstation MPC of the bundle's problem at its θ (for a real-time-iteration bundle:
    acados SQP_RTI run like the device, :mod:`rlmpc.hil.rti_reference`)."""
    import numpy as np

    from rlmpc.hil.rti_reference import is_rti_bundle, rti_reference
    from rlmpc.toolkit import MPC, SolverOptions
    from rlmpc.toolkit.registry import make_problem

    m = hil_bundle.manifest
    fns = make_problem(m["problem"]["name"], m["problem"].get("params", {})).build()
    theta = np.array(m["theta"]["flat"])
    if is_rti_bundle(m):
        return rti_reference(m, fns, theta)
    return MPC(fns, SolverOptions(tol=1e-9), theta=theta)


@pytest.fixture(scope="module")
def hil_device(pytestconfig: pytest.Config, hil_program: Path | None, hil_target: str) -> Iterator[Any]:
    from rlmpc.codegen.firmware import start_emulator
    from rlmpc.hil.transport import Device, open_link, process_alive

    url = pytestconfig.getoption("hil_port")
    with contextlib.ExitStack() as stack:
        emu = None
        if url is None:
            assert hil_program is not None
            emu = start_emulator(hil_program, hil_target)
            stack.callback(emu.stop)  # runs last: signals if the EXIT below did not stop it
            url = emu.serial_url
        port = open_link(url, baudrate=int(pytestconfig.getoption("hil_baud")))
        stack.callback(port.close)
        if emu is not None:
            stack.callback(emu.stop, port)  # EXIT frame first
        device = Device(port, alive=None if emu is None else process_alive(emu.process, f"the emulated {hil_target}"))
        device.connect()
        yield device


def _log_slice(device: Any) -> list[tuple[float, str, bytes]]:
    return list(getattr(device.port, "log", []))


@pytest.fixture
def dut(request: pytest.FixtureRequest, hil_device: Any, tmp_path: Path) -> Iterator[Any]:
    """The connected device (``info()``, ``step(x)``, ``reset()``, ``ping()``); this test's
    serial traffic is written to ``<tmp_path>/serial.log``."""
    start = len(_log_slice(hil_device))
    path = tmp_path / "serial.log"
    request.node.user_properties.append((LOG_KEY, str(path)))
    try:
        hil_device.info()
        yield hil_device
    finally:
        log = _log_slice(hil_device)[start:]
        path.write_text("".join(f"{t:.6f} {d} {b.hex()}\n" for t, d, b in log), encoding="ascii")


@pytest.fixture
def hil_run(request: pytest.FixtureRequest, dut: Any, hil_bundle: Any, hil_reference: Any,
            tmp_path: Path) -> Callable[..., HilResult]:
    """``hil_run(steps=50, seed=0, thresholds=None, device=None, plant=None, out=None, **kw)``:
    run, judge and report (see the module doc)."""
    from rlmpc.hil.faults import attach_fault_counts
    from rlmpc.hil.report import write_report
    from rlmpc.hil.runner import run_hil
    from rlmpc.hil.verdict import Thresholds, evaluate
    from rlmpc.toolkit.registry import make_env

    counter = [0]

    def run(steps: int = 50, seed: int = 0, thresholds: Any = None, *, device: Any = None,
            plant: Any = None, out: str | Path | None = None, **kwargs: Any) -> HilResult:
        dev = dut if device is None else device
        from rlmpc.hil.cli import plant_choice

        env = plant if plant is not None else make_env(*plant_choice(hil_bundle.manifest, None))
        if isinstance(env, str):
            env = make_env(env, {})
        r = run_hil(dev, env, hil_reference, steps, seed, manifest=hil_bundle.manifest, **kwargs)
        attach_fault_counts(r, dev.port)
        th = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_dict(thresholds or {})
        verdict = evaluate(r, th)
        counter[0] += 1
        name_ = "hil" if counter[0] == 1 else f"hil{counter[0]}"
        folder = Path(out) if out is not None else tmp_path / name_
        paths = write_report(r, verdict, folder)
        request.node.user_properties.append((REPORT_KEY, str(paths["json"])))
        if r.interrupted:
            import sys

            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                print(f"\nrlmpc hil: interrupted: {r.steps} of {r.steps_requested} steps ran; partial report: "
                      f"{paths['markdown']}, serial log: {paths['serial_log']}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        return HilResult(r, verdict, paths)

    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                               ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        for key, value in item.user_properties:
            if key in (LOG_KEY, REPORT_KEY):
                report.sections.append((f"rlmpc hil: {key}", str(value)))
    return report


__all__ = ["HilResult", "pytest_addoption", "pytest_configure", "pytest_runtest_makereport"]
