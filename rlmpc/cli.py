"""The ``rlmpc`` command: one parser above the three layers it drives (toolkit, codegen, hil)."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn


def _print_bundle_make_variables() -> None:
    """Where an acados bundle's Makefile finds acados (x86-64; aarch64 once the set-up cached it)."""
    from rlmpc.codegen import aarch64_acados
    from rlmpc.toolkit.acados_runtime import acados_paths

    paths = acados_paths()
    print(f"\nbuild a linux-x86_64 bundle: make ACADOS_INCLUDE={paths.include} ACADOS_LIB={paths.lib}")
    root = aarch64_acados.cache_dir()
    if (root / "lib").is_dir():
        print(f"build a linux-aarch64 bundle: make ACADOS_INCLUDE={root / 'include'} "
              f"ACADOS_LIB={root / 'lib'}")


def _doctor(_: argparse.Namespace) -> int:
    from rlmpc.toolkit.acados_runtime import REPAIR_HINT, check_installation

    results = check_installation()
    for r in results:
        print(f"[{'ok' if r.ok else 'FAIL'}] {r.name}: {r.detail}")
    if all(r.ok for r in results):
        _print_bundle_make_variables()
        return 0
    print(f"\nThe acados/CasADi installation is broken; {REPAIR_HINT}", file=sys.stderr)
    return 1


def _demo_folders(out: Path) -> Path:
    """Check (and claim) the demo's output folders; forget an earlier demo's training run (only
    its own files).  The training run's folder."""
    from rlmpc.codegen.bundle_folder import check_destination
    from rlmpc.codegen.firmware import BUILD_OUTPUTS
    from rlmpc.hil.report import FILES
    from rlmpc.toolkit.output_folder import check_output_folder, claim_output_folder
    from rlmpc.toolkit.rl.training import TRAIN_OUTPUTS

    folders = {"lti_qlearning": ("train", TRAIN_OUTPUTS), "firmware_mps2-an386": ("build", BUILD_OUTPUTS),
               "hil": ("hil", (*FILES.values(), "firmware"))}
    claim_output_folder(out, "demo", ("cartpole_closed_loop.png", "lti_bundle_aarch64", "lti_mcu",
                                      *folders))
    for name in ("lti_bundle_aarch64", "lti_mcu"):
        check_destination((out / name).resolve())
    for name, (command, own) in folders.items():
        check_output_folder(out / name, command, own)
    run_dir = out / "lti_qlearning"
    for name in TRAIN_OUTPUTS:  # the demo always trains afresh
        (run_dir / name).unlink(missing_ok=True)
    return run_dir


def _demo(args: argparse.Namespace) -> int:
    from rlmpc.toolkit.demo_core import run_core_demo
    from rlmpc.toolkit.rl.config import load_config
    from rlmpc.toolkit.rl.training import Trainer

    out = Path(args.out)
    run_dir = _demo_folders(out)  # every output folder checked before anything is written
    print("== 1. The MPC core: V, Q, π and their sensitivities on a cart-pole")
    run_core_demo(out)
    print("\n== 2. Training: second-order LSTD Q-learning on the LTI task of Gros & Zanon "
          "(examples/lti_qlearning.toml)")
    example = Path(__file__).resolve().parent / "examples" / "lti_qlearning.toml"  # (in the wheel too)
    summary = Trainer(load_config(example, output=run_dir)).run()
    print(f"greedy closed-loop cost over {summary['evaluation']['episodes']} episodes: "
          f"{summary['greedy_cost_initial']:.3g} (initial θ) -> {summary['greedy_cost_final']:.3g} "
          f"(learned θ), {100 * summary['greedy_cost_ratio']:.1f}%")
    lb = summary["theta_final"]["x_lb"]
    print(f"learned back-off on the lower bound of x1: {lb[0][0]:.3f} (tightened against the noise)")
    print(f"θ file: {run_dir / 'theta.json'}\nlearning curves: {run_dir / 'learning_curves.png'}")

    print("\n== 3. Code generation for embedded Linux: the learned θ as an acados C bundle for "
          "linux-aarch64, built with aarch64-linux-gnu-gcc and run under qemu-aarch64")
    from rlmpc.codegen.bundle import export_bundle
    from rlmpc.codegen.run_bundle import run_bundle

    bundle = export_bundle(run_dir / "theta.json", "linux-aarch64", out / "lti_bundle_aarch64")
    report = run_bundle(bundle)
    print(f"bundle: {bundle}\n{report.summary()}")

    print("\n== 4. Code generation for a microcontroller, flash, HIL: the malloc-free solver for "
          "a Cortex-M4F, the controller firmware for the emulated mps2-an386 board, QEMU started "
          "as the 'flashed' controller, and the closed loop plant ↔ controller over its serial "
          "link against the workstation policy")
    from rlmpc.codegen.firmware import build_firmware
    from rlmpc.codegen.mcu_export import export_mcu
    from rlmpc.hil.cli import parse_hil_args, run_command

    mcu = export_mcu(run_dir / "theta.json", out / "lti_mcu")
    elf = build_firmware(mcu, "mps2-an386", out / "firmware_mps2-an386")
    print(f"bare-metal bundle: {mcu}\nfirmware: {elf}\n"
          f"{(elf.parent / 'size.txt').read_text().rstrip()}")
    hil_args = parse_hil_args([str(mcu), "--target", "mps2-an386", "--program", str(elf), "--steps", "100",
                               "--seed", "3", "--out", str(out / "hil")])
    verdict_code = run_command(hil_args)
    print(f"HIL plots: {out / 'hil'}/*.png")
    print(f"\nNext: the same on the other boards (rlmpc hil {mcu} --target stm32f405 | host; an "
          f"acados bundle with --target linux-aarch64), a real board (rlmpc flash … --probe auto, "
          f"rlmpc hil … --port /dev/ttyACM0), the cost per step (rlmpc bench-target {mcu} --target "
          f"mps2-an386).")
    from rlmpc.toolkit.output_folder import complete_output_folder

    complete_output_folder(out, "demo")
    return 0 if report.passed and verdict_code == 0 else 1


