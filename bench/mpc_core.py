"""Benchmark of the MPC core: V, Q, ∇θQ, ∇θπ on the LTI and cart-pole problems.

Prints median wall times per operation, the toolkit's overhead over acados'
own ``time_tot``, and the MPC work of one second-order Q-learning step on the
LTI problem (Q solve + V solve + ∇θQ with its Hessian term), whose goal is
≤ 0.5 ms.  With ``--mpcrl`` it also runs the `mpcrl` library's LTI Q-learning
in its own virtual environment (bench/mpcrl_reference.py) in the same run and
prints the ratio.

    .venv/bin/python bench/mpc_core.py [--states 300] [--mpcrl]
    .venv/bin/python bench/mpc_core.py --scaling [--horizons 10 20 40 80]
    .venv/bin/python bench/mpc_core.py --riccati   # where the Riccati pass pays (∇θπ, full Hessian of Q)

``--scaling``: ∇θπ by the Riccati-type backward pass, by the reduced KKT solve (sparse LU at these
sizes) and, for N ≤ 40, by the dense KKT solve, against acados' solve time on a 12-state, 4-input
quadrotor-hover MPC (bench/quadrotor_mpc.py) over the horizon, with ratios and log-log slopes (it
asserts that the three agree to 1e-8); goals: ∇θπ ≤ 2× the solve, slope ≤ 1.2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rlmpc.toolkit import MPC, MpcSolution, SolverOptions  # noqa: E402
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc  # noqa: E402

GOAL_QLEARNING_STEP_MS = 0.5


def closed_loop_states(mpc: MPC, s0: np.ndarray, n: int, noise: np.ndarray,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """States visited by the MPC's own closed loop with additive noise (restarts every 50)."""
    states, s = [], s0.copy()
    for k in range(n):
        if k % 50 == 0:
            s = s0 + rng.uniform(-1, 1, s0.size) * noise * 5
        states.append(s.copy())
        u = mpc.policy(s)
        s = np.asarray(mpc.fns.dynamics(s, u, mpc.theta, mpc.p)).ravel()
        s = s + rng.uniform(-1, 1, s.size) * noise
    return states


def median_ms(fn: Callable[[int], object], n: int, repeat: int = 3) -> float:
    """Median over ``repeat`` passes of the mean time per call, in ms."""
    passes = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        passes.append((time.perf_counter() - t0) / n * 1e3)
    return float(np.median(passes))


