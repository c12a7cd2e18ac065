"""Plant environments (gymnasium) for closed-loop simulation and learning."""

from toolkit.envs.cartpole import CartPole
from toolkit.envs.gym_plant import GymPlant, Plant, pendulum_plant
from toolkit.envs.lti import LtiGrosZanon

__all__ = ["CartPole", "GymPlant", "LtiGrosZanon", "Plant", "pendulum_plant"]
