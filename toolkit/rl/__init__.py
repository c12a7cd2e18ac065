"""Reinforcement learning of MPC parameters: agents, exploration, optimisers."""