def _train(args: argparse.Namespace) -> int:
    from rlmpc.toolkit.rl.config import load_config
    from rlmpc.toolkit.rl.training import Trainer

    for option, value in (("--episodes", args.episodes), ("--steps", args.steps)):
        if value is not None and value < 1:
            raise ValueError(f"{option}: expected >= 1, got {value}")
    config = load_config(args.config, output=args.out,
                         overrides={"episodes": args.episodes, "steps": args.steps, "seed": args.seed})
    on_device = args.target is not None or args.port is not None
    if args.port and not args.bundle:
        raise ValueError("--port needs --bundle: the bundle the board was flashed with")
    if args.bundle and not args.port:
        raise ValueError("--bundle: only with --port (with --device the bundle is exported from the configuration)")
    if args.program is not None or args.baud is not None:
        from rlmpc.hil.train_checks import check_program_option

        if args.baud is not None and not args.port:
            raise ValueError("--baud: only with --port (an emulated board's link has no line speed)")
        check_program_option(args)  # (a missing file or a folder: before anything is exported)
    if args.faults is not None:
        if not on_device:
            raise ValueError("--faults: only with --device/--port (the faults are injected into the device's link)")
        from rlmpc.hil.faults import parse_fault_spec

        parse_fault_spec(args.faults)  # (a bad SPEC is refused before anything is built)
    if args.budget is not None:
        if config.agent.type != "bayes":
            raise ValueError("--budget: only with agent.type = \"bayes\" (a tuning with a real-time constraint)")
        if not on_device:
            raise ValueError("--budget: the worst cost per step is measured on a device; add --device BOARD or "
                             "--port URL (on the workstation there is no device cost to hold to a budget)")
        if not args.budget > 0:
            raise ValueError(f"--budget: expected a positive cost per step (the board's unit), got {args.budget:g}")
    from rlmpc.toolkit.rl.bayes import BayesTuner

    if config.agent.type == "bayes":
        trainer: Trainer | BayesTuner = BayesTuner(config, progress_bar=not args.quiet)
    else:
        trainer = Trainer(config, progress_bar=not args.quiet, plots=not args.no_plots)
    _raise_if_interrupted()  # (a Ctrl-C while the solvers and sensitivities were set up)
    from rlmpc.hil.train_checks import check_bundle_option, device_options, resume_plan

    if args.port:  # (before connecting)
        fns = trainer.fns if isinstance(trainer, BayesTuner) else trainer.mpc.fns
        check_bundle_option(args.bundle, fns.problem_hash, config.mpc.problem, config.source)
    resumed = None
    if args.resume:  # (before anything is exported, built or started)
        resumed, ended = resume_plan(trainer, args)
        if ended:
            print(f"rlmpc train: {ended}")
            return 0
    link_errors: tuple[type[BaseException], ...] = ()
    if on_device:
        from rlmpc.hil.transport import TransportError

        link_errors = (TransportError,)
    try:
        if on_device and isinstance(trainer, BayesTuner):
            from rlmpc.hil.device_bayes import tune_on_device

            summary = tune_on_device(trainer, args, resumed)
        elif on_device:
            from rlmpc.hil.train_device import run_on_device

            summary = run_on_device(trainer, args, resumed)
        else:
            summary = trainer.run(resume=args.resume)
    except KeyboardInterrupt:
        saved = trainer.checkpoint_path.exists()
        again = " ".join([f"rlmpc train {shlex.quote(str(args.config))} --out "
                          f"{shlex.quote(str(config.output))}",
                          *(f"--{k} {v}" for k, v in (("episodes", args.episodes), ("steps", args.steps),
                                                      ("seed", args.seed)) if v is not None),
                          *map(shlex.quote, device_options(args)),
                          *([f"--budget {args.budget:g}"] if args.budget is not None else []), "--resume"])
        print("\nrlmpc train: interrupted; "
              + (f"`{again}` continues from the last checkpoint ({trainer.checkpoint_path})"
                 if saved else "no checkpoint was written yet"), file=sys.stderr)
        return 130
    except link_errors as exc:  # the link failed beyond its budget (or the device refused a request)
        saved = trainer.checkpoint_path.exists()
        print(f"rlmpc train: the device: {exc}"
              + ("; the same command with --resume continues from the last checkpoint "
                 f"({trainer.checkpoint_path}; θ is sent to the device again)" if saved else ""), file=sys.stderr)
        return 2
    out = config.output
    if config.agent.type == "bayes":
        print(f"\ntuned with {summary['steps']} closed-loop trials in {summary['wall_time_s']:.1f} s; "
              f"{summary['feasible_trials']} feasible")
    else:
        print(f"\ntrained {summary['steps']} steps in {summary['wall_time_s']:.1f} s "
              f"({summary['ms_per_step']:.2f} ms/step), MPC failures: "
              f"{summary['mpc_failures']['V'] + summary['mpc_failures']['Q']}"
              + (f", QPs at their iteration limit solved again: {ver['solved_again']} of {ver['unverified']}"
                 if (ver := summary.get("mpc_verification")) and ver["unverified"] else ""))
    print(f"greedy closed-loop cost: initial θ {summary['greedy_cost_initial']:.4g} -> "
          f"learned θ {summary['greedy_cost_final']:.4g} "
          f"({100 * summary['greedy_cost_ratio']:.1f}%)")
    if "device" in summary and config.agent.type == "bayes":
        return _device_bayes_verdict(summary["device"], out)
    if "device" in summary:
        d = summary["device"]
        print(f"through {d['board']}: |u_device − π_θ(s)|∞ max {d['distance_max']:.2e} (median "
              f"{d['distance_median']:.2e}), device cost per step max {d['cost_max']:.0f} {d['cost_unit']}, "
              f"{d['theta_pushes']} θ "
              f"pushes ({d['theta_repushes_after_reset']} after a reset), {d['link']['retries']} retries, "
              f"{d['fallbacks']} fallbacks; {out / 'device_panel.png'}")
        if "faults" in d:
            f, link = d["faults"], d["link"]
            print(f"faults injected: {f['bit_flips']} bit flips, {f['dropped_bytes']} dropped bytes, {f['delays']} "
                  f"delays, {f['resets']} device resets; recovered by {link['retries']} retries, {link['resyncs']} "
                  f"new handshakes, {d['steps_asked_again']} steps asked again, {d['theta_repushes_after_reset']} θ "
                  f"re-pushes; {link['lost_steps']} STEPs given up by the transport (and asked again)")
    plots = (f"{out / summary['outputs']['plot']}" if not args.no_plots
             else f"not drawn (--no-plots; `rlmpc plot {out}` draws them)")
    print(f"θ: {out / 'theta.json'}\n{'trials' if config.agent.type == 'bayes' else 'learning curves'}: "
          f"{plots}\nsummary: {out / 'summary.json'}")
    return _learning_verdict(summary, out)


