"""Plant environments (gymnasium) for closed-loop simulation and learning."""

from rlmpc.toolkit.envs.cartpole import CartPole
from rlmpc.toolkit.envs.gym_plant import GymPlant, Plant, pendulum_plant
from rlmpc.toolkit.envs.lti import LtiGrosZanon

__all__ = ["CartPole", "GymPlant", "LtiGrosZanon", "Plant", "pendulum_plant"]
