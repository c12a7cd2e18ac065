"""rlmpc toolkit: parametric MPC on acados, its sensitivities, and RL on top of it."""

from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import ParametricMPC, ProblemFunctions

__all__ = ["MPC", "MpcSolution", "ParametricMPC", "ProblemFunctions", "SolverOptions"]
__version__ = "0.1.0"
