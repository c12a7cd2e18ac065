"""``rlmpc sweep`` and ``rlmpc evaluate``: argument parsing and the console."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rlmpc.toolkit.json_file import read_json
from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder


def _workers(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"--workers: expected an integer >= 1, got {value}")
    return value


def _sweep(args: argparse.Namespace) -> int:
    from rlmpc.toolkit.sweep.ray_session import import_ray, stop_ray
    from rlmpc.toolkit.sweep.results import SWEEP_FILES
    from rlmpc.toolkit.sweep.space import load_sweep
    from rlmpc.toolkit.sweep.tune_run import report_line, run_sweep

    workers = _workers(args.workers)
    import_ray()  # (a one-line error before anything is written when Ray is missing)
    spec = load_sweep(args.sweep, args.config)  # every trial's configuration checked here
    out = Path(args.out)
    if args.resume and not (out / "ray").is_dir():
        raise ValueError(f"--resume: {out} holds no sweep to resume (no {out / 'ray'})")
    if not args.resume and (out / "ray").exists():
        raise ValueError(f"{out}: holds a sweep already: pass --resume to continue it, or choose another --out")
    claim_output_folder(out, "sweep", (*SWEEP_FILES, "trials", "ray"), resume=args.resume,
                        progress=("ray",))
    print(f"sweep: {len(spec.trials)} trials of {args.config} ({', '.join(d.key for d in spec.dimensions)}), "
          f"metric {spec.metric}; Ray {'at ' + args.address if args.address else 'local'}")
    hint = shlex.join(["rlmpc", "sweep", args.config, args.sweep, "--out", args.out, "--resume",
                       *(["--workers", str(workers)] if workers else []),
                       *(["--address", args.address] if args.address else [])])
    try:
        summary = run_sweep(spec, Path(args.config), out, workers=workers, address=args.address,
                            resume=args.resume)
    finally:
        stop_ray()
    print(report_line(summary, out, hint))
    if not summary["interrupted"]:
        complete_output_folder(out, "sweep")
    if summary["interrupted"]:
        return 130
    return 0 if summary["finished"] + summary["stopped_early"] == summary["trials"] else 1


def _plant(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    name, _, params = text.partition(":")
    if not name:
        raise ValueError(f"--plant: expected NAME or NAME:PARAMS.json, got {text!r}")
    data = read_json(Path(params), "--plant parameters") if params else {}
    if not isinstance(data, dict):
        raise ValueError(f"--plant: {params}: expected a JSON object of plant parameters")
    return {"name": name, "params": data}


def _evaluate(args: argparse.Namespace) -> int:
    from rlmpc.toolkit.sweep.evaluate import EVALUATE_FILES, evaluate, timed, write_evaluation
    from rlmpc.toolkit.sweep.ray_session import import_ray, stop_ray
    from rlmpc.toolkit.theta_file import load_theta

    workers = _workers(args.workers)
    for name, value in (("--episodes", args.episodes), ("--steps", args.steps)):
        if value < 1 or value > 10_000_000:
            raise ValueError(f"{name}: expected an integer in [1, 10000000], got {value}")
    if args.seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {args.seed}")
    plant = _plant(args.plant)
    files = [load_theta(f) for f in args.theta]  # every θ file checked before Ray starts
    problems = {tf.fns.problem_hash for tf in files}
    if plant is None:
        missing = [str(tf.path) for tf in files if tf.plant is None]
        if missing:
            raise ValueError(f"{missing[0]}: plant: the θ file names no plant; give --plant NAME")
        if len({json_key(tf.plant) for tf in files}) > 1:
            raise ValueError("θ files: learned on different plants; give --plant to compare them on one")
    import_ray()
    out = claim_output_folder(Path(args.out), "evaluate", EVALUATE_FILES)
    print(f"evaluate: {len(files)} θ × {args.episodes} episodes × {args.steps} steps on Ray "
          f"({'at ' + args.address if args.address else 'local'})"
          + ("; θ files of different problems" if len(problems) > 1 else ""))
    try:
        evaluations, seconds = timed(lambda: evaluate(
            [str(tf.path) for tf in files], episodes=args.episodes, steps=args.steps, seed=args.seed,
            workers=workers, address=args.address, plant=plant))
    finally:
        stop_ray()
    doc = write_evaluation(out, evaluations, {"episodes": args.episodes, "steps": args.steps, "seed": args.seed,
                                              "wall_time_s": seconds, "workers": workers})
    for row in doc["results"]:
        print(f"  {row['theta_file']}: mean {row['mean']:.4g}, 95 % CI [{row['ci95_low']:.4g}, "
              f"{row['ci95_high']:.4g}], {row['episodes_with_violation']} episodes with violations, "
              f"{row['mpc_failures']} MPC failures")
    complete_output_folder(out, "evaluate")
    print(f"report: {out / 'evaluation.md'}  plot: {out / 'evaluation.png'}  ({seconds:.1f} s)")
    return 0


def json_key(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def add_scale_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sweep`` and ``evaluate``."""
    sw = sub.add_parser("sweep", help="hyper-parameter sweep of training runs on Ray Tune")
    sw.add_argument("config", help="training configuration (TOML), as for rlmpc train")
    sw.add_argument("sweep", help="sweep file (TOML): [space] keys to vary, [sweep] options")
    sw.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    sw.add_argument("--workers", type=int, default=None,
                    help="trials run at once (default: every CPU of the local Ray or the cluster)")
    sw.add_argument("--address", default=None,
                    help="join a Ray cluster: auto or ray://HOST:PORT (default: start a local Ray)")
    sw.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    sw.set_defaults(func=_sweep)

    ev = sub.add_parser("evaluate", help="greedy closed loops of θ files on Ray tasks (mean, 95 %% CI)")
    ev.add_argument("theta", nargs="+", help="θ files (from rlmpc train, rlmpc sweep or rlmpc theta init)")
    ev.add_argument("--episodes", type=int, default=200, help="episodes per θ (default 200)")
    ev.add_argument("--steps", type=int, default=100, help="steps per episode (default 100)")
    ev.add_argument("--seed", type=int, default=1000, help="episode e uses seed SEED + e (default 1000)")
    ev.add_argument("--plant", default=None,
                    help="NAME[:PARAMS.json]: the plant (default: the one the θ files were learned on)")
    ev.add_argument("--out", default="runs/evaluate", help="output folder (default runs/evaluate)")
    ev.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray (default: all)")
    ev.add_argument("--address", default=None, help="join a Ray cluster: auto or ray://HOST:PORT")
    ev.set_defaults(func=_evaluate)
