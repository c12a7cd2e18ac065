"""Scale-out on this machine (issue #19 goals), side by side in one run:

- a sweep of the LTI example, 8 learning rates × 4 seeds × 2000 steps, with 1 and with 2 workers:
  the speed-up, and the overhead per trial over a bare ``rlmpc train`` of the same configuration;
- ``rlmpc evaluate`` of 1000 episodes with 1 and with 2 workers.

    .venv/bin/python bench/sweep_scaling.py [--rates 8 --seeds 4 --steps 2000 --episodes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RLMPC = str(Path(sys.executable).parent / "rlmpc")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    config = (ROOT / "examples" / "lti_qlearning.toml").read_text().replace("steps = 5000", f"steps = {args.steps}")
    rates = [round(10 ** (-3 + 2 * i / max(1, args.rates - 1)), 6) for i in range(args.rates)]
    with tempfile.TemporaryDirectory(prefix="rlmpc-sweep-bench-") as tmp:
        work = Path(tmp)
        (work / "lti.toml").write_text(config)
        (work / "sweep.toml").write_text(f'[space]\n"agent.optimizer.learning_rate" = {{ grid = {rates} }}\n'
                                         f"seed = {{ grid = {list(range(1, args.seeds + 1))} }}\n")
        trials = args.rates * args.seeds
        timed([RLMPC, "train", "lti.toml", "--out", "warm", "--quiet"], work)  # solvers into the cache
        bare = [timed([RLMPC, "train", "lti.toml", "--out", f"bare{i}", "--quiet"], work) for i in range(3)]
        sweep = {w: timed([RLMPC, "sweep", "lti.toml", "sweep.toml", "--out", f"sweep{w}", "--workers", str(w)], work)
                 for w in (1, 2)}
        trial_times = [json.loads(f.read_text())["trial_time_s"] for f in (work / "sweep1").glob("trials/*/trial.json")]
        train_times = [json.loads(f.read_text())["wall_time_s"]
                       for f in (work / "sweep1").glob("trials/*/summary.json")]
        same = (work / "sweep1" / "sweep_results.json").read_text().count('"greedy_cost_final"')
        theta = str(work / "sweep1" / "theta_best.json")
        ev = {w: timed([RLMPC, "evaluate", theta, "--episodes", str(args.episodes), "--workers", str(w),
                        "--out", f"ev{w}"], work) for w in (1, 2)}
    bare_s = statistics.median(bare)
    print(f"sweep of {trials} trials ({args.rates} learning rates × {args.seeds} seeds × {args.steps} steps)")
    print(f"  1 worker : {sweep[1]:7.1f} s   ({sweep[1] / trials:.2f} s per trial)")
    print(f"  2 workers: {sweep[2]:7.1f} s   speed-up {sweep[1] / sweep[2]:.2f}x")
    print(f"  bare `rlmpc train` of one trial's configuration (a process, median of 3): {bare_s:.2f} s")
    print(f"  overhead per trial, 1 worker, over a bare train: {sweep[1] / trials - bare_s:+.2f} s "
          f"(inside Ray: trial {statistics.median(trial_times):.2f} s vs its training "
          f"{statistics.median(train_times):.2f} s)")
    print(f"evaluate {args.episodes} episodes: 1 worker {ev[1]:.1f} s, 2 workers {ev[2]:.1f} s, "
          f"speed-up {ev[1] / ev[2]:.2f}x   ({same} rows in the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
