#!/usr/bin/env python3
"""Does the learning pull a parameter back?  The same seeded training run, once as written and once
with one component of θ kicked by ±δ right after update K; if the learning has a unique fixed point in
that direction, the kicked runs return to the unkicked one, otherwise the kick stays.

For each kick it prints the component at update K, K + 100, K + 1000, … and at the end, and the learned
greedy cost (the configuration's ``[evaluation]``):

    .venv/bin/python bench/learning_fixed_points.py examples/lti_qlearning.toml --seed 1 \\
        --component 'x_lb[0]' --kick 0.03 --after 5000 --steps 12000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlmpc.toolkit.rl.config import load_config  # noqa: E402
from rlmpc.toolkit.rl.training import Trainer  # noqa: E402


def run(config: str, seed: int, steps: int, index: int, kick: float, after: int,
        out: Path) -> tuple[np.ndarray, float]:
    """Train once, adding ``kick`` to θ[index] right after update ``after``; θ after every step and
    the learned greedy cost."""
    cfg = load_config(config, output=out, overrides={"seed": seed, "steps": steps, "episodes": 1})
    trainer = Trainer(cfg, progress_bar=False, plots=False)
    agent = trainer.agent
    agent.native = False  # (the kick hooks the Python path's update; the compiled step computes the same)
    update = agent._update

    def kicked(grad: np.ndarray, hessian: np.ndarray | None) -> None:
        update(grad, hessian)
        if agent.updates == after and kick:
            theta = agent.mpc.theta.copy()
            theta[index] += kick
            agent.mpc.theta = theta

    agent._update = kicked  # type: ignore[method-assign]
    summary = trainer.run()
    return np.asarray(trainer.history.theta), float(summary["greedy_cost_final"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--component", required=True, help="the θ component to kick, e.g. 'x_lb[0]'")
    ap.add_argument("--kick", type=float, default=0.03, help="δ: the runs kick by +δ and by −δ")
    ap.add_argument("--after", type=int, default=5000, help="kick right after this update")
    ap.add_argument("--steps", type=int, default=12000, help="steps of the (single-episode) run")
    args = ap.parse_args()
    try:
        cfg = load_config(args.config, overrides={"seed": args.seed})
    except ValueError as exc:
        ap.error(str(exc))
    if not 0 < args.after < args.steps:
        ap.error(f"--after: expected 0 < K < --steps ({args.steps}), got {args.after}")
    if not args.kick > 0:
        ap.error(f"--kick: expected a positive δ, got {args.kick}")
    labels = Trainer(cfg, progress_bar=False, plots=False).mpc.fns.theta.labels()
    if args.component not in labels:
        ap.error(f"--component: {args.component!r} is not a θ component; expected one of {labels}")
    index = labels.index(args.component)
    marks = [k for k in (args.after, args.after + 100, args.after + 1000, args.after + 3000) if k < args.steps]
    with tempfile.TemporaryDirectory() as tmp:
        for kick in (0.0, args.kick, -args.kick):
            theta, cost = run(args.config, args.seed, args.steps, index, kick, args.after, Path(tmp) / f"{kick:+g}")
            path = " ".join(f"{k}:{theta[k - 1, index]:.4g}" for k in [*marks, args.steps])
            print(f"kick {kick:+g}: {args.component} at update {path} | learned greedy cost {cost:.4g}", flush=True)


if __name__ == "__main__":
    main()
