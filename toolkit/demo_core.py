"""The MPC-core demo: a cart-pole MPC on acados with its value functions and sensitivities."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.problems import cartpole_mpc


def run_core_demo(out: Path, steps: int = 100) -> None:
    """Build the cart-pole MPC, evaluate V, Q, π and their θ-gradients, run a closed loop."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print("rlmpc demo: generating and compiling the acados cart-pole solver (cached after the "
          "first run) ...", flush=True)
    mpc = MPC(cartpole_mpc())
    fns = mpc.fns
    print(f"  solver ready in {time.perf_counter() - t0:.1f} s: {mpc.built.directory}")

    s = np.array([0.1, 0.05, 0.0, 0.0])  # the force does not saturate here, so ∇θπ ≠ 0
    v = mpc.value(s)
    a = v.u0 + 0.5
    q = mpc.q_value(s, a)
    sens = mpc.sensitivities
    labels = fns.theta.labels()
    print(f"\nAt s = {s}:")
    print(f"  V(s)        = {v.value:.6f}   ({v.sqp_iter} SQP iterations, {v.time_tot * 1e3:.2f} ms)")
    print(f"  π(s)        = {v.u0}")
    print(f"  Q(s, π+0.5) = {q.value:.6f}   (>= V(s): {q.value >= v.value})")
    g_v, g_q = sens.grad_theta(v), sens.grad_theta(q)
    d_pi = sens.policy_jacobian(v)[0]
    print(f"\n  {'θ':<10}{'∇θV':>12}{'∇θQ':>12}{'∇θπ':>12}")
    for i, name in enumerate(labels):
        print(f"  {name:<10}{g_v[i]:>12.4f}{g_q[i]:>12.4f}{d_pi[i]:>12.4f}")

    # closed loop on a plant whose pole is 30% heavier than the MPC believes
    plant_theta = fns.theta.unflatten(mpc.theta)
    plant_theta["m_pole"] = plant_theta["m_pole"] * 1.3
    plant_flat = fns.theta.flatten(plant_theta)
    xs, us, iters = [np.array([0.3, 0.25, 0.0, 0.0])], [], []
    for _ in tqdm(range(steps), desc="closed loop", unit="step"):
        sol = mpc.value(xs[-1])
        us.append(sol.u0)
        iters.append(sol.sqp_iter)
        xs.append(np.asarray(fns.dynamics(xs[-1], sol.u0, plant_flat, mpc.p)).ravel())
    x_arr, u_arr = np.array(xs), np.array(us)
    print(f"\nClosed loop: final state {np.round(x_arr[-1], 4)}, max |u| = {np.abs(u_arr).max():.2f}, "
          f"mean SQP iterations {np.mean(iters):.1f}, MPC failures {mpc.failures}")
    png = _plot(x_arr, u_arr, fns.dt, out / "cartpole_closed_loop.png")
    print(f"Plot: {png}")


def _plot(x: np.ndarray, u: np.ndarray, dt: float, path: Path) -> Path:
    from rlmpc.toolkit import figures

    t = np.arange(x.shape[0]) * dt
    fig, axes = figures.subplots(3, 1, figsize=(7, 7), sharex=True)
    axes[0].plot(t, x[:, 0], label="cart position [m]")
    axes[0].axhline(1.0, color="r", ls="--", lw=0.8)
    axes[0].axhline(-1.0, color="r", ls="--", lw=0.8)
    axes[1].plot(t, x[:, 1], label="pole angle [rad]")
    axes[2].step(t[:-1], u[:, 0], where="post", label="force [N]")
    axes[2].axhline(5.0, color="r", ls="--", lw=0.8)
    axes[2].axhline(-5.0, color="r", ls="--", lw=0.8)
    for ax in axes:
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
    axes[2].set_xlabel("time [s]")
    fig.suptitle("Cart-pole MPC (acados) on a plant with a 30% heavier pole")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