def bench_problem(name: str, mpc: MPC, states: list[np.ndarray]) -> dict[str, float]:
    sens = mpc.sensitivities
    n = len(states)
    actions = [np.clip(mpc.policy(s) + 0.1, mpc.fns.u_lb, mpc.fns.u_ub) for s in states]
    v_sols = [mpc.value(s) for s in states]
    q_sols = [mpc.q_value(s, a) for s, a in zip(states, actions, strict=True)]
    res = {
        "V solve": median_ms(lambda i: mpc.value(states[i]), n),
        "Q solve": median_ms(lambda i: mpc.q_value(states[i], actions[i]), n),
        "acados time_tot (V)": float(np.median([s.time_tot for s in v_sols]) * 1e3),
        "acados time_tot (Q)": float(np.median([s.time_tot for s in q_sols]) * 1e3),
        "∇θQ": median_ms(lambda i: sens.grad_theta(q_sols[i]), n),
        "∇θQ + ∂²L/∂θ²": median_ms(lambda i: sens.grad_and_hessian_theta(q_sols[i]), n),
        "∇θπ (KKT)": median_ms(lambda i: sens.policy_jacobian(v_sols[i]), max(n // 5, 20)),
        "Q-learning step (Q, V, ∇θQ, Hessian)": median_ms(
            lambda i: (sens.grad_and_hessian_theta(mpc.q_value(states[i], actions[i])),
                       mpc.value(states[(i + 1) % n])), n),
        "failures": float(mpc.failures),
        "mean SQP iterations (V)": float(np.mean([s.sqp_iter for s in v_sols])),
    }
    res["overhead over time_tot (V)"] = res["V solve"] - res["acados time_tot (V)"]
    res["overhead over time_tot (Q)"] = res["Q solve"] - res["acados time_tot (Q)"]
    print(f"\n{name} (nθ = {mpc.fns.ntheta}, N = {mpc.fns.horizon}, {n} closed-loop states)")
    for key, val in res.items():
        unit = "" if key in ("failures", "mean SQP iterations (V)") else " ms"
        print(f"  {key:<40}{val:>10.4f}{unit}")
    return res


def run_mpcrl(steps: int, *extra: str) -> dict[str, object] | None:
    """Run bench/mpcrl_reference.py (``extra``: more of its options, e.g. ``--agent dpg``); its JSON."""
    script = ROOT / "bench" / "mpcrl_reference.py"
    if not script.is_file():
        print("bench/mpcrl_reference.py not found; skipping mpcrl", file=sys.stderr)
        return None
    out = subprocess.run([sys.executable, str(script), "--steps", str(steps), *extra],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"mpcrl reference failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def min_ms(fn: Callable[[int], object], n: int, repeat: int = 5) -> float:
    """Minimum over ``repeat`` passes of the mean time per call, in ms (robust to other jobs' load)."""
    passes = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        passes.append((time.perf_counter() - t0) / n * 1e3)
    return float(min(passes))


def loglog_slope(ns: list[int], ts: list[float]) -> float:
    """Least-squares slope of log t against log N."""
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def bench_scaling(horizons: list[int], n_states: int, dense_max: int) -> None:
    from quadrotor_mpc import quadrotor_mpc, start_states  # (bench/)

    rng = np.random.default_rng(0)
    states = start_states(n_states, rng)
    rows = []
    print("\n12 states, 4 inputs, nθ = 31 (quadrotor hover), PARTIAL_CONDENSING_HPIPM, SQP to 1e-8; "
          "mean per call over the states, min over 5 passes (dense: 2)")
    print(f"  {'N':>4} {'acados solve':>14} {'time_tot':>10} {'∇θπ Riccati':>13} {'∇θπ reduced':>13} "
          f"{'∇θπ dense':>11} {'Riccati/solve':>14} {'reduced/solve':>14} {'active':>7}")
    for n in horizons:
        mpc = MPC(quadrotor_mpc(n), SolverOptions(qp_solver="PARTIAL_CONDENSING_HPIPM"))
        sens = mpc.sensitivities
        sols = [mpc.value(s) for s in states]
        ok = [s for s in sols if s.success]
        for method in ("riccati", "sparse"):
            sens.policy_jacobian(ok[0], method=method)  # (generate the evaluators once)
        solve = min_ms(lambda i, m=mpc: m.value(states[i % len(states)]), len(states))
        time_tot = float(np.median([s.time_tot for s in ok]) * 1e3)
        riccati = min_ms(lambda i, se=sens, ok=ok: se.policy_jacobian(ok[i % len(ok)], method="riccati"), len(ok))
        reduced = min_ms(lambda i, se=sens, ok=ok: se.policy_jacobian(ok[i % len(ok)], method="sparse"), len(ok))
        gap = max(float(np.abs(sens.policy_jacobian(s, method="riccati")
                               - sens.policy_jacobian(s, method="sparse")).max()) for s in ok)
        assert gap < 1e-8, f"Riccati and reduced-KKT ∇θπ differ by {gap:.2e} at N = {n}"
        dense = float("nan")
        if n <= dense_max:
            sens.policy_jacobian(ok[0], method="dense")
            dense = min_ms(lambda i, se=sens, ok=ok: se.policy_jacobian(ok[i % len(ok)], method="dense"),
                           min(len(ok), 10), repeat=2)
            gap = max(float(np.abs(sens.policy_jacobian(s, method="riccati")
                                   - sens.policy_jacobian(s, method="dense")).max()) for s in ok[:5])
            assert gap < 1e-8, f"Riccati and dense ∇θπ differ by {gap:.2e} at N = {n}"
        active = float(np.median([sens.kkt_sensitivity_sparse(s).active.size for s in ok[:5]]))
        rows.append((n, solve, time_tot, riccati, reduced, dense))
        print(f"  {n:>4} {solve:>11.3f} ms {time_tot:>7.3f} ms {riccati:>10.3f} ms {reduced:>10.3f} ms "
              f"{dense:>8.3f} ms {riccati / solve:>13.2f}x {reduced / solve:>13.2f}x {active:>7.0f}"
              f"   ({len(sols) - len(ok)} failed solves, Riccati fallbacks: {sum(sens.pi_fallbacks.values())})")
        mpc.close()
    ns = [r[0] for r in rows]
    small = [r for r in rows if r[0] <= dense_max]
    print(f"  log-log slope over N: acados solve {loglog_slope(ns, [r[1] for r in rows]):.2f}, "
          f"∇θπ Riccati {loglog_slope(ns, [r[3] for r in rows]):.2f}, "
          f"∇θπ reduced {loglog_slope(ns, [r[4] for r in rows]):.2f}"
          + (f", ∇θπ dense (N ≤ {dense_max}) {loglog_slope([r[0] for r in small], [r[5] for r in small]):.2f}"
             if len(small) >= 2 else ""))


def _riccati_timings(mpc: MPC, vs: list[MpcSolution], qs: list[MpcSolution]) -> list[float]:
    """V solve, ∇θπ (Riccati, reduced), Q solve, full Hessian of Q (Riccati, sparse), in ms."""
    sens = mpc.sensitivities
    return [min_ms(lambda i: mpc.value(vs[i].s), len(vs)),
            min_ms(lambda i: sens.policy_jacobian(vs[i], method="riccati"), len(vs)),
            min_ms(lambda i: sens.policy_jacobian(vs[i], method="sparse"), len(vs)),
            min_ms(lambda i: mpc.q_value(qs[i].s, qs[i].a), len(qs)),
            min_ms(lambda i: sens.hessian_theta(qs[i], True, method="riccati"), len(qs)),
            min_ms(lambda i: sens.hessian_theta(qs[i], True, method="sparse"), len(qs))]


def bench_riccati(n_states: int) -> None:
    """Where the Riccati pass pays: ∇θπ and the full Hessian of Q (``hessian_theta(q, full=True)``) by the
    pass against the reduced KKT solve, on the LTI example, the cart-pole and the 12-state quadrotor at
    N = 20, next to the acados V and Q solves (closed-loop states; min over 5 passes of the mean)."""
    from quadrotor_mpc import quadrotor_mpc, start_states  # (bench/)

    rng = np.random.default_rng(0)
    lti, cart = MPC(lti_mpc(), SolverOptions(hpipm_mode="SPEED")), MPC(cartpole_mpc())
    cases = [
        ("LTI (N = 10)", lti, closed_loop_states(lti, np.array([0.0, 0.15]), n_states, np.array([0.05, 0.0]), rng)),
        ("cart-pole (N = 20)", cart, closed_loop_states(cart, np.array([0.0, 0.1, 0.0, 0.0]), n_states,
                                                        np.array([0.01, 0.01, 0.02, 0.02]), rng)),
        ("quadrotor (N = 20)", MPC(quadrotor_mpc(20), SolverOptions(qp_solver="PARTIAL_CONDENSING_HPIPM")),
         start_states(min(n_states, 40), rng)),
    ]
    print(f"\n{'problem':<20} {'nw':>5} {'V solve':>9} {'∇θπ Riccati':>12} {'∇θπ reduced':>12} {'Q solve':>9} "
          f"{'d²Q Riccati':>12} {'d²Q sparse':>11}  (ms; d²Q = hessian_theta(q, full=True))")
    for name, mpc, states in cases:
        sens = mpc.sensitivities
        vs = [v for v in (mpc.value(s) for s in states) if v.success]
        qs = [q for q in (mpc.q_value(v.s, np.clip(v.u0 + 0.1, mpc.fns.u_lb, mpc.fns.u_ub)) for v in vs) if q.success]
        gap = 0.0
        for v, q in zip(vs[:20], qs[:20], strict=False):
            gap = max(gap, float(np.abs(sens.policy_jacobian(v, method="riccati")
                                        - sens.policy_jacobian(v, method="sparse")).max()),
                      float(np.abs(sens.hessian_theta(q, True, method="riccati")
                                   - sens.hessian_theta(q, True, method="sparse")).max()))
        assert gap < 1e-8, f"{name}: Riccati and reduced KKT differ by {gap:.1e}"
        t = _riccati_timings(mpc, vs, qs)
        print(f"{name:<20} {sens.transcriptions[False].nw:>5} {t[0]:>9.3f} {t[1]:>12.3f} {t[2]:>12.3f} {t[3]:>9.3f} "
              f"{t[4]:>12.3f} {t[5]:>11.3f}")
        mpc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=300, help="closed-loop states per problem")
    parser.add_argument("--mpcrl", action="store_true",
                        help="also time mpcrl's LTI Q-learning (separate venv) for a ratio")
    parser.add_argument("--mpcrl-steps", type=int, default=300)
    parser.add_argument("--scaling", action="store_true",
                        help="only the ∇θπ-vs-horizon benchmark on the 12-state quadrotor MPC")
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--riccati", action="store_true",
                        help="only ∇θπ and the full Hessian of Q: Riccati pass against the reduced KKT solve")
    parser.add_argument("--dense-max", type=int, default=40, help="largest N for the dense reference")
    args = parser.parse_args()
    if args.scaling:
        bench_scaling(args.horizons, min(args.states, 40), args.dense_max)
        return
    if args.riccati:
        bench_riccati(min(args.states, 200))
        return
    rng = np.random.default_rng(0)

    lti = MPC(lti_mpc(), SolverOptions(hpipm_mode="SPEED"))  # as in examples/lti_*.toml
    lti_res = bench_problem("LTI (Gros & Zanon)", lti, closed_loop_states(
        lti, np.array([0.0, 0.15]), args.states, np.array([0.05, 0.0]), rng))
    cart = MPC(cartpole_mpc())
    bench_problem("Cart-pole", cart, closed_loop_states(
        cart, np.array([0.0, 0.1, 0.0, 0.0]), args.states, np.array([0.01, 0.01, 0.02, 0.02]),
        rng))

    step = lti_res["Q-learning step (Q, V, ∇θQ, Hessian)"]
    verdict = "meets" if step <= GOAL_QLEARNING_STEP_MS else "MISSES"
    print(f"\nLTI Q-learning step MPC work: {step:.3f} ms ({verdict} the goal of "
          f"{GOAL_QLEARNING_STEP_MS} ms)")
    if args.mpcrl:
        ref = run_mpcrl(args.mpcrl_steps)
        if ref is not None:
            ms = float(ref["seconds_per_step"]) * 1e3  # type: ignore[arg-type]
            print(f"mpcrl {ref.get('version')} ({ref.get('solver')}), whole training step: "
                  f"{ms:.2f} ms -> ratio mpcrl / rlmpc MPC work = {ms / step:.1f}x")


if __name__ == "__main__":
    main()