def _device_bayes_verdict(d: dict[str, Any], out: Path) -> int:
    """θ0 and the returned θ run again on the device; exit 1 if the returned θ misses the budget."""
    unit = d["cost_unit"]
    for name, key in (("θ0", "theta0"), ("returned θ", "returned_theta")):
        r = d[key]
        meets = "" if r["meets_budget"] is None else (" (meets the budget)" if r["meets_budget"]
                                                       else f" (over the budget {d['budget']:g})")
        print(f"{name} again on {d['board']}: cost {r['cost']:.4g}, worst step {r['worst_step']} {unit}{meets}")
    if "faults" in d:
        f = d["faults"]
        print(f"faults injected: {f['bit_flips']} bit flips, {f['dropped_bytes']} dropped bytes, {f['delays']} delays, "
              f"{f['resets']} device resets; {d['link']['resyncs']} new handshakes, {d['theta_repushes_after_reset']} "
              f"θ re-pushes (the episode run again), {d['steps_asked_again']} steps asked again")
    print(f"{d['theta_pushes']} θ pushes, {d['link']['retries']} retries, {d['fallbacks']} fallbacks\n"
          f"θ: {out / 'theta.json'}\ntrials: {out / 'trials.md'}, {out / 'bayes.png'}\nsummary: {out / 'summary.json'}")
    if d["returned_theta"]["meets_budget"] is False:
        print(f"budget: no trial met {d['budget']:g} {unit} per step; theta.json holds θ0", file=sys.stderr)
        return 1
    return 0


