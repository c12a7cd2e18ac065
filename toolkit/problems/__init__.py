"""Reference problems: the LTI MPC of Gros & Zanon (2020) and a nonlinear cart-pole."""

from toolkit.problems.cartpole import cartpole_mpc
from toolkit.problems.lti import lti_mpc

__all__ = ["cartpole_mpc", "lti_mpc"]
