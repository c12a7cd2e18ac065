"""Benchmark of learning: wall time per training step on the LTI task.

Times whole training steps (environment step, MPC solves, sensitivities,
optimiser, bookkeeping; no progress bar) of second-order LSTD Q-learning and
of DPG, with the configurations in ``examples/``.  Goal: ≤ 0.5 ms per
Q-learning step.  For Q-learning it also reports the MPC work inside those steps
(Q solve, V solve, ∇θQ with ∂²L/∂θ²) and, with ``--repeat``, min and median over
repeated runs (the machine is shared and noisy).  With ``--mpcrl`` the `mpcrl`
library runs the same two tasks in its own virtual environment in the same
invocation (bench/_mpcrl_worker.py: its LSTD Q-learning example, and its LSTD DPG
agent with the settings of ``examples/lti_dpg.toml``), and a side-by-side table
prints per-step times, their ratios and the learned costs.  The learned costs are
the greedy closed-loop costs of each learned θ on rlmpc's evaluation of the
example (``[evaluation]``: 5 episodes × 100 steps, the same noise for all θ), so
both libraries' θ are scored alike; mpcrl's own 100-step evaluation is shown too.

    .venv/bin/python bench/learning.py [--steps 2000] [--repeat 1] [--no-dpg] [--mpcrl]
    .venv/bin/python bench/learning.py --steps 5000 --mpcrl --repeat 3   # issue #17's side by side
    .venv/bin/python bench/learning.py --profile [--top 15]   # cProfile of both agents' training steps
    .venv/bin/python bench/learning.py --quadrotor   # DPG on a 12-state/4-input MPC, N = 20

``--quadrotor``: DPG training steps per second on the quadrotor-hover MPC of
bench/quadrotor_mpc.py (12 states, 4 inputs, N = 20, nθ = 31; goal ≥ 100 steps/s), the same seeded
run with ∇θπ by the Riccati pass (the default at this size) and by the reduced KKT solve, and how
far apart their learned θ end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# one BLAS/OpenMP thread here and in the mpcrl worker (inherits the environment): the problems are
# tiny, and on a shared machine extra threads only add contention
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from mpc_core import run_mpcrl  # noqa: E402

from rlmpc.toolkit.rl.config import load_config  # noqa: E402
from rlmpc.toolkit.rl.training import Trainer  # noqa: E402

GOAL_MS = 0.5
GOAL_RATIO = 30.0  # issue #17: each agent's step ≥ 30× faster than mpcrl's


def greedy_cost_of(config: Path, theta: np.ndarray | dict[str, object]) -> float:
    """The greedy closed-loop cost of θ (a flat vector or mpcrl's named values) on the example's
    ``[evaluation]`` (same noise for every θ); NaN if θ lies outside rlmpc's bounds of θ."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(load_config(config, output=Path(tmp) / "run"), progress_bar=False)
        params = trainer.mpc.fns.theta
        flat = params.flatten({k: np.asarray(v, dtype=float) for k, v in theta.items()}, check_bounds=False) \
            if isinstance(theta, dict) else np.asarray(theta, dtype=float)
        if np.any(flat < params.lower()) or np.any(flat > params.upper()):
            return float("nan")
        return trainer.evaluate(flat)


def side_by_side(rows: list[tuple[str, Path, float, np.ndarray, dict[str, object] | None]],
                 cpu: list[float] | None = None) -> None:
    """Per-step times, ratios and learned costs of rlmpc and mpcrl, one row per agent; with ``cpu``
    (rlmpc's CPU ms per step, one per row) also the ratio of CPU times, which other jobs on a
    shared machine disturb far less than wall times."""
    print(f"\n{'agent':<12} {'rlmpc ms/step':>14} {'mpcrl ms/step':>14} {'ratio':>7} {'goal':>6} "
          f"{'learned cost rlmpc':>19} {'mpcrl':>8} {'(mpcrl own eval)':>17}")
    for i, (name, config, ms, theta, ref) in enumerate(rows):
        ours = greedy_cost_of(config, theta)
        if ref is None:
            print(f"{name:<12} {ms:14.3f} {'(failed)':>14}")
            continue
        ref_ms = 1e3 * float(ref["seconds_per_step"])  # type: ignore[arg-type]
        ratio = ref_ms / ms
        own = ref.get("greedy_cost_after")
        theirs = greedy_cost_of(config, ref["learned"])  # type: ignore[arg-type]
        print(f"{name:<12} {ms:14.3f} {ref_ms:14.2f} {ratio:6.1f}x {'met' if ratio >= GOAL_RATIO else 'MISS':>6} "
              f"{ours:19.3f} {theirs:8.3f} {float(own) if isinstance(own, int | float) else float('nan'):17.3f}")
        ref_cpu = ref.get("cpu_seconds_per_step")
        if cpu is not None and isinstance(ref_cpu, int | float):
            print(f"{'':<12} CPU time: rlmpc {cpu[i]:.3f} ms/step, mpcrl {1e3 * ref_cpu:.2f} ms/step: "
                  f"{1e3 * ref_cpu / cpu[i]:.1f}x")
        if ref.get("solver_note"):
            print(f"  mpcrl {name}: {ref['solver_note']}")
    print(f"(mpcrl {rows[0][4].get('version') if rows[0][4] else '?'}; learned cost = greedy cost on the example's "
          "[evaluation], the same noise for both; mpcrl's own evaluation: 1 episode of 100 steps)")


def time_training(config: Path, steps: int | None, mpc_work: list[float] | None = None,
                  learned: list[np.ndarray] | None = None) -> tuple[float, dict[str, object]]:
    """ms per training step; with ``mpc_work`` (a list) also appends the MPC work in ms per step, with
    ``learned`` the learned θ."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, output=Path(tmp) / "run")
        if steps is not None:
            from dataclasses import replace

            cfg = replace(cfg, steps=steps, episodes=1)
        trainer = Trainer(cfg, progress_bar=False)
        trainer.evaluate = lambda theta: float("nan")  # type: ignore[method-assign]
        seconds = [0.0]
        if mpc_work is not None:
            native = getattr(trainer.agent, "_native", None)
            mpc, sens = trainer.mpc, trainer.mpc.sensitivities
            # the compiled step (solves, sample and Newton update in one call) or the Python path's calls
            hooks = (((native, "run"),) if native is not None else
                     ((mpc, "q_and_value"), (mpc, "q_value"), (mpc, "value"), (sens, "grad_and_hessian_theta")))
            for obj, name in hooks:
                setattr(obj, name, _timed(getattr(obj, name), seconds))
        start = time.perf_counter()
        summary = trainer.run()
        summary["outputs_s"] = time.perf_counter() - start - float(summary["wall_time_s"])  # type: ignore[arg-type]
        if mpc_work is not None:
            mpc_work.append(1e3 * seconds[0] / max(int(summary["steps"]), 1))  # type: ignore[call-overload]
        if learned is not None:
            learned.append(trainer.mpc.theta)
    return float(summary["ms_per_step"]), summary  # type: ignore[arg-type]


def profile_training(config: Path, steps: int | None, top: int) -> None:
    """Print the ``top`` entries by own time of a cProfile of the training (outputs and evaluation
    excluded; cProfile's own overhead inflates the Python-heavy entries)."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, output=Path(tmp) / "run")
        if steps is not None:
            from dataclasses import replace

            cfg = replace(cfg, steps=steps, episodes=1)
        trainer = Trainer(cfg, progress_bar=False, plots=False)
        trainer.evaluate = lambda theta: float("nan")  # type: ignore[method-assign]
        prof = cProfile.Profile()
        prof.enable()
        summary = trainer.run()
        prof.disable()
    print(f"\n{config.name}: {summary['steps']} steps, {summary['ms_per_step']:.3f} ms per step under cProfile")
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


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


@contextlib.contextmanager
def pi_method(method: str, noise: float = 0.0) -> Iterator[None]:
    """Within the block, ∇θπ takes ``method`` (see `Sensitivities.policy_jacobian`); ``noise`` > 0
    multiplies each entry by (1 + noise·N(0,1)) (seeded): a rounding-sized perturbation."""
    from rlmpc.toolkit.sensitivities import Sensitivities

    original = Sensitivities.policy_jacobian
    rng = np.random.default_rng(0)

    def forced(self: Sensitivities, sol: object, method_: str = method) -> np.ndarray:
        jac = original(self, sol, method=method)  # type: ignore[arg-type]
        return jac * (1.0 + noise * rng.standard_normal(jac.shape)) if noise else jac

    Sensitivities.policy_jacobian = forced  # type: ignore[assignment, method-assign]
    try:
        yield
    finally:
        Sensitivities.policy_jacobian = original  # type: ignore[method-assign]


def quadrotor_dpg(episodes: int) -> None:
    """The same seeded DPG run with ∇θπ by the default path (the Riccati pass at this size), by the
    reduced KKT solve (the default before it) and by the reduced KKT solve perturbed by 1e-13 (relative):
    steps/s of each, and how far apart the learned θ end (the last pair shows how much this run amplifies
    rounding-sized differences of ∇θπ)."""
    from quadrotor_mpc import QuadrotorHover, quadrotor_mpc

    from rlmpc.toolkit.registry import register_plant, register_problem

    register_problem("quadrotor", quadrotor_mpc)
    register_plant("QuadrotorHover", QuadrotorHover)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quad_dpg.toml"
        path.write_text(QUADROTOR_DPG.format(episodes=episodes))
        for label, method, noise in (("Riccati (default)", "auto", 0.0), ("reduced KKT", "sparse", 0.0),
                                     ("reduced KKT × (1 + 1e-13 noise)", "sparse", 1e-13)):
            learned: list[np.ndarray] = []
            with pi_method(method, noise):
                ms, summary = time_training(path, None, learned=learned)
            results[label] = (ms, learned[0])
            rate = 1e3 / ms
            print(f"DPG, 12-state/4-input quadrotor MPC, N = 20, ∇θπ {label}: {ms:.3f} ms per training step = "
                  f"{rate:.0f} steps/s ({'meets' if rate >= GOAL_DPG_STEPS_PER_S else 'MISSES'} the goal of "
                  f"{GOAL_DPG_STEPS_PER_S:.0f}); MPC failures {summary['mpc_failures']}", flush=True)
    (a_ms, a_theta), (b_ms, b_theta), (_, c_theta) = results.values()
    print(f"  step time Riccati / reduced KKT: {a_ms / b_ms:.2f}; learned θ, max |difference|: Riccati vs "
          f"reduced KKT {float(np.abs(a_theta - b_theta).max()):.2g}, reduced KKT vs its 1e-13 perturbation "
          f"{float(np.abs(c_theta - b_theta).max()):.2g} (|θ| up to {float(np.abs(b_theta).max()):.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per agent")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Q-learning runs (min and median); with --mpcrl: interleaved pairs per agent")
    parser.add_argument("--no-dpg", action="store_true",
                        help="skip the DPG timing (not with --mpcrl, which compares both agents)")
    parser.add_argument("--mpcrl", action="store_true", help="time mpcrl side by side")
    parser.add_argument("--quadrotor", action="store_true", help="only DPG on the 12-state quadrotor MPC")
    parser.add_argument("--episodes", type=int, default=10, help="with --quadrotor: 100-step episodes")
    parser.add_argument("--profile", action="store_true", help="only cProfile both agents' training")
    parser.add_argument("--top", type=int, default=15, help="with --profile: entries shown per agent")
    args = parser.parse_args()
    if args.profile:
        profile_training(ROOT / "examples" / "lti_qlearning.toml", args.steps, args.top)
        profile_training(ROOT / "examples" / "lti_dpg.toml", None, args.top)
        return
    if args.quadrotor:
        quadrotor_dpg(args.episodes)
        return
    q_config, d_config = ROOT / "examples" / "lti_qlearning.toml", ROOT / "examples" / "lti_dpg.toml"
    if args.mpcrl:
        interleaved(q_config, d_config, args.steps, max(args.repeat, 1))
        return
    runs, work, q_thetas, cpus = [], [], [], []  # type: ignore[var-annotated]
    for i in range(max(args.repeat, 1)):
        ms, last = time_training(q_config, args.steps, work, q_thetas)
        runs.append(ms)
        cpus.append(float(last["cpu_ms_per_step"]))  # type: ignore[arg-type]
        if args.repeat > 1:
            print(f"  run {i + 1}: {ms:.3f} ms per step (MPC work {work[-1]:.3f} ms)", flush=True)
    q_ms = min(runs)
    print(f"LTI second-order LSTD Q-learning: {q_ms:.3f} ms per training step (CPU {min(cpus):.3f} ms) "
          f"({'meets' if q_ms <= GOAL_MS else 'MISSES'} the goal of {GOAL_MS} ms)"
          + (f"; median {statistics.median(runs):.3f} ms over {len(runs)} runs" if len(runs) > 1
             else ""))
    print(f"  of which MPC work (Q, V, ∇θQ, ∂²L/∂θ²; with the compiled step also the Newton update): "
          f"min {min(work):.3f} ms, "
          f"median {statistics.median(work):.3f} ms per step")
    print(f"  writing the run's outputs (θ files, history, evaluation, plots, summary): "
          f"{last['outputs_s']:.2f} s after {float(last['wall_time_s']):.2f} s of training")
    if not args.no_dpg:
        d_ms, d_last = time_training(d_config, None)
        print(f"LTI DPG (50 episodes x 100 steps): {d_ms:.3f} ms per training step "
              f"(CPU {float(d_last['cpu_ms_per_step']):.3f} ms)")  # type: ignore[arg-type]


def interleaved(q_config: Path, d_config: Path, q_steps: int, repeat: int) -> None:
    """rlmpc and mpcrl in turn, ``repeat`` times per agent (A B A B …: a machine whose speed drifts
    slows both alike); per agent the minimum of each library's per-step times, their ratio, and the
    median of the ratios pair by pair; then the learned costs."""
    d_cfg = load_config(d_config)
    agents = [("Q-learning", q_config, q_steps, ("--agent", "q")),
              ("DPG", d_config, None, ("--agent", "dpg", "--episodes", str(d_cfg.episodes)))]
    rows, cpus = [], []
    for name, config, steps, extra in agents:
        ours, theirs, our_cpu, thetas, refs = [], [], [], [], []
        for i in range(repeat):
            ms, last = time_training(config, steps, learned=thetas)
            ours.append(ms)
            our_cpu.append(float(last["cpu_ms_per_step"]))  # type: ignore[arg-type]
            ref = run_mpcrl(steps if steps is not None else d_cfg.steps, *extra)
            if ref is None:
                break
            refs.append(ref)
            theirs.append(1e3 * float(ref["seconds_per_step"]))  # type: ignore[arg-type]
            print(f"  {name} pair {i + 1}: rlmpc {ms:.3f} ms, mpcrl {theirs[-1]:.2f} ms per step: "
                  f"{theirs[-1] / ms:.1f}x", flush=True)
        if not refs:
            rows.append((name, config, min(ours), thetas[0], None))
            cpus.append(min(our_cpu))
            continue
        ratios = [t / o for o, t in zip(ours, theirs, strict=False)]
        print(f"{name}: rlmpc min {min(ours):.3f} ms, mpcrl min {min(theirs):.2f} ms per step: ratio of the "
              f"minima {min(theirs) / min(ours):.1f}x, median of the {len(ratios)} pairs' ratios "
              f"{statistics.median(ratios):.1f}x (range {min(ratios):.1f}–{max(ratios):.1f}x)")
        best = dict(refs[int(np.argmin(theirs))])
        best["seconds_per_step"] = min(theirs) / 1e3
        rows.append((name, config, min(ours), thetas[0], best))
        cpus.append(min(our_cpu))
    side_by_side(rows, cpu=cpus)


if __name__ == "__main__":
    main()
