"""rlmpc: learn MPC parameters with reinforcement learning, export C code, validate with HIL.

One installed package with three layers that depend downward only:

- :mod:`rlmpc.toolkit`: the parametric MPC on acados, its sensitivities, RL agents, plants;
- :mod:`rlmpc.codegen`: export (acados bundles, the bare-metal solver), firmware builds, flashing;
- :mod:`rlmpc.hil`: the serial protocol, hardware-in-the-loop runs, reports, the pytest plugin;

and the command ``rlmpc`` (:mod:`rlmpc.cli`) above them.  The everyday names are re-exported here::

    from rlmpc import ParametricMPC, MPC
"""

from rlmpc.toolkit import __version__
from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import ParametricMPC, ProblemFunctions
from rlmpc.toolkit.registry import register_plant, register_problem

__all__ = ["MPC", "MpcSolution", "ParametricMPC", "ProblemFunctions", "SolverOptions", "__version__",
           "register_plant", "register_problem"]
