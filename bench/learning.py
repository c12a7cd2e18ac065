"""Benchmark of learning: wall time per training step on the LTI task.

Times whole training steps (environment step, MPC solves, sensitivities,
optimiser, bookkeeping; no progress bar) of second-order LSTD Q-learning and
of DPG, with the configurations in ``examples/``.  Goal: ≤ 0.5 ms per
Q-learning step.  With ``--mpcrl`` the `mpcrl` library's LTI Q-learning runs in
its own virtual environment in the same invocation and the ratio is printed.

    .venv/bin/python bench/learning.py [--steps 2000] [--mpcrl]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mpc_core import run_mpcrl  # noqa: E402

from toolkit.rl.config import load_config  # noqa: E402
from toolkit.rl.training import Trainer  # noqa: E402

GOAL_MS = 0.5


def time_training(config: Path, steps: int | None) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, output=Path(tmp) / "run")
        if steps is not None:
            from dataclasses import replace

            cfg = replace(cfg, steps=steps, episodes=1)
        trainer = Trainer(cfg, progress_bar=False)
        trainer.evaluate = lambda theta: float("nan")  # type: ignore[method-assign]
        summary = trainer.run()
    return float(summary["ms_per_step"]), summary  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per agent")
    parser.add_argument("--mpcrl", action="store_true", help="time mpcrl side by side")
    args = parser.parse_args()
    q_ms, _ = time_training(ROOT / "examples" / "lti_qlearning.toml", args.steps)
    d_ms, _ = time_training(ROOT / "examples" / "lti_dpg.toml", None)
    print(f"LTI second-order LSTD Q-learning: {q_ms:.3f} ms per training step "
          f"({'meets' if q_ms <= GOAL_MS else 'MISSES'} the goal of {GOAL_MS} ms)")
    print(f"LTI DPG (50 episodes x 100 steps): {d_ms:.3f} ms per training step")
    if args.mpcrl:
        ref = run_mpcrl(args.steps)
        if ref is not None:
            ms = float(ref["seconds_per_step"]) * 1e3  # type: ignore[arg-type]
            print(f"mpcrl {ref.get('version')} ({ref.get('solver')}): {ms:.2f} ms per training step "
                  f"-> rlmpc is {ms / q_ms:.1f}x faster")


if __name__ == "__main__":
    main()
