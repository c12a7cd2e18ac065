"""Worker for ``bench/mpcrl_reference.py``: runs inside ``build/mpcrl-venv``, never the project venv.

It rebuilds the linear-MPC experiment of Gros & Zanon (2020) as in mpcrl's examples (same plant, MPC
and learnable parameters), trains one agent, times the training and prints one JSON line on stdout.
The examples' ``Log``/``RecordUpdates``/``MonitorEpisodes`` wrappers only serve logging and plotting
and are left out. Progress goes to stderr.

``--agent q`` (default): second-order LSTD Q-learning as in ``examples/gradient-based-onpolicy/
q_learning.py`` (agent options and seed of the example), one episode of ``--steps`` steps.

``--agent dpg``: mpcrl's ``LstdDpgAgent`` with the settings of rlmpc's ``examples/lti_dpg.toml`` as
far as mpcrl allows: ``--episodes`` episodes of ``--steps`` steps from x0 = [0, 0.15], additive
Gaussian exploration σ = 0.1 on the greedy action (``GreedyExploration(0.1, mode="additive")``, clipped
to the input bounds), plain gradient descent, one update at the end of every episode from that
episode's rollout. The learning rate is 1e-3 / steps: mpcrl's policy gradient sums ∇θπ ∇θπᵀ w over the
rollout's steps where rlmpc averages them, so both take the same step (with 1e-3 itself mpcrl's θ leaves
any sensible range after one episode). Differences that mpcrl's design imposes: its critic is the
compatible-feature CAFA fit (a ridge regression for the state-value weights v, then one for the
advantage weights w) where rlmpc solves one joint LSTD system for (w, v); its ∇θπ is a CasADi
sparse (csparse) solve of the whole KKT system, computed for the rollout at the episode's end,
where rlmpc computes it at every step; its exploration noise comes from its own generator; its θ has
no bounds (rlmpc's has the bounds of ``rlmpc.toolkit.problems.lti``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import casadi as cs
import csnlp
import gymnasium as gym
import mpcrl
import numpy as np
import numpy.typing as npt
from csnlp import Nlp
from csnlp.wrappers import Mpc
from gymnasium.spaces import Box
from gymnasium.wrappers import TimeLimit
from mpcrl import LearnableParameter, LearnableParametersDict, LstdDpgAgent, LstdQLearningAgent
from mpcrl import exploration as mpcrl_exploration
from mpcrl import optim as mpcrl_optim
from mpcrl.util.control import dlqr

# mpcrl spells the optimizer ``NetwonMethod`` in older releases and ``NewtonMethod`` in newer ones.
NewtonOptimizer = getattr(mpcrl_optim, "NewtonMethod", None) or mpcrl_optim.NetwonMethod


def log(msg: str) -> None:
    """Print a progress message to stderr."""
    print(f"[mpcrl-worker] {msg}", file=sys.stderr, flush=True)


class LtiSystem(gym.Env[npt.NDArray[np.floating], float]):
    """x⁺ = A x + B a + [e; 0], e ~ U(−0.1, 0); the reward is the stage cost of the state before the step.

    Step times (``time.perf_counter`` at each ``step`` call) are recorded in ``step_stamps`` so the
    caller can derive per-step wall times of the whole training loop.
    """

    nx = 2
    nu = 1
    A = np.asarray([[0.9, 0.35], [0.0, 1.1]])
    B = np.asarray([[0.0813], [0.2]])
    x_bnd = (np.asarray([[0.0], [-1.0]]), np.asarray([[1.0], [1.0]]))
    a_bnd = (-1.0, 1.0)
    w = np.asarray([[1e2], [1e2]])
    e_bnd = (-1e-1, 0.0)
    action_space = Box(*a_bnd, (nu,), np.float64)

    def __init__(self) -> None:
        super().__init__()
        self.x = np.zeros((self.nx, 1))
        self.step_stamps: list[float] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.floating], dict[str, Any]]:
        """Reset the state to x0 = [0, 0.15] (``seed`` seeds the disturbance)."""
        super().reset(seed=seed, options=options)
        self.x = np.asarray([0.0, 0.15]).reshape(self.nx, 1)
        return self.x, {}

    def get_stage_cost(self, state: npt.NDArray[np.floating], action: float) -> float:
        """0.5 (xᵀx + 0.5 a² + wᵀ max(0, lb − x) + wᵀ max(0, x − ub))."""
        lb, ub = self.x_bnd
        return 0.5 * float(
            (
                np.square(state).sum()
                + 0.5 * action**2
                + self.w.T @ np.maximum(0, lb - state)
                + self.w.T @ np.maximum(0, state - ub)
            ).item()
        )

    def step(self, action: Any) -> tuple[npt.NDArray[np.floating], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` and return the stage cost of the state before the step as reward."""
        self.step_stamps.append(time.perf_counter())
        a = float(action.item()) if isinstance(action, np.ndarray) else float(action)  # DPG: clipped ndarray
        x_new = self.A @ self.x + self.B * a
        x_new[0] += self.np_random.uniform(*self.e_bnd)
        cost = self.get_stage_cost(self.x, a)
        self.x = x_new
        return x_new, cost, False, False, {}


