"""Reference problems: the LTI MPC of Gros & Zanon (2020), a cart-pole, gymnasium's pendulum."""

from rlmpc.toolkit.problems.cartpole import cartpole_mpc
from rlmpc.toolkit.problems.lti import lti_mpc, lti_tracking_mpc
from rlmpc.toolkit.problems.pendulum import pendulum_mpc

__all__ = ["cartpole_mpc", "lti_mpc", "lti_tracking_mpc", "pendulum_mpc"]
