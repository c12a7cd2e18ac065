"""Training configurations of the LTI task (Gros & Zanon) that several tests write, in one place."""

from __future__ import annotations


def lti_qlearning_config(*, seed: int, steps: int, checkpoint_every: int, eval_episodes: int = 1,
                         eval_steps: int = 30, exploration: str | None = None, speed_mode: bool = True) -> str:
    """Second-order LSTD Q-learning of the example (`examples/lti_qlearning.toml`) as TOML text, one
    episode of ``steps``; ``exploration``: the agent's exploration table (e.g. ``'{ type = "gaussian",
    std = 0.05 }'``); ``speed_mode``: HPIPM's SPEED mode, as in the example (else the default mode)."""
    solver = '[mpc.solver]\nhpipm_mode = "SPEED"\n' if speed_mode else ""
    explore = f"exploration = {exploration}\n" if exploration is not None else ""
    return (f"seed = {seed}\nepisodes = 1\nsteps = {steps}\ncheckpoint_every = {checkpoint_every}\n"
            '[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n' + solver
            + '[agent]\ntype = "lstd_q"\norder = 2\nhessian = "approx"\nupdate_every = 1\n'
            'optimizer = { type = "newton", learning_rate = 5e-2 }\n' + explore
            + f"[evaluation]\nepisodes = {eval_episodes}\nsteps = {eval_steps}\nseed = 1000\n")


def lti_bayes_config(*, trials: int, tune: list[str], eval_episodes: int, eval_steps: int,
                     speed_mode: bool = True, theta: dict[str, list[float]] | None = None) -> str:
    """Bayesian tuning of the LTI example's θ (``agent.type = "bayes"``) as TOML text: ``tune`` the θ
    names searched, ``theta`` a θ0 other than the problem's."""
    solver = '[mpc.solver]\nhpipm_mode = "SPEED"\n' if speed_mode else ""
    theta0 = ("[mpc.theta]\n" + "".join(f"{k} = {v}\n" for k, v in theta.items())) if theta else ""
    names = ", ".join(f'"{n}"' for n in tune)
    return ('seed = 3\nsteps = 1\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n' + solver + theta0
            + f'[agent]\ntype = "bayes"\n[agent.bayes]\ntrials = {trials}\ntune = [{names}]\n'
            f"[evaluation]\nepisodes = {eval_episodes}\nsteps = {eval_steps}\nseed = 1000\n")