class LinearMpc(Mpc[cs.SX]):
    """The parametrised linear MPC of the example (N = 10, γ = 0.9, soft state bounds on x_1..x_N)."""

    horizon = 10
    discount_factor = 0.9
    learnable_pars_init: dict[str, npt.NDArray[np.floating]] = {  # noqa: RUF012
        "V0": np.asarray(0.0),
        "x_lb": np.asarray([0.0, 0.0]),
        "x_ub": np.asarray([1.0, 0.0]),
        "b": np.zeros(LtiSystem.nx),
        "f": np.zeros(LtiSystem.nx + LtiSystem.nu),
        "A": np.asarray([[1.0, 0.25], [0.0, 1.0]]),
        "B": np.asarray([[0.0312], [0.25]]),
    }

    def __init__(self, solver: str) -> None:
        N = self.horizon
        gamma = self.discount_factor
        w = LtiSystem.w
        nx, nu = LtiSystem.nx, LtiSystem.nu
        x_bnd, a_bnd = LtiSystem.x_bnd, LtiSystem.a_bnd
        super().__init__(Nlp[cs.SX](), N)

        V0 = self.parameter("V0")
        x_lb = self.parameter("x_lb", (nx,))
        x_ub = self.parameter("x_ub", (nx,))
        b = self.parameter("b", (nx, 1))
        f = self.parameter("f", (nx + nu, 1))
        A = self.parameter("A", (nx, nx))
        B = self.parameter("B", (nx, nu))

        x, _ = self.state("x", nx, bound_initial=False)
        u, _ = self.action("u", nu, lb=a_bnd[0], ub=a_bnd[1])
        s, _, _ = self.variable("s", (nx, N), lb=0)

        self.set_affine_dynamics(A, B, c=b)
        self.constraint("x_lb", x_bnd[0] + x_lb - s, "<=", x[:, 1:])
        self.constraint("x_ub", x[:, 1:], "<=", x_bnd[1] + x_ub + s)

        A_init, B_init = self.learnable_pars_init["A"], self.learnable_pars_init["B"]
        S = cs.DM(dlqr(A_init, B_init, 0.5 * np.eye(nx), 0.25 * np.eye(nu))[1])
        gammapowers = cs.DM(gamma ** np.arange(N)).T
        self.minimize(
            V0
            + cs.bilin(S, x[:, -1])
            + cs.sum2(f.T @ cs.vertcat(x[:, :-1], u))
            + 0.5 * cs.sum2(gammapowers * (cs.sum1(x[:, :-1] ** 2) + 0.5 * cs.sum1(u**2) + w.T @ s))
        )

        opts: dict[str, Any] = {
            "expand": True,
            "print_time": False,
            "bound_consistency": True,
            "calc_lam_x": True,
            "calc_lam_p": False,
            solver: {"max_iter": 500, "print_level": 0},
        }
        if solver == "ipopt":
            opts["ipopt"]["sb"] = "yes"
        self.init_solver(opts, solver=solver, type="nlp")


def pick_solver(requested: str) -> tuple[str, str | None]:
    """Return (solver, note): fatrop as in the example, ipopt when this CasADi build lacks fatrop."""
    if requested != "auto":
        if not cs.has_nlpsol(requested):
            raise SystemExit(f"solver {requested!r} is not available in casadi {cs.__version__}")
        return requested, None
    if cs.has_nlpsol("fatrop"):
        return "fatrop", None
    return "ipopt", f"fatrop unavailable in casadi {cs.__version__}; fell back to ipopt"


def build_agent(solver: str) -> LstdQLearningAgent:
    """Build the MPC and the second-order LSTD Q-learning agent with the example's options."""
    mpc = LinearMpc(solver)
    learnable_pars = LearnableParametersDict(
        LearnableParameter(name, val.shape, val) for name, val in mpc.learnable_pars_init.items()
    )
    return LstdQLearningAgent(
        mpc=mpc,
        learnable_parameters=learnable_pars,
        discount_factor=mpc.discount_factor,
        update_strategy=1,
        optimizer=NewtonOptimizer(learning_rate=5e-2),
        hessian_type="approx",
        record_td_errors=True,
        remove_bounds_on_initial_action=True,
    )


