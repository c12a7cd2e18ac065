"""float32 agreement of the bare-metal solver with acados at large slack penalties.

The linear cart-pole (N = 20, |u| <= 5) with soft state rows of penalty W (linear and quadratic):
``cart`` (|x1| <= 1 alone) or ``all`` (also |angle| <= 0.3, |velocities| <= 1.5).  Prints
``export --check``'s host comparison (float32) for each W::

    .venv/bin/python bench/soft_penalties.py [--rows cart|all] [--penalties 1e2 1e3 1e4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import casadi as cs

from rlmpc.codegen.mcu.host_check import check
from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems.linear_cartpole import upright_linearisation


def soft_cartpole(penalty: float, rows: str) -> ParametricMPC:
    a, b = upright_linearisation(20, 0.05)
    mpc = ParametricMPC("soft_cartpole", nx=4, nu=1, horizon=20, discount=0.99)
    x, u = mpc.x, mpc.u
    q = mpc.learnable("q", [1.0, 5.0, 0.1, 0.1], lb=1e-3, ub=1e3)
    r = mpc.learnable("r", 0.1, lb=1e-3, ub=1e2)
    mpc.discrete_dynamics(cs.DM(a) @ x + cs.DM(b) @ u, dt=0.05)
    mpc.stage_cost(cs.sum1(q * x**2) + r * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * cs.sum1(q * x**2))
    mpc.input_bounds(-5.0, 5.0)
    soft = {"soft": True, "linear_penalty": penalty, "quadratic_penalty": penalty}
    mpc.state_constraint("cart_position", x[0], lb=-1.0, ub=1.0, **soft)
    if rows == "all":
        mpc.state_constraint("angle", x[1], lb=-0.3, ub=0.3, **soft)
        mpc.state_constraint("velocities", x[2:], lb=-1.5, ub=1.5, **soft)
    return mpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", choices=["cart", "all"], default="cart")
    parser.add_argument("--penalties", type=float, nargs="+", default=[1e2, 1e3, 1e4])
    args = parser.parse_args()
    for w in args.penalties:
        fns = soft_cartpole(w, args.rows).build()
        with tempfile.TemporaryDirectory(prefix="rlmpc-soft-") as tmp:
            report = check(fns, Path(tmp), footprint=False)
        print(f"== rows {args.rows}, penalty {w:g}\n" + "\n".join(report.lines()))


if __name__ == "__main__":
    main()
