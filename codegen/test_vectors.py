"""Reference test vectors of an exported controller, computed with :class:`rlmpc.toolkit.mpc.MPC`.

States come from closed loops of the MPC on the problem's own dynamics and from
seeded random draws in a box; every state is solved from a cold start (the
solver is reset before each solve), so that each vector can be checked on its
own.  Only successfully solved states are kept.  Two files carry them:
``test_vectors.json`` (states, u_0, predictions, status) and ``test_vectors.txt``
(the states, read by the C test program).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmpc.codegen.c_sources import TEST_VECTORS_MAGIC
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions

# boxes the random states are drawn from (and the closed loops start in), per problem
STATE_BOXES: dict[str, tuple[list[float], list[float]]] = {
    "lti": ([0.0, -0.5], [1.0, 0.5]),
    "cartpole": ([-0.5, -0.15, -0.5, -0.5], [0.5, 0.15, 0.5, 0.5]),
}
DEFAULT_HALF_WIDTH = 0.1  # box ±0.1 for problems without an entry above


@dataclass(frozen=True)
class VectorPlan:
    """How many states to draw, and how."""

    seed: int = 0
    closed_loops: int = 2
    closed_loop_steps: int = 6
    count: int = 24  # closed-loop states first, then random ones up to this number
    max_attempts: int = 1000


def state_box(fns: ProblemFunctions) -> tuple[FloatArray, FloatArray]:
    """The box random states are drawn from."""
    if fns.name in STATE_BOXES and len(STATE_BOXES[fns.name][0]) == fns.nx:
        lb, ub = STATE_BOXES[fns.name]
        return np.array(lb, dtype=float), np.array(ub, dtype=float)
    return np.full(fns.nx, -DEFAULT_HALF_WIDTH), np.full(fns.nx, DEFAULT_HALF_WIDTH)


def _floats(arr: Any) -> Any:
    return np.asarray(arr, dtype=float).tolist()


def compute_test_vectors(fns: ProblemFunctions, options: SolverOptions,
                         plan: VectorPlan | None = None, theta: Any = None) -> dict[str, Any]:
    """Solve the reference states with ``MPC(fns, options)`` from cold starts.

    Parameters
    ----------
    fns : ProblemFunctions
        The problem with θ baked in (no learnable parameters left), or with θ as parameters and
        ``theta`` its values (as an exported acados bundle solves it).
    options : SolverOptions
        The exported solver's options (``warm_start`` is switched off here).
    plan : VectorPlan, optional
        Seed and numbers of states.

    Returns
    -------
    dict
        The content of ``test_vectors.json``.
    """
    plan = plan or VectorPlan()
    lb, ub = state_box(fns)
    rng = np.random.default_rng(plan.seed)
    p = fns.params.default()
    if theta is None:
        theta = np.zeros(fns.ntheta) if fns.ntheta == 0 else fns.theta.default()
    theta = fns.theta.flatten(theta) if fns.ntheta else np.zeros(0)
    # as an exported acados bundle solves it: the problem's own rows, one solve; a solve whose QP
    # stopped at its iteration limit (unverified, reported failed here) is no reference
    mpc = MPC(fns, dataclasses.replace(options, warm_start=False, merge_soft_pairs=False,
                                       fallback_hpipm_mode=None), theta=theta, p=p)
    vectors: list[dict[str, Any]] = []
    attempts = 0

    def solve(x: FloatArray, source: str) -> FloatArray | None:
        nonlocal attempts
        if len(vectors) >= plan.count:
            return None
        attempts += 1
        sol = mpc.value(x)
        if not sol.success:
            return None
        vectors.append({"source": source, "x0": _floats(x), "status": sol.status,
                        "sqp_iter": sol.sqp_iter, "u0": _floats(sol.u0),
                        "x": _floats(sol.x), "u": _floats(sol.u)})
        return sol.u0

    try:
        for _ in range(plan.closed_loops):
            x = rng.uniform(lb, ub)
            for _ in range(plan.closed_loop_steps):
                u0 = solve(x, "closed_loop")
                if u0 is None:
                    break
                x = np.asarray(fns.dynamics(x, u0, theta, p), dtype=float).ravel()
        while len(vectors) < plan.count and attempts < plan.max_attempts:
            solve(rng.uniform(lb, ub), "random")
    finally:
        mpc.close()
    if len(vectors) < plan.count:
        raise RuntimeError(f"test vectors: only {len(vectors)} of {plan.count} states were solved "
                           f"successfully in {attempts} attempts")
    return {
        "format": TEST_VECTORS_MAGIC,
        "start": "cold: the solver is reset before every vector; vectors are solved in file order",
        "seed": plan.seed, "box": {"lb": _floats(lb), "ub": _floats(ub)},
        "nx": fns.nx, "nu": fns.nu, "N": fns.horizon,
        "vectors": vectors,
    }


def vectors_text(document: dict[str, Any]) -> str:
    """``test_vectors.txt`` for the C test program: header, then one state per line."""
    lines = [TEST_VECTORS_MAGIC,
             f"nx {document['nx']} nu {document['nu']} N {document['N']} "
             f"count {len(document['vectors'])}"]
    lines += [" ".join(repr(float(v)) for v in vec["x0"]) for vec in document["vectors"]]
    return "\n".join(lines) + "\n"