def build_dpg_agent(solver: str, seed: int, steps: int) -> LstdDpgAgent:
    """Build the MPC and an LSTD DPG agent with the settings of rlmpc's ``examples/lti_dpg.toml``."""
    mpc = LinearMpc(solver)
    learnable_pars = LearnableParametersDict(
        LearnableParameter(name, val.shape, val) for name, val in mpc.learnable_pars_init.items()
    )
    return LstdDpgAgent(
        mpc=mpc,
        learnable_parameters=learnable_pars,
        discount_factor=mpc.discount_factor,
        update_strategy=1,  # every episode, at its end
        optimizer=mpcrl_optim.GradientDescent(learning_rate=1e-3 / steps),  # mpcrl sums over the rollout
        exploration=mpcrl_exploration.GreedyExploration(0.1, mode="additive", seed=seed),
        rollout_length=-1,  # the rollout is the episode
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the worker's command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", choices=("q", "dpg"), default="q",
                   help="q: LSTD Q-learning (mpcrl's example); dpg: LSTD DPG (rlmpc's lti_dpg.toml); default q")
    p.add_argument("--steps", type=int, default=1000, help="training steps per episode; default 1000")
    p.add_argument("--episodes", type=int, default=1, help="training episodes; default 1")
    p.add_argument("--seed", type=int, default=69, help="seed of agent and disturbance; default 69")
    p.add_argument("--solver", choices=("auto", "fatrop", "ipopt"), default="auto",
                   help="NLP solver; auto = fatrop if available, else ipopt (default auto)")
    p.add_argument("--eval-steps", type=int, default=100,
                   help="steps of a greedy evaluation episode after training (0 skips it); default 100")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build, train, time, optionally evaluate, and print the JSON result line."""
    args = parse_args(argv)
    if args.steps < 1 or args.episodes < 1:
        raise SystemExit("--steps and --episodes must be >= 1")
    total_steps = args.steps * args.episodes
    solver, note = pick_solver(args.solver)
    if note:
        log(note)

    while True:
        t0 = time.perf_counter()
        agent = build_agent(solver) if args.agent == "q" else build_dpg_agent(solver, args.seed, args.steps)
        t_build = time.perf_counter() - t0
        log(f"MPC + {args.agent} agent built in {t_build:.2f} s (solver {solver}); training "
            f"{args.episodes} x {args.steps} steps ...")
        lti = LtiSystem()
        env = TimeLimit(lti, max_episode_steps=args.steps)
        t0 = time.perf_counter()
        c0 = time.process_time()
        try:
            returns = agent.train(env=env, episodes=args.episodes, seed=args.seed)
        except mpcrl.MpcSolverError as exc:
            if args.solver != "auto" or solver == "ipopt":
                raise
            note = f"fatrop failed with casadi {cs.__version__} ({exc}); fell back to ipopt"
            log(note)
            solver = "ipopt"
            continue
        t_train = time.perf_counter() - t0
        c_train = time.process_time() - c0
        break
    if len(lti.step_stamps) != total_steps:
        raise SystemExit(f"expected {total_steps} env steps, got {len(lti.step_stamps)}")
    stamps = np.asarray([t0, *lti.step_stamps])
    dts = np.diff(stamps)
    log(f"trained in {t_train:.2f} s: {1e3 * t_train / total_steps:.2f} ms/step "
        f"(median {1e3 * float(np.median(dts)):.2f} ms), training cost {float(np.sum(returns)):.3f}")

    result: dict[str, Any] = {
        "library": "mpcrl",
        "version": mpcrl.__version__,
        "csnlp": csnlp.__version__,
        "casadi": cs.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "solver": solver,
        "solver_note": note,
        "agent": args.agent,
        "steps": total_steps,
        "episodes": args.episodes,
        "seed": args.seed,
        "build_seconds": round(t_build, 4),
        "train_seconds": round(t_train, 4),
        "seconds_per_step": t_train / total_steps,
        "median_seconds_per_step": float(np.median(dts)),
        "cpu_seconds_per_step": c_train / total_steps,
        "training_cost": float(np.sum(returns)),
        "final_td_error": float(agent.td_errors[-1]) if getattr(agent, "td_errors", None) else None,
        "learned": {
            n: np.asarray(v).round(6).tolist() for n, v in agent.learnable_parameters.value_as_dict.items()
        },
    }
    if args.eval_steps > 0:
        eval_env = TimeLimit(LtiSystem(), max_episode_steps=args.eval_steps)
        t0 = time.perf_counter()
        costs = agent.evaluate(env=eval_env, episodes=1, deterministic=True, seed=args.seed + 1)
        log(f"greedy evaluation of {args.eval_steps} steps in {time.perf_counter() - t0:.2f} s: "
            f"cost {float(costs[0]):.3f}")
        result["greedy_cost_after"] = float(costs[0])
        result["greedy_eval_steps"] = args.eval_steps
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
