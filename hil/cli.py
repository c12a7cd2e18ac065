"""``rlmpc hil``: close the loop through a firmware, judge it and write the report.

Where the controller is:

* ``--target BOARD`` (``host``, ``mps2-an386``, ``stm32f405``, ``linux-aarch64``): the emulated
  board (or the host program) is started here and stopped afterwards.  The firmware is built
  from the bundle into ``OUT/firmware`` unless ``--program`` names a build;
* ``--port /dev/ttyACM0 --baud 115200`` (or any pyserial URL: a pty, ``socket://host:port``,
  ``rfc2217://…``): a board that is already running (flashed with ``rlmpc flash``).

The reference policy is the workstation MPC of the bundle's manifest at its θ.  Exit code 0 on
PASS, 1 on FAIL, 2 on a usage or link error (a run that loses its link, is refused by the device
or whose plant diverges ends at once with the report of the steps run), 130 on Ctrl-C (the
partial report and serial log are written).  ``--faults SPEC`` injects bit flips, drops, delays
and resets into the link (:mod:`rlmpc.hil.faults`).  Hooked into ``toolkit/cli.py`` with
:func:`add_hil_command`; :func:`connected_device` is shared with ``rlmpc bench-target``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlmpc.codegen.boards import ALL_BOARDS as TARGETS

DEFAULT_BAUD = 115200
MAX_STEPS = 1_000_000  # a run's traces are kept in memory (and a step takes ~1 ms or more)
PLANTS = {"lti": "LtiGrosZanon", "lti_tracking": "LtiGrosZanon", "cartpole": "CartPole", "pendulum": "Pendulum-v1",
          "cartpole_incline": "CartPoleIncline", "mass_chain": "MassChain"}  # the default plant of each problem


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--target``/``--program`` (emulated) or ``--port``/``--baud`` (running board)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", "--board", dest="target", choices=list(TARGETS),
                       help="emulated board (or the host program) to start and stop")
    where.add_argument("--port", "--url", dest="port",
                       help="serial port of a running board: /dev/ttyACM0, a pty, socket://host:port, …")
    parser.add_argument("--program", default=None,
                        help="with --target: this firmware build instead of building it from the bundle")
    parser.add_argument("--baud", type=int, default=None, help="with --port: line speed (default 115200)")


def check_device_arguments(args: argparse.Namespace) -> None:
    """The options of :func:`add_device_arguments` that do not go together (one-line ValueError)."""
    if args.target and args.baud is not None:
        raise ValueError("--baud: only with --port (an emulated board's link has no line speed)")
    if args.baud is not None and args.baud <= 0:
        raise ValueError(f"--baud: expected a positive line speed, got {args.baud}")
    if args.program and not args.target:
        raise ValueError("--program: only with --target (a program to start on an emulated board)")


@contextlib.contextmanager
def connected_device(args: argparse.Namespace, bundle_dir: str | Path, build_dir: Path) -> Iterator[Any]:
    """A connected :class:`rlmpc.hil.transport.Device` for the arguments of :func:`add_device_arguments`.

    With ``--target`` the firmware is built (unless ``--program``) into ``build_dir``, started,
    and stopped on exit (EXIT frame, SIGTERM, SIGKILL).  Raises ``TransportError`` or
    ``ValueError`` with a one-line message.
    """
    from rlmpc.codegen.firmware import build_firmware, start_emulator
    from rlmpc.hil.faults import FaultyPort, emulator_restarter, parse_fault_spec
    from rlmpc.hil.transport import Device, LinkBudget, open_link

    check_device_arguments(args)
    faults = parse_fault_spec(args.faults) if getattr(args, "faults", None) else None
    budget = link_budget(args)
    with contextlib.ExitStack() as stack:
        holder: dict[str, Any] = {}
        program = None
        if args.target:
            program = args.program
            if program is None:
                print(f"building the firmware for {args.target} → {build_dir}", flush=True)
                program = build_firmware(bundle_dir, args.target, build_dir,
                                         allow_modified=getattr(args, "allow_modified", False))
            holder["emu"] = start_emulator(program, args.target)
            stack.callback(lambda: holder["emu"].stop())
            url = holder["emu"].serial_url
        else:
            url = args.port
        port: Any = open_link(url, baudrate=args.baud or DEFAULT_BAUD)
        stack.callback(port.close)
        if holder:
            stack.callback(lambda: holder["emu"].stop(port))  # EXIT frame first, then signals
        if faults is not None:
            if faults.reset_at and program is None:
                raise ValueError("--faults: reset=…: only with --target (an emulated board this command restarts)")
            hook = emulator_restarter(program, args.target, holder) if faults.reset_at else None
            port = FaultyPort(port, faults, reset_device=hook)
        alive = None
        if holder:
            def alive() -> str | None:
                code = holder["emu"].process.poll()
                return None if code is None else f"the emulated {args.target} exited (code {code})"
        device = Device(port, budget=budget or LinkBudget(), alive=alive)
        device.connect()
        yield device


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """The link budget: how long a run may go on without the device."""
    parser.add_argument("--max-silence", type=float, default=None, metavar="S",
                        help="end the run (exit 2) after S seconds without a valid frame (default 3)")
    parser.add_argument("--max-lost", type=int, default=None, metavar="N",
                        help="end the run (exit 2) after N steps in a row without a valid ACTION (default 5)")


def link_budget(args: argparse.Namespace) -> Any:
    """The :class:`rlmpc.hil.transport.LinkBudget` of :func:`add_link_arguments` (None: defaults)."""
    from rlmpc.hil.transport import LinkBudget

    silence, lost = getattr(args, "max_silence", None), getattr(args, "max_lost", None)
    if silence is None and lost is None:
        return None
    if silence is not None and not 0 < silence < 1e6:
        raise ValueError(f"--max-silence: expected a positive number of seconds, got {silence:g}")
    if lost is not None and lost < 1:
        raise ValueError(f"--max-lost: expected an integer >= 1, got {lost}")
    d = LinkBudget()
    return LinkBudget(silence if silence is not None else d.max_silence_s,
                      lost if lost is not None else d.max_consecutive_lost)


def check_steps(steps: int) -> None:
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"--steps: expected an integer from 1 to {MAX_STEPS}, got {steps}")


def add_hil_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hil = sub.add_parser("hil", help="hardware-in-the-loop run of a controller firmware against the plant")
    hil.add_argument("bundle", help="bundle folder (its manifest.json gives problem and θ)")
    add_device_arguments(hil)
    hil.add_argument("--steps", type=int, default=100, help="closed-loop steps (default 100)")
    hil.add_argument("--seed", type=int, default=0, help="plant seed (default 0)")
    add_plant_arguments(hil)
    hil.add_argument("--thresholds", default=None, help="JSON file with verdict thresholds")
    hil.add_argument("--cost-budget", type=float, default=None,
                     help="per-step device cost limit (instructions / cycles / µs)")
    hil.add_argument("--measurement-noise", type=float, nargs="+", default=[0.0], metavar="STD",
                     help="Gaussian noise on the state sent to the controller (one σ or one per state)")
    hil.add_argument("--input-disturbance", type=float, nargs="+", default=[0.0], metavar="STD",
                     help="Gaussian noise added to the controller's action (one σ or one per input)")
    hil.add_argument("--realtime", action="store_true",
                     help="pace the loop at the bundle's sampling time; count the late steps")
    hil.add_argument("--theta", default=None, metavar="THETA.json",
                     help="push this θ (a θ file of the bundle's problem) to the device with SET_THETA "
                     "before the run, without rebuilding; the reference MPC uses it too")
    hil.add_argument("--params", default=None, metavar="FILE.csv|.npy",
                     help="run-time parameters p per step (one row per step; the last row repeats), "
                     "sent with each STEP; default: the plant's info['p'] if it gives one")
    hil.add_argument("--out", default="runs/hil", help="report folder (default runs/hil)")
    from rlmpc.hil.faults import SPEC_HELP

    hil.add_argument("--faults", default=None, metavar="SPEC", help="inject link faults: " + SPEC_HELP)
    hil.add_argument("--allow-modified", action="store_true",
                     help="with --target: build a bundle whose files differ from its manifest (recorded)")
    add_link_arguments(hil)
    hil.set_defaults(func=run_command)


def add_plant_arguments(parser: argparse.ArgumentParser) -> None:
    """``--plant NAME`` and ``--plant-params JSON`` (e.g. the true physical parameters)."""
    parser.add_argument("--plant", default=None, help="plant name (default: the plant θ was learned on, "
                        "from the bundle's manifest; else the bundle's problem's own)")
    parser.add_argument("--plant-params", default=None, metavar="JSON",
                        help='plant parameters as a JSON object, e.g. \'{"m_pole": 0.65}\'')


def _plant_params(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--plant-params: not valid JSON ({exc.msg}); expected an object") from None
    if not isinstance(params, dict):
        raise ValueError(f"--plant-params: expected a JSON object, got {type(params).__name__}")
    return params


def parse_hil_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``rlmpc hil ARGV…`` with every default filled in (for callers in Python)."""
    parser = argparse.ArgumentParser(prog="rlmpc")
    add_hil_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["hil", *argv])