def _plot(args: argparse.Namespace) -> int:
    from rlmpc.toolkit.rl.outputs import write_plots

    for path in write_plots(Path(args.run)):
        print(path)
    return 0


TRAIN_WORSE_EXIT = 3
"""`rlmpc train` exit code when the θ it wrote (theta.json) scores worse than θ0."""


def _distinct(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with 4 significant digits, or as many more as it takes to tell them apart."""
    for digits in range(4, 13):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if a == b or sa != sb:
            return sa, sb
    return repr(a), repr(b)


def _learning_verdict(summary: dict[str, Any], out: Path) -> int:
    """The last line: whether learning improved on θ0 (exit 0) or not (exit TRAIN_WORSE_EXIT)."""
    if "learned_worse_than_initial" not in summary:  # (bayes: keeps its best trial)
        return 0
    for event in summary["guard_events"]:
        print(f"guard: step {event['step']}: greedy cost {event['cost']:.4g} -> {event['action']}")
    if summary["stopped"]:
        print(f"guard: {summary['stopped']}")
    failures = summary.get("mpc_failures", {})
    failed = int(failures.get("V", 0)) + int(failures.get("Q", 0))
    if summary.get("updates") == 0 or (failed and failed >= 0.1 * max(int(summary.get("steps", 0)), 1)):
        print(f"warning: {summary.get('updates')} θ updates in {summary.get('steps')} steps; {failed} MPC solves "
              f"failed ({failures.get('messages', {})}); see summary.json mpc_failures")
    initial, final = _distinct(summary["greedy_cost_initial"], summary["greedy_cost_final"])
    if summary["theta_json_worse_than_initial"]:
        print(f"WORSE: the learned θ ({final}) is worse than θ0 ({initial}); best evaluated θ "
              f"({summary['greedy_cost_best']:.4g}, step {summary['best_step']}): {out / 'theta_best.json'} "
              f"(exit code {TRAIN_WORSE_EXIT})")
        return TRAIN_WORSE_EXIT
    if summary["learned_worse_than_initial"]:
        print(f"learned θ worse than θ0 ({final} > {initial}): the guard kept the best θ "
              f"({summary['greedy_cost_best']:.4g}, step {summary['best_step']}) in {out / 'theta.json'}")
    else:
        print(f"OK: the learned θ ({final}) is no worse than θ0 ({initial}); best "
              f"{summary['greedy_cost_best']:.4g} at step {summary['best_step']} ({out / 'theta_best.json'})")
    return 0


def _json_option(option: str, text: str | None) -> object:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option}: not JSON ({exc.msg} at character {exc.pos})") from None


def _theta_init(args: argparse.Namespace) -> int:
    from rlmpc.toolkit.theta_file import init_theta

    params = _json_option("--problem-params", args.problem_params)
    plant = None if args.plant is None else {"name": args.plant, "params": {}}
    out = init_theta(args.problem, {} if params is None else params, args.out, plant)  # type: ignore[arg-type]
    print(f"θ of problem {args.problem!r} as defined (not trained): {out}\n"
          f"next: rlmpc export --theta {out} --target cortex-m4 --out BUNDLE --check")
    return 0


EXPORT_TARGETS = ("linux-x86_64", "linux-aarch64", "cortex-m4")
DEFAULT_RAM_LIMIT_KB = 112.0


def _export(args: argparse.Namespace) -> int:
    if args.ram_limit is not None and not args.ram_limit > 0:
        raise ValueError(f"--ram-limit: expected a positive number of KB, got {args.ram_limit:g}")
    if args.target == "cortex-m4":
        return _export_mcu(args)
    for option, value in (("--rti-warm-start", args.rti_warm_start), ("--precision", args.precision),
                          ("--ram-limit", args.ram_limit), ("--operating-point", args.operating_point),
                          ("--check-box", args.check_box), ("--qp", args.qp),
                          ("--admm-max-iter", args.admm_max_iter), ("--admm-rho", args.admm_rho)):
        if value is not None:
            raise ValueError(f"{option}: only for the bare-metal solver (--target cortex-m4), not "
                             f"for {args.target} (acados' solver, double precision)")
    from rlmpc.codegen.build import BundleBuildError
    from rlmpc.codegen.bundle import export_bundle
    from rlmpc.codegen.run_bundle import BundleRunError, run_bundle
    from rlmpc.codegen.toolchain import ToolchainError

    bundle = export_bundle(args.theta, args.target, args.out)
    print(f"bundle: {bundle} (manifest.json, Makefile, solver/, src/, test_vectors.*)")
    if not args.check:
        return 0
    try:
        report = run_bundle(bundle)
    except (BundleBuildError, BundleRunError, ToolchainError) as exc:
        print(f"rlmpc: error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0 if report.passed else 1


def _export_mcu(args: argparse.Namespace) -> int:
    import tempfile

    from rlmpc.codegen.mcu_export import check_mcu, export_mcu

    precision = args.precision or "float32"
    ram_limit = args.ram_limit if args.ram_limit is not None else DEFAULT_RAM_LIMIT_KB
    op = args.operating_point
    operating_point = op if op in (None, "none") else _json_option("--operating-point", op)
    box = _json_option("--check-box", args.check_box)
    if box is not None:  # (refused before anything is written)
        from rlmpc.codegen.mcu.host_check import parse_box
        from rlmpc.toolkit.theta_file import load_theta

        if not args.check:
            raise ValueError("--check-box: only with --check")
        parse_box(box, load_theta(args.theta).fns.nx)
    out = export_mcu(args.theta, args.out, precision=precision, ram_limit=int(ram_limit * 1024),
                     rti_warm_start=args.rti_warm_start, operating_point=operating_point, qp=args.qp,
                     runtime_theta=not args.fixed_theta, admm_max_iter=args.admm_max_iter, admm_rho=args.admm_rho)
    manifest = json.loads((out / "manifest.json").read_text())
    fp = manifest["footprint"]
    print(f"QP path: {manifest['solver']['kind']}; why: {manifest['solver']['choice']}")
    daqp = "DAQP sources, " if "DAQP" in manifest["solver"].get("qp_solver", "DAQP") else ""
    print(f"bare-metal solver ({precision}): {out} (manifest.json, solver sources, {daqp}"
          f"test_vectors.json)\nCortex-M4F footprint of the solver: text {fp['text']} B, "
          f"data {fp['data']} B, bss {fp['bss']} B (flash {fp['flash'] / 1024:.1f} KB, "
          f"RAM {fp['ram'] / 1024:.1f} KB)")
    fb = manifest.get("fallback")
    if fb is not None:
        print(f"after a failed solve: {fb['after a failed solve']}"
              + (f" (K at x={fb['operating_point']['x']}, u={fb['operating_point']['u']}: {fb['source']})"
                 if fb["gain"] else f" ({fb.get('note', '')})"))
    if not args.check:
        return 0
    with tempfile.TemporaryDirectory(prefix="rlmpc-mcu-check-") as tmp:
        report = check_mcu(args.theta, Path(tmp), args.rti_warm_start,
                           box=box, operating_point=operating_point, precision=precision,
                           qp=manifest["solver"].get("qp_path", args.qp),  # the path the export took
                           admm_rho=args.admm_rho, admm_options=args.admm_max_iter is not None)
    print("\n".join(report.lines()))
    return 0 if not report.problems() else 1


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (``rlmpc hil: error: …``, exit 2); ``-h`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rlmpc", description=__doc__)
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(  # type: ignore[assignment]
        dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check the acados and CasADi installation")
    doctor.set_defaults(func=_doctor)
    demo = sub.add_parser("demo", help="MPC core on a cart-pole, Q-learning on the LTI task, "
                          "export to linux-aarch64 checked under qemu")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.set_defaults(func=_demo)
    train = sub.add_parser("train", help="learn θ of an MPC from interaction with a plant")
    train.add_argument("config", help="training configuration (TOML)")
    train.add_argument("--out", default=None, help="output folder (default: from the config)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--episodes", type=int, default=None, help="episodes (default: from the config)")
    train.add_argument("--steps", type=int, default=None, help="steps per episode (default: from the config)")
    train.add_argument("--seed", type=int, default=None,
                       help="the run's seed (default: from the config; a resumed run needs the same)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--no-plots", action="store_true",
                       help="skip the PNGs (draw them later with `rlmpc plot OUT`)")
    from rlmpc.codegen.boards import ALL_BOARDS as FIRMWARE_BOARDS

    on = train.add_mutually_exclusive_group()
    on.add_argument("--device", dest="target", choices=list(FIRMWARE_BOARDS), default=None,
                    help="learn through this emulated board (or the host program): the controller on it "
                    "computes every action, θ goes with its next step after every update (STEP_THETA_DELTA: "
                    "θ as differences to the device's; STEP_THETA or SET_THETA+STEP to a firmware without it)")
    on.add_argument("--port", default=None, help="learn through a running board at this serial port "
                    "(/dev/ttyACM0, socket://host:port, …), flashed with --bundle")
    train.add_argument("--bundle", default=None, help="with --port: the bundle the board was flashed with")
    train.add_argument("--program", default=None, help="with --device: this firmware build instead of building it")
    train.add_argument("--baud", type=int, default=None, help="with --port: line speed (default 115200)")
    train.add_argument("--budget", type=float, default=None, metavar="N",
                       help="with agent.type = \"bayes\" and --device/--port: the device's worst cost per step "
                       "(its unit: instructions on the emulated boards) a θ may take; over it, a trial is infeasible")
    from rlmpc.hil.faults import SPEC_HELP

    train.add_argument("--faults", default=None, metavar="SPEC",
                       help="with --device/--port: inject link faults while learning: " + SPEC_HELP)
    train.set_defaults(func=_train)
    theta = sub.add_parser("theta", help="θ files: write the definition's θ (an MPC that was not trained)")
    theta_sub = theta.add_subparsers(dest="theta_command", required=True)
    init = theta_sub.add_parser("init", help="write the problem's own θ (initial values) as a θ file")
    init.add_argument("problem", help="a registered problem (built in, or your own through RLMPC_PLUGINS)")
    init.add_argument("--problem-params", default=None,
                      help='JSON object of the problem\'s keyword arguments, e.g. \'{"horizon": 30}\'')
    init.add_argument("--plant", default=None, help="the plant HIL runs it against by default (a registered name)")
    init.add_argument("--out", required=True, help="the θ file to write (must not exist)")
    init.set_defaults(func=_theta_init)
    plot = sub.add_parser("plot", help="draw a training run's plots (after rlmpc train --no-plots)")
    plot.add_argument("run", help="the run's output folder")
    plot.set_defaults(func=_plot)
    export = sub.add_parser("export", help="export learned θ as a C bundle for a target")
    export.add_argument("--theta", required=True, help="θ file written by rlmpc train")
    export.add_argument("--target", required=True, choices=EXPORT_TARGETS,
                        help="linux-x86_64, linux-aarch64 (acados) or cortex-m4 (bare metal)")
    export.add_argument("--ram-limit", type=float, default=None,
                        help=f"cortex-m4: static RAM the solver may take, KB (default "
                        f"{DEFAULT_RAM_LIMIT_KB:g}: an STM32F405's 128 KB SRAM less the firmware's "
                        "own needs)")
    export.add_argument("--precision", default=None, choices=["float32", "float64"],
                        help="floating point type of the bare-metal solver (cortex-m4; default float32)")
    export.add_argument("--rti-warm-start", choices=["shifted", "plan"], default=None,
                        help="cortex-m4, nonlinear problem: linearise each step at the last plan shifted "
                        "by one stage (default: closer to the converged MPC in normal operation) or as it "
                        "is (acados SQP_RTI's method, its closed loops exactly; steadier in large "
                        "transients); see docs/benchmarks.md")
    export.add_argument("--fixed-theta", action="store_true",
                        help="cortex-m4: compile θ and p in (no SET_THETA, no p in STEP; a linear MPC's "
                        "condensed matrices stay in flash: less RAM).  Default: the device takes a new θ "
                        "(SET_THETA, `rlmpc hil --theta`) and p with each STEP")
    export.add_argument("--operating-point", default=None,
                        help='cortex-m4, nonlinear problem: the steady state of the fallback gain, '
                        '\'{"x": [...], "u": [...]}\', or none (after a failed solve the previous plan, '
                        "shifted); default: the problem's operating_point, else its reference (the steady "
                        "state minimising the stage cost), without a gain if that is not stabilisable")
    export.add_argument("--check-box", default=None,
                        help='cortex-m4 --check: the box of the test states, \'{"lb": [...], "ub": [...]}\' '
                        "(default: the problem's check_box, else the reset distribution of the θ file's "
                        "plant, else the state constraints' bounds widened by 20%% of their range and ±1 "
                        "about the operating point for the other states)")
    export.add_argument("--admm-max-iter", type=int, default=None,
                        help="cortex-m4, ADMM path: iterations per step (cap; default 200): a step that reaches it "
                        "returns its last iterate flagged INEXACT; set it from your instruction budget "
                        "(docs/benchmarks.md: hover N = 20, ~10k instructions per iteration)")
    export.add_argument("--admm-rho", type=float, default=None,
                        help="cortex-m4, ADMM path: the penalty rho (default: measured at export for the fewest "
                        "iterations to convergence; with a small cap a smaller rho is better, see docs/benchmarks.md)")
    export.add_argument("--qp", choices=["dense", "structured", "admm"], default=None,
                        help="cortex-m4: the condensed dense QP (DAQP), the structured one (interior point + "
                        "Riccati, memory linear in N) or ADMM on Riccati gains cached at export (time-invariant "
                        "QPs, memory linear in N); default: chosen from the problem's sizes and properties (the "
                        "export report says which and why)")
    export.add_argument("--out", required=True,
                        help="bundle folder: new, empty, or an earlier bundle without files added "
                        "or changed since its export (it is replaced)")
    export.add_argument("--check", action="store_true",
                        help="build the bundle for its target and compare its test program with the MPC")
    export.set_defaults(func=_export)
    from rlmpc.codegen.firmware_cli import add_firmware_commands

    add_firmware_commands(sub)
    from rlmpc.hil.bench_target import add_bench_target_command
    from rlmpc.hil.cli import add_hil_command

    add_bench_target_command(sub)
    add_hil_command(sub)
    from rlmpc.toolkit.sweep.cli import add_scale_commands

    add_scale_commands(sub)
    return parser


def _os_error(exc: OSError) -> str:
    """``PATH: what went wrong`` (a temporary ``.partial-…`` name shown as the file it becomes)."""
    name = exc.filename
    if name is None:
        return str(exc).replace("\n", " ")
    path = Path(str(name))
    for part in path.parts:  # the staging folder of a bundle: .NAME.partial-XXXX → NAME
        if part.startswith(".") and ".partial-" in part:
            path = Path(str(path).split(part)[0]) / part[1:].split(".partial-")[0]
            break
    return f"{path}: {exc.strerror or exc}"


_SIGINT_SEEN: list[bool] = []


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C (KeyboardInterrupt), remembered: library code that swallows the exception
    (CasADi's argument conversion does) cannot make a run go on as if nothing was pressed."""
    _SIGINT_SEEN.append(True)
    raise KeyboardInterrupt


def _raise_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that some library swallowed since `main` began."""
    if _SIGINT_SEEN:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _SIGINT_SEEN.clear()
    # (only over Python's own handler: an ignored SIGINT, as a shell starts `rlmpc … &`, stays ignored)
    previous = (signal.signal(signal.SIGINT, _on_sigint)
                if threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler else None)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        from rlmpc.toolkit.registry import load_plugins

        load_plugins()  # the user's own problems and plants (RLMPC_PLUGINS)
        return int(args.func(args))
    except OSError as exc:  # e.g. an output path that cannot be created
        print(f"rlmpc: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"rlmpc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # (emulators are stopped on the way out)
        print("\nrlmpc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
