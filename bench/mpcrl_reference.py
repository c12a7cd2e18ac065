#!/usr/bin/env python3
"""Reference measurement: mpcrl's LSTD Q-learning or LSTD DPG on the linear MPC of Gros & Zanon (2020).

The script

1. creates (once) a separate virtual environment ``build/mpcrl-venv`` under the repository root and
   pip-installs a pinned ``mpcrl`` stack into it (never the project's ``.venv``); a stamp file in the
   venv records the pins, so later runs skip the installation;
2. runs ``bench/_mpcrl_worker.py`` with that venv's interpreter: with ``--agent q`` (default) the
   experiment of mpcrl's example ``examples/gradient-based-onpolicy/q_learning.py`` (same plant, MPC,
   learnable parameters and ``LstdQLearningAgent`` options, default seed 69), training one episode of
   ``--steps`` steps; with ``--agent dpg`` mpcrl's ``LstdDpgAgent`` with the settings of rlmpc's
   ``examples/lti_dpg.toml`` (``--episodes`` × ``--steps``; where mpcrl differs: the worker's docstring)
   (the examples' logging/plotting wrappers ``Log``, ``RecordUpdates`` and ``MonitorEpisodes`` are left out);
3. prints progress on stderr and, as the last line of stdout, one JSON object, e.g.
   ``{"library": "mpcrl", "version": "1.4.1", "casadi": "3.7.2", "solver": "fatrop", "steps": 1000,
   "seconds_per_step": 0.0079, "greedy_cost_after": 98.8, ...}``.

``seconds_per_step`` is the wall time of ``agent.train(...)`` divided by all steps: it covers the
MPC solves for V and Q, the sensitivities and the parameter updates, not the construction of the MPC
and the agent (reported apart as ``build_seconds``). ``greedy_cost_after`` is the summed stage cost of
a deterministic (greedy) episode of ``--eval-steps`` steps with the learned parameters (disturbance
seed ``--seed`` + 1).

casadi is pinned to 3.7.2: with casadi 3.8.x (Fatrop 1.1.8) the example's Fatrop options stall near
the optimum on this problem and mpcrl aborts the episode. With ``--solver auto`` (the default) a
Fatrop failure makes the worker rerun with ipopt, which the JSON then says in ``solver_note``.
Needs Python >= 3.11 and PyPI access for the first run only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_mpcrl_worker.py"
DEFAULT_VENV = REPO_ROOT / "build" / "mpcrl-venv"
STAMP_NAME = "rlmpc-mpcrl-install.json"

PINS: tuple[str, ...] = (
    "mpcrl==1.4.1",
    "csnlp==1.6.8",
    "casadi==3.7.2",
    "gymnasium==1.4.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "joblib==1.6.0",
    "cloudpickle==3.1.2",
    "Farama-Notifications==0.0.6",
    "typing_extensions==4.16.0",
)
"""Complete, tested set of packages of the reference venv (mpcrl and everything it pulls in)."""


def log(msg: str) -> None:
    """Print a progress message to stderr."""
    print(f"[mpcrl-reference] {msg}", file=sys.stderr, flush=True)


def venv_python(venv: Path) -> Path:
    """Path of the interpreter inside ``venv``."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def clean_env() -> dict[str, str]:
    """The current environment without anything that would leak another venv or PYTHONPATH into a child."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def install_is_current(venv: Path) -> bool:
    """True if ``venv`` has a working interpreter and a stamp listing exactly the current :data:`PINS`."""
    stamp_file = venv / STAMP_NAME
    if not (venv_python(venv).exists() and stamp_file.exists()):
        return False
    try:
        if json.loads(stamp_file.read_text()).get("pins") != list(PINS):
            return False
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
    probe = subprocess.run([str(venv_python(venv)), "-I", "-c", "import mpcrl"], capture_output=True,
                           env=clean_env())
    return probe.returncode == 0


def ensure_venv(venv: Path, base_python: str, force: bool) -> None:
    """Create ``venv`` and install :data:`PINS` into it, unless the stamp says this is already done."""
    if not force and install_is_current(venv):
        log(f"reusing {venv} (stamp {STAMP_NAME} matches the pins)")
        return
    t0 = time.perf_counter()
    log(f"creating {venv} with {base_python} -m venv ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    (venv / STAMP_NAME).unlink(missing_ok=True)
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True, env=clean_env())
    log(f"installing {len(PINS)} pinned packages (first time takes about a minute) ...")
    subprocess.run(
        [str(venv_python(venv)), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
         "--quiet", *PINS],
        check=True,
        env=clean_env(),
        stdout=sys.stderr,
    )
    stamp = {"pins": list(PINS), "created_with": base_python, "installed": time.strftime("%Y-%m-%d %H:%M:%S")}
    (venv / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
    log(f"installation done in {time.perf_counter() - t0:.1f} s")


def run_worker(venv: Path, args: argparse.Namespace) -> dict[str, object]:
    """Run the experiment in ``venv``; stream its stderr, return the JSON object of its last stdout line."""
    cmd = [
        str(venv_python(venv)), "-I", str(WORKER),
        "--agent", args.agent, "--steps", str(args.steps), "--episodes", str(args.episodes),
        "--seed", str(args.seed),
        "--solver", args.solver, "--eval-steps", str(args.eval_steps),
    ]
    log("running " + " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=clean_env(), cwd=REPO_ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    for ln in lines[:-1]:  # anything else the worker printed goes to stderr, keeping stdout parseable
        print(ln, file=sys.stderr)
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"mpcrl worker failed (exit code {proc.returncode})")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise SystemExit(f"mpcrl worker did not end with a JSON line: {lines[-1]!r}") from exc
    if not isinstance(result, dict) or "seconds_per_step" not in result:
        raise SystemExit(f"unexpected worker result: {lines[-1]!r}")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="mpcrl_reference.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agent", choices=("q", "dpg"), default="q",
                   help="q: LSTD Q-learning as in mpcrl's example; dpg: LSTD DPG with the settings of "
                        "examples/lti_dpg.toml (default: q)")
    p.add_argument("--steps", type=int, default=1000, help="training steps per episode (default: 1000)")
    p.add_argument("--episodes", type=int, default=1, help="training episodes (default: 1)")
    p.add_argument("--seed", type=int, default=69, help="seed of agent and disturbance (default: 69)")
    p.add_argument(
        "--solver", choices=("auto", "fatrop", "ipopt"), default="auto",
        help="NLP solver of the MPC: auto = fatrop as in the example, ipopt if fatrop is missing or "
             "fails (default: auto)",
    )
    p.add_argument(
        "--eval-steps", type=int, default=100,
        help="length of the greedy evaluation episode after training; 0 skips it (default: 100)",
    )
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                   help=f"reference venv (default: {DEFAULT_VENV.relative_to(REPO_ROOT)} in the repo root)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that creates the venv (default: the one running this script)")
    p.add_argument("--reinstall", action="store_true", help="recreate the venv even if the stamp matches")
    p.add_argument("--install-only", action="store_true", help="set up the venv and exit without running")
    args = p.parse_args(argv)
    if args.steps < 1 or args.episodes < 1:
        p.error("--steps and --episodes must be >= 1")
    if args.eval_steps < 0:
        p.error("--eval-steps must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Set up the reference venv, run the measurement, print the JSON line last on stdout."""
    args = parse_args(argv)
    venv = args.venv.resolve()
    log("pinned: " + " ".join(PINS))
    ensure_venv(venv, args.python, args.reinstall)
    if args.install_only:
        return 0
    result = run_worker(venv, args)
    log(f"{result['library']} {result['version']} (casadi {result['casadi']}, solver {result['solver']}): "
        f"{1e3 * float(result['seconds_per_step']):.3f} ms/step over {result['steps']} steps")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
