"""Training runs: acceptance on the LTI task, determinism, resume after SIGKILL, config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlmpc.toolkit.rl.config import ConfigError, load_config
from rlmpc.toolkit.rl.training import Trainer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def train(config: Path, out: Path, resume: bool = False) -> dict:  # type: ignore[type-arg]
    trainer = Trainer(load_config(config, output=out), progress_bar=False)
    return trainer.run(resume=resume)


def short_config(tmp_path: Path, steps: int = 300, seed: int = 3, checkpoint_every: int = 100,
                 agent: str = 'type = "lstd_q"\norder = 2\noptimizer = { type = "newton", '
                              'learning_rate = 5e-2 }') -> Path:
    path = tmp_path / f"short_{seed}_{steps}.toml"
    path.write_text(f"""seed = {seed}
episodes = 2
steps = {steps // 2}
checkpoint_every = {checkpoint_every}
[env]
name = "LtiGrosZanon"
[mpc]
problem = "lti"
[agent]
{agent}
[evaluation]
episodes = 2
steps = 20
""")
    return path


def test_lti_second_order_qlearning_meets_acceptance(tmp_path: Path) -> None:
    """The full run of examples/lti_qlearning.toml (one 5000-step episode)."""
    summary = train(EXAMPLES / "lti_qlearning.toml", tmp_path / "run")
    assert summary["steps"] == 5000
    assert summary["greedy_cost_ratio"] <= 0.10, summary["greedy_cost_ratio"]
    x_lb = np.asarray(summary["theta_final"]["x_lb"]).ravel()
    assert x_lb[0] > 0.0  # the lower bound on x1 tightens against the one-sided noise
    assert summary["mpc_failures"]["V"] + summary["mpc_failures"]["Q"] == 0
    theta = json.loads((tmp_path / "run" / "theta.json").read_text())
    assert theta["format"] == "rlmpc-theta/1" and theta["problem"] == "lti"
    assert len(theta["problem_hash"]) == 64
    assert theta["names"] == ["V0", "x_lb", "x_ub", "b", "f", "A", "B"]
    assert np.asarray(theta["values"]["x_lb"]).ravel()[0] == pytest.approx(x_lb[0])
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 10_000
    history = np.load(tmp_path / "run" / "history.npz")
    assert history["theta"].shape == (5000, 16)


def test_lti_dpg_meets_acceptance(tmp_path: Path) -> None:
    summary = train(EXAMPLES / "lti_dpg.toml", tmp_path / "run")
    assert summary["greedy_cost_ratio"] <= 0.10, summary["greedy_cost_ratio"]
    assert summary["updates"] == 50


def test_runs_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = train(short_config(tmp_path), tmp_path / "a")
    b = train(short_config(tmp_path), tmp_path / "b")
    assert a["theta_final"] == b["theta_final"]
    c = train(short_config(tmp_path, seed=4), tmp_path / "c")
    assert c["theta_final"] != a["theta_final"]
    assert (a["seed"], c["seed"]) == (3, 4)


def test_cli_seed_replaces_the_configs_seed(tmp_path: Path) -> None:
    """`rlmpc train CONFIG --seed 4` is the run of CONFIG with seed = 4 (and says so in its summary)."""
    from rlmpc.cli import main

    reference = train(short_config(tmp_path, seed=4), tmp_path / "reference")
    assert main(["train", str(short_config(tmp_path, seed=3)), "--seed", "4", "--out", str(tmp_path / "cli"),
                 "--quiet", "--no-plots"]) in (0, 3)
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["seed"] == 4
    assert summary["theta_final"] == reference["theta_final"]


def test_resume_after_sigkill_reaches_the_same_theta(tmp_path: Path) -> None:
    config = short_config(tmp_path, steps=2000, checkpoint_every=200)
    train(config, tmp_path / "reference")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rlmpc", "train", str(config), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pkl").exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()  # it really died mid-run
    resumed = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, check=True)
    assert "trained 2000 steps" in resumed.stdout
    theta_resumed = json.loads((out / "theta.json").read_text())["flat"]
    theta_reference = json.loads((tmp_path / "reference" / "theta.json").read_text())["flat"]
    assert theta_resumed == theta_reference  # bit for bit


def test_existing_checkpoint_is_not_overwritten(tmp_path: Path) -> None:
    config = short_config(tmp_path, steps=100)
    train(config, tmp_path / "run")
    with pytest.raises(ValueError, match="pass --resume"):
        train(config, tmp_path / "run")


@pytest.mark.parametrize(("text", "message"), [
    ('steps = 10\nstep = 3\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'
     '[agent]\ntype = "lstd_q"\n', "step: unknown key"),
    ('steps = "ten"\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n[agent]\n'
     'type = "lstd_q"\n', "steps: expected an integer, got 'ten'"),
    ('steps = 10\n[mpc]\nproblem = "lti"\n[agent]\ntype = "lstd_q"\n',
     r"env: missing table \[env\]"),
    ('steps = 10\n[env]\nname = "Moon"\n[mpc]\nproblem = "lti"\n[agent]\ntype = "lstd_q"\n',
     "env.name: unknown environment 'Moon'"),
    ('steps = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n[agent]\n'
     'type = "ppo"\n', "agent.type: expected one of"),
    ('steps = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n[mpc.solver]\n'
     'qp_solver = "PARTIAL_CONDENSING_OSQP"\n[agent]\ntype = "lstd_q"\n', "qp_solver"),
])
def test_malformed_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


LTI_HEAD = 'steps = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'


@pytest.mark.parametrize(("text", "message"), [
    ('step = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n[agent]\ntype = "lstd_q"\n',
     "steps: missing .*; found 'step': a typo"),
    (LTI_HEAD + '[mpc.theta]\nA = [[1.0, 0.2]]\n[agent]\ntype = "lstd_q"\n',
     r"mpc.theta: parameter 'A' value: expected a 2x2 matrix .* got shape \(1, 2\)"),
    (LTI_HEAD + '[mpc.theta]\nA = 1.0\n[agent]\ntype = "lstd_q"\n',
     "mpc.theta: parameter 'A' value: expected a 2x2 matrix .* got a number"),
    (LTI_HEAD + '[mpc.theta]\nV0 = "abc"\n[agent]\ntype = "lstd_q"\n',
     "mpc.theta: parameter 'V0' value: expected a number, got 'abc'"),
    ('steps = 10\n[env]\nname = "CartPole"\n[mpc]\nproblem = "lti"\n[agent]\ntype = "lstd_q"\n',
     "env.name: 'CartPole' has states of 4 entries, problem 'lti' has 2"),
    (LTI_HEAD + '[agent]\ntype = "lstd_q"\nexploration = { type = "gaussian", std = -0.1 }\n',
     r"agent.exploration.std: expected a non-negative value, got -0.1"),
    (LTI_HEAD + '[agent]\ntype = "lstd_q"\noptimizer = { type = "sgd", learning_rate = -1 }\n',
     r"agent.optimizer.learning_rate: expected a non-negative value, got -1"),
])
def test_config_errors_at_set_up_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: {message}"):
        Trainer(load_config(path, output=tmp_path / "out"), progress_bar=False)
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_config_in_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('steps = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'
                    '[mpc.theta]\nx_lb = [5.0, 0.0]\n[agent]\ntype = "lstd_q"\n')
    out = subprocess.run([sys.executable, "-m", "rlmpc", "train", str(path), "--out",
                          str(tmp_path / "o"), "--quiet"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "x_lb[0]' = 5 is outside its bounds" in lines[0]


def test_mpc_failures_are_counted_not_fatal(tmp_path: Path) -> None:
    config = tmp_path / "fail.toml"
    config.write_text("""steps = 40
seed = 1
[env]
name = "CartPole"
params = { m_pole = 0.13 }
[mpc]
problem = "cartpole"
[mpc.solver]
max_iter = 1
[agent]
type = "lstd_q"
optimizer = { type = "newton", learning_rate = 1e-4 }
on_failure = "last"
[evaluation]
episodes = 1
steps = 10
""")
    summary = train(config, tmp_path / "run")
    failures = summary["mpc_failures"]
    assert failures["V"] + failures["Q"] > 0
    assert failures["skipped_updates"] > 0
    assert "maximum number of iterations reached" in failures["messages"]


def test_any_gymnasium_env_is_a_plant_pendulum(tmp_path: Path) -> None:
    """Pendulum-v1 through the GymPlant adapter: cost = −reward, state from the plant."""
    config = tmp_path / "pendulum.toml"
    config.write_text("""seed = 11
steps = 30
[env]
name = "Pendulum-v1"
[mpc]
problem = "pendulum"
[agent]
type = "lstd_q"
order = 1
optimizer = { type = "sgd", learning_rate = 1e-4, max_relative_step = 0.02 }
[evaluation]
episodes = 1
steps = 20
""")
    summary = train(config, tmp_path / "run")
    assert summary["steps"] == 30
    assert summary["theta_final"] != summary["theta_initial"]
    history = np.load(tmp_path / "run" / "history.npz")
    assert np.all(history["step_cost"] >= 0)  # Pendulum's reward is <= 0


def test_dpg_with_monte_carlo_critic_learns_lti(tmp_path: Path) -> None:
    text = (EXAMPLES / "lti_dpg.toml").read_text().replace(
        'exploration = { type = "gaussian", std = 0.1 }',
        'exploration = { type = "gaussian", std = 0.1 }\ncritic = "monte_carlo"')
    assert 'critic = "monte_carlo"' in text
    config = tmp_path / "mc.toml"
    config.write_text(text)
    summary = train(config, tmp_path / "run")
    # more variance than LSTD: 3.6-25.7 % of the initial cost over seeds 1, 2, 3, 69
    assert summary["greedy_cost_ratio"] <= 0.5


def test_cli_episodes_and_steps_override_the_config(tmp_path: Path) -> None:
    from rlmpc.cli import TRAIN_WORSE_EXIT, main

    path = tmp_path / "c.toml"
    path.write_text(LTI_HEAD + '[agent]\ntype = "lstd_q"\n')
    assert load_config(path, overrides={"steps": 7, "episodes": None}).steps == 7
    assert main(["train", str(path), "--out", str(tmp_path / "r"), "--steps", "0", "--quiet"]) == 2
    # (10 steps of learning end worse than θ0 here: exit code 3, see test_learning_guard.py)
    assert main(["train", str(path), "--out", str(tmp_path / "r"), "--steps", "5", "--episodes", "2",
                 "--quiet"]) == TRAIN_WORSE_EXIT
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["steps"] == 10


def test_resume_names_what_changed_in_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(LTI_HEAD + '[agent]\ntype = "lstd_q"\n')
    Trainer(load_config(path, output=tmp_path / "r"), progress_bar=False).run()
    changed = load_config(path, output=tmp_path / "r", overrides={"steps": 20, "seed": 4})
    with pytest.raises(ValueError, match=r"different configuration .* \(changed: seed, steps\)"):
        Trainer(changed, progress_bar=False).run(resume=True)


def test_dpg_records_its_td_error_at_its_updates(tmp_path: Path) -> None:
    path = tmp_path / "dpg.toml"
    path.write_text('steps = 30\nepisodes = 3\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'
                    '[agent]\ntype = "dpg"\noptimizer = { type = "sgd", learning_rate = 1e-6 }\n'
                    'exploration = { type = "gaussian", std = 0.1 }\n')
    trainer = Trainer(load_config(path, output=tmp_path / "r"), progress_bar=False)
    trainer.run()
    td = np.array(trainer.history.td_error)
    assert np.isfinite(td).sum() == 3 and np.isfinite(td[[29, 59, 89]]).all()  # one per episode


def test_a_plant_that_breaks_its_contract_is_named(tmp_path: Path) -> None:
    import gymnasium as gym

    from rlmpc.toolkit.registry import ENVS

    class Broken(gym.Env):  # type: ignore[type-arg]
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
        action_space = gym.spaces.Box(-1.0, 1.0, (1,))

        def __init__(self, mode: str = "cost") -> None:
            self.mode = mode

        def reset(self, *, seed: int | None = None, options: object = None) -> tuple[object, dict]:
            return np.zeros(2), {}

        def step(self, u: object) -> tuple[object, ...]:
            if self.mode == "tuple":
                return np.zeros(2), 0.0, False, {}
            info = {"cost": "high"} if self.mode == "cost" else {"state": np.array([np.nan, 0.0])}
            return np.zeros(2), 0.0, False, False, info

    ENVS["_Broken"] = Broken
    try:
        for mode, message in (("cost", r"plant _Broken: evaluation episode 0, step 0: cost .*a number"),
                              ("tuple", "step: expected .* got 4 values"),
                              ("state", r"state \(info\['state'\] or the observation\): expected 2 finite")):
            path = tmp_path / f"{mode}.toml"
            path.write_text(f'steps = 5\n[env]\nname = "_Broken"\nparams = {{ mode = "{mode}" }}\n'
                            '[mpc]\nproblem = "lti"\n[agent]\ntype = "lstd_q"\n')
            with pytest.raises(ValueError, match=message):
                Trainer(load_config(path, output=tmp_path / mode), progress_bar=False).run()
    finally:
        del ENVS["_Broken"]


def test_training_runs_blas_on_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small matrices: a multithreaded BLAS only costs (0.5 s for a 122×122 lstsq on a loaded machine)."""
    from threadpoolctl import threadpool_info

    from rlmpc.toolkit import blas_threads
    from rlmpc.toolkit.rl import plant_io

    for name in blas_threads.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    seen: list[int] = []
    step = plant_io.step

    def counting_step(*args: object, **kwargs: object) -> object:
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(plant_io, "step", counting_step)
    train(short_config(tmp_path, steps=4), tmp_path / "run")
    assert seen and set(seen) == {1}, seen
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user's own setting is kept
    seen.clear()
    train(short_config(tmp_path, steps=4, seed=5), tmp_path / "run2")
    assert seen and max(seen) == max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_resume_keeps_the_count_of_unverified_solves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mpc_verification` counts the whole run, also when it was interrupted and resumed."""
    config = short_config(tmp_path, steps=300)
    capped = config.read_text().replace('problem = "lti"', 'problem = "lti"\n[mpc.solver]\nhpipm_mode = "SPEED"\n'
                                        'qp_max_iter = 14')
    config.write_text(capped)
    whole = train(config, tmp_path / "whole")["mpc_verification"]
    assert whole["unverified"] > 0  # the cap leaves QPs unconverged: the count has something to keep
    trainer = Trainer(load_config(config, output=tmp_path / "cut"), progress_bar=False)
    original = Trainer.save_checkpoint

    def interrupted(self: Trainer) -> None:
        original(self)
        raise KeyboardInterrupt  # at the first checkpoint (step 100)

    monkeypatch.setattr(Trainer, "save_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    resumed = Trainer(load_config(config, output=tmp_path / "cut"), progress_bar=False).run(resume=True)
    assert resumed["mpc_verification"] == whole
