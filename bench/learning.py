"""Benchmark of learning: wall time per training step on the LTI task.

Times whole training steps (environment step, MPC solves, sensitivities,
optimiser, bookkeeping; no progress bar) of second-order LSTD Q-learning and
of DPG, with the configurations in ``examples/``.  Goal: ≤ 0.5 ms per
Q-learning step.  For Q-learning it also reports the MPC work inside those steps
(Q solve, V solve, ∇θQ with ∂²L/∂θ²) and, with ``--repeat``, min and median over
repeated runs (the machine is shared and noisy).  With ``--mpcrl`` the `mpcrl`
library's LTI Q-learning runs in its own virtual environment in the same
invocation and the ratio is printed.

    .venv/bin/python bench/learning.py [--steps 2000] [--repeat 1] [--no-dpg] [--mpcrl]
    .venv/bin/python bench/learning.py --quadrotor   # DPG on a 12-state/4-input MPC, N = 20

``--quadrotor``: DPG training steps per second on the quadrotor-hover MPC of
bench/quadrotor_mpc.py (12 states, 4 inputs, N = 20, nθ = 31; goal ≥ 100 steps/s), and the time of
writing the run's outputs (θ files, history, plots, summary).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mpc_core import run_mpcrl  # noqa: E402

from rlmpc.toolkit.rl.config import load_config  # noqa: E402
from rlmpc.toolkit.rl.training import Trainer  # noqa: E402

GOAL_MS = 0.5


def time_training(config: Path, steps: int | None,
                  mpc_work: list[float] | None = None) -> tuple[float, dict[str, object]]:
    """ms per training step; with ``mpc_work`` (a list) also appends the MPC work in ms per step."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, output=Path(tmp) / "run")
        if steps is not None:
            from dataclasses import replace

            cfg = replace(cfg, steps=steps, episodes=1)
        trainer = Trainer(cfg, progress_bar=False)
        trainer.evaluate = lambda theta: float("nan")  # type: ignore[method-assign]
        seconds = [0.0]
        if mpc_work is not None:
            mpc, sens = trainer.mpc, trainer.mpc.sensitivities
            for obj, name in ((mpc, "q_value"), (mpc, "value"), (sens, "grad_and_hessian_theta")):
                setattr(obj, name, _timed(getattr(obj, name), seconds))
        start = time.perf_counter()
        summary = trainer.run()
        summary["outputs_s"] = time.perf_counter() - start - float(summary["wall_time_s"])  # type: ignore[arg-type]
        if mpc_work is not None:
            mpc_work.append(1e3 * seconds[0] / max(int(summary["steps"]), 1))  # type: ignore[call-overload]
    return float(summary["ms_per_step"]), summary  # type: ignore[arg-type]


def _timed(fn: Callable[..., object], seconds: list[float]) -> Callable[..., object]:
    def timed(*args: object) -> object:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            seconds[0] += time.perf_counter() - start
    return timed


QUADROTOR_DPG = """seed = 1
episodes = {episodes}
steps = 100
checkpoint_every = 100000
[env]
name = "QuadrotorHover"
[mpc]
problem = "quadrotor"
params = {{ horizon = 20 }}
[mpc.solver]
qp_solver = "PARTIAL_CONDENSING_HPIPM"
[agent]
type = "dpg"
optimizer = {{ type = "sgd", learning_rate = 1e-4 }}
exploration = {{ type = "gaussian", std = 0.05 }}
[evaluation]
episodes = 1
steps = 50
"""
GOAL_DPG_STEPS_PER_S = 100.0


def quadrotor_dpg(episodes: int) -> None:
    from quadrotor_mpc import QuadrotorHover, quadrotor_mpc

    from rlmpc.toolkit.registry import register_plant, register_problem

    register_problem("quadrotor", quadrotor_mpc)
    register_plant("QuadrotorHover", QuadrotorHover)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quad_dpg.toml"
        path.write_text(QUADROTOR_DPG.format(episodes=episodes))
        ms, summary = time_training(path, None)
    rate = 1e3 / ms
    print(f"DPG, 12-state/4-input quadrotor MPC, N = 20: {ms:.3f} ms per training step = {rate:.0f} steps/s "
          f"({'meets' if rate >= GOAL_DPG_STEPS_PER_S else 'MISSES'} the goal of {GOAL_DPG_STEPS_PER_S:.0f}); "
          f"MPC failures {summary['mpc_failures']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per agent")
    parser.add_argument("--repeat", type=int, default=1, help="Q-learning runs (min and median)")
    parser.add_argument("--no-dpg", action="store_true", help="skip the DPG timing")
    parser.add_argument("--mpcrl", action="store_true", help="time mpcrl side by side")
    parser.add_argument("--quadrotor", action="store_true", help="only DPG on the 12-state quadrotor MPC")
    parser.add_argument("--episodes", type=int, default=10, help="with --quadrotor: 100-step episodes")
    args = parser.parse_args()
    if args.quadrotor:
        quadrotor_dpg(args.episodes)
        return
    runs, work = [], []
    for i in range(max(args.repeat, 1)):
        ms, last = time_training(ROOT / "examples" / "lti_qlearning.toml", args.steps, work)
        runs.append(ms)
        if args.repeat > 1:
            print(f"  run {i + 1}: {ms:.3f} ms per step (MPC work {work[-1]:.3f} ms)", flush=True)
    q_ms = min(runs)
    print(f"LTI second-order LSTD Q-learning: {q_ms:.3f} ms per training step "
          f"({'meets' if q_ms <= GOAL_MS else 'MISSES'} the goal of {GOAL_MS} ms)"
          + (f"; median {statistics.median(runs):.3f} ms over {len(runs)} runs" if len(runs) > 1
             else ""))
    print(f"  of which MPC work (Q, V, ∇θQ, ∂²L/∂θ²): min {min(work):.3f} ms, "
          f"median {statistics.median(work):.3f} ms per step")
    print(f"  writing the run's outputs (θ files, history, evaluation, plots, summary): "
          f"{last['outputs_s']:.2f} s after {float(last['wall_time_s']):.2f} s of training")
    if not args.no_dpg:
        d_ms, _ = time_training(ROOT / "examples" / "lti_dpg.toml", None)
        print(f"LTI DPG (50 episodes x 100 steps): {d_ms:.3f} ms per training step")
    if args.mpcrl:
        ref = run_mpcrl(args.steps)
        if ref is not None:
            ms = float(ref["seconds_per_step"]) * 1e3  # type: ignore[arg-type]
            print(f"mpcrl {ref.get('version')} ({ref.get('solver')}): {ms:.2f} ms per training step "
                  f"-> rlmpc is {ms / q_ms:.1f}x faster; mpcrl's greedy cost after training "
                  f"{ref.get('greedy_cost_after')} ({ref.get('greedy_eval_steps')} steps)")


if __name__ == "__main__":
    main()