def plant_choice(manifest: dict[str, Any], plant: str | None,
                 plant_params: str | None = None) -> tuple[str, dict[str, Any]]:
    """The plant's name and parameters: ``--plant`` with ``--plant-params``; else the plant θ was
    learned on (the manifest's ``plant``, its parameters updated by ``--plant-params``); else the
    default plant of the bundle's problem."""
    params = _plant_params(plant_params)  # the user's input first, before anything is built
    if plant is not None:
        return plant, params
    learned_on = manifest.get("plant")
    if isinstance(learned_on, dict) and isinstance(learned_on.get("name"), str):
        return learned_on["name"], {**learned_on.get("params", {}), **params}
    name = manifest["problem"]["name"]
    if name not in PLANTS:
        raise ValueError(f"--plant: no default plant for problem {name!r}; name one")
    return PLANTS[name], params


def reference_and_plant(manifest: dict[str, Any], plant: str | None,
                        plant_params: str | None = None) -> tuple[Any, Any]:
    """The workstation MPC at the bundle's θ, and the plant environment (see :func:`plant_choice`)."""
    import numpy as np

    from rlmpc.hil.rti_reference import is_rti_bundle, rti_reference
    from rlmpc.toolkit import MPC, SolverOptions
    from rlmpc.toolkit.registry import make_env, make_problem
    from rlmpc.toolkit.rl.plant_io import plant_state

    name, params = plant_choice(manifest, plant, plant_params)
    problem = manifest["problem"]["name"]
    fns = make_problem(problem, manifest["problem"].get("params", {})).build()
    theta = np.array(manifest["theta"]["flat"])
    if is_rti_bundle(manifest):  # the same algorithm as the device: acados SQP_RTI, same warm start
        reference: Any = rti_reference(manifest, fns, theta)
    else:
        reference = MPC(fns, SolverOptions(tol=1e-9), theta=theta)
    try:
        env = make_env(name, params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--plant-params: plant {name}: {exc}") from None
    obs, info = env.reset(seed=0)  # (the run resets it again with its own seed)
    size = plant_state(obs, info).size
    if size != fns.nx:
        raise ValueError(f"--plant: {name} has states of {size} entries, the bundle's problem "
                         f"{problem!r} has {fns.nx}; expected a plant of that problem")
    return reference, env


def push_theta(device: Any, manifest: dict[str, Any], theta: Any) -> None:
    """SET_THETA with the manifest's problem hash and θ hash; TransportError if the device refuses."""
    from rlmpc.codegen.protocol import hash_prefix
    from rlmpc.codegen.protocol_spec import Capability
    from rlmpc.hil.transport import TransportError

    info = device.info()
    if not info.capabilities & Capability.SET_THETA:
        raise TransportError("--theta: this firmware takes no θ at run time (SET_THETA): export the "
                             "bundle again without --fixed-theta, or export and build the new θ")
    device.set_theta(hash_prefix(manifest["problem"]["hash"]), hash_prefix(manifest["theta"]["hash"]), theta)
    print(f"θ pushed with SET_THETA (hash {manifest['theta']['hash'][:12]}…)")


def run_command(args: argparse.Namespace) -> int:
    from rlmpc.codegen.firmware import Bundle
    from rlmpc.codegen.mcu.toolchain import ToolchainError
    from rlmpc.hil.conditions import Conditions
    from rlmpc.hil.faults import attach_fault_counts
    from rlmpc.hil.report import FILES, write_report
    from rlmpc.hil.run_inputs import load_params, theta_for_bundle
    from rlmpc.hil.runner import run_hil
    from rlmpc.hil.transport import TransportError
    from rlmpc.hil.verdict import Thresholds, evaluate
    from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder

    check_device_arguments(args)
    check_steps(args.steps)
    if args.faults:
        from rlmpc.hil.faults import parse_fault_spec

        if parse_fault_spec(args.faults).reset_at and not args.target:
            raise ValueError("--faults: reset=…: only with --target (an emulated board this command restarts)")
    if args.port:
        from rlmpc.hil.transport import check_url

        check_url(args.port)
    link_budget(args)
    bundle = Bundle.load(args.bundle, allow_modified=args.allow_modified)
    th = Thresholds.load(args.thresholds) if args.thresholds else Thresholds()
    if args.cost_budget is not None:
        th = Thresholds(**{**th.__dict__, "cost_budget": args.cost_budget})
    reference, plant = reference_and_plant(bundle.manifest, args.plant, args.plant_params)
    plant_name, plant_params = plant_choice(bundle.manifest, args.plant, args.plant_params)
    print(f"plant: {plant_name} {json.dumps(plant_params) if plant_params else '(its defaults)'}")
    noise, dist = (v[0] if len(v) == 1 else v for v in (args.measurement_noise, args.input_disturbance))
    conditions = Conditions(noise, dist, float(bundle.manifest["sampling_time"]) if args.realtime else None)
    if args.seed < 0:
        raise ValueError(f"--seed: expected >= 0, got {args.seed}")
    if args.cost_budget is not None and not args.cost_budget >= 0:
        raise ValueError(f"--cost-budget: expected a non-negative number, got {args.cost_budget:g}")
    dims = bundle.manifest["dims"]
    conditions.as_dict(int(dims["nx"]), int(dims["nu"]))  # checks the sizes before anything is built
    manifest = bundle.manifest
    theta = None
    if args.theta is not None:
        theta, manifest = theta_for_bundle(args.theta, bundle.manifest)
        reference.theta = theta
    params = None if args.params is None else load_params(args.params, args.steps, int(dims["np"]))
    out = claim_output_folder(args.out, "hil", [*FILES.values(), "firmware"])
    try:
        with connected_device(args, bundle.directory, out / "firmware") as device:
            if theta is not None:
                push_theta(device, manifest, theta)
            run = run_hil(device, plant, reference, args.steps, args.seed, manifest=manifest,
                          conditions=conditions, params=params)
            attach_fault_counts(run, device.port)
    except (TransportError, ToolchainError) as exc:
        print(f"rlmpc hil: error: {exc}", file=sys.stderr)
        return 2
    run.conditions["plant"] = {"name": plant_name, "params": plant_params}
    if bundle.modified:
        run.identity["bundle_modified"] = list(bundle.modified)  # built with --allow-modified
    # INFO's manifest hash: the exported manifest's, or another (a modified bundle, another export)
    run.identity["manifest_matches_bundle"] = run.identity["manifest_hash"] == bundle.manifest_hash[
        :len(run.identity["manifest_hash"])]
    distance = getattr(reference, "converged_distance", None)
    if distance is not None:
        run.conditions["reference"] = {"algorithm": "acados SQP_RTI, the device's warm start",
                                       "max_distance_to_converged_mpc": distance}
    verdict = evaluate(run, th)
    paths = write_report(run, verdict, out)
    complete_output_folder(out, "hil")
    if run.aborted is not None:
        what = "interrupted" if run.interrupted else "error"
        print(f"rlmpc hil: {what}: {run.aborted}; {run.steps} of {run.steps_requested} steps ran, "
              f"report: {paths['markdown']}, serial log: {paths['serial_log']}", file=sys.stderr)
        return 130 if run.interrupted else 2
    m = json.loads(paths["json"].read_text())["metrics"]

    def g(key: str, spec: str) -> str:
        return "–" if m.get(key) is None else format(m[key], spec)

    print(f"HIL {run.board}: {verdict.label}  max|Δu| {g('max_action_error', '.3g')}  "
          f"cost ratio {g('cost_ratio', '.6f')}  {g('link_steps_per_second', '.0f')} steps/s over the link")
    for reason in verdict.reasons:
        print(f"  {reason}")
    if distance is not None:
        print(f"reference: acados SQP_RTI from the device's warm start; its distance to the converged MPC "
              f"on the same states (not judged): max |Δu| {distance:.3g}")
    print(f"report: {paths['markdown']}")
    return 0 if verdict.passed else 1


__all__ = [
    "MAX_STEPS",
    "PLANTS",
    "TARGETS",
    "add_device_arguments",
    "add_hil_command",
    "add_link_arguments",
    "add_plant_arguments",
    "check_steps",
    "connected_device",
    "link_budget",
    "parse_hil_args",
    "plant_choice",
    "reference_and_plant",
    "run_command",
]
