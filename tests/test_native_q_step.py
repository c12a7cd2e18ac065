"""The compiled Q-learning step (rlmpc.toolkit.rl.native_q_step) computes the Python path's numbers:
every step's θ and TD error bit for bit, through its three outcomes (done in C; solves left to Python
because a QP was not verified; the update left to Python because the Newton step leaves the box)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlmpc.toolkit.rl import native_q_step
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.rl.training import Trainer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _count_outcomes(outcomes: Counter[int], monkeypatch: pytest.MonkeyPatch) -> None:
    run = native_q_step.NativeQStep.run

    def counted(self: native_q_step.NativeQStep, *args: object) -> int:
        outcome = run(self, *args)  # type: ignore[arg-type]
        outcomes[outcome] += 1
        return outcome

    monkeypatch.setattr(native_q_step.NativeQStep, "run", counted)


def _train(tmp: Path, native: bool, theta0: dict[str, list[float]], outcomes: Counter[int],
           monkeypatch: pytest.MonkeyPatch) -> Trainer:
    cfg = load_config(EXAMPLES / "lti_qlearning.toml", output=tmp / f"native_{native}")
    # (QPs capped at 12 iterations: some stop at the limit, are not verified and are solved again)
    solver = replace(cfg.mpc.solver, qp_max_iter=12)
    cfg = replace(cfg, steps=300, agent=replace(cfg.agent, native=native),
                  mpc=replace(cfg.mpc, theta=theta0, solver=solver))
    trainer = Trainer(cfg, progress_bar=False, plots=False)
    trainer.evaluate = lambda theta: 0.0  # type: ignore[method-assign]  (not what is compared)
    _count_outcomes(outcomes, monkeypatch)
    trainer.run()
    return trainer


@pytest.mark.parametrize("theta0", [{}, {"x_ub": [2.0, 0.0]}], ids=["example", "theta-at-a-bound"])
def test_the_compiled_step_is_the_python_step(tmp_path: Path, theta0: dict[str, list[float]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes: Counter[int] = Counter()
    fast = _train(tmp_path, True, theta0, outcomes, monkeypatch)
    slow = _train(tmp_path, False, theta0, Counter(), monkeypatch)
    assert fast.agent._native is not None and slow.agent._native is None  # type: ignore[attr-defined]
    assert np.array_equal(np.array(fast.history.theta), np.array(slow.history.theta))
    assert np.array_equal(fast.history.td_error, slow.history.td_error, equal_nan=True)
    assert fast.agent.updates == slow.agent.updates and fast.agent.optimizer.k == slow.agent.optimizer.k
    assert fast.mpc.verification == slow.mpc.verification
    assert vars(fast.agent.failures) == vars(slow.agent.failures)
    assert outcomes[native_q_step.DONE] > 0 and outcomes[native_q_step.SOLVES] > 0, outcomes
    if theta0:  # x_ub[0] at its upper bound: steps that leave the box go to the Python optimiser
        assert outcomes[native_q_step.UPDATE] > 0, outcomes
    report = json.loads((fast.out / "summary.json").read_text())["compiled_step"]
    assert report == {"steps_in_c": outcomes[native_q_step.DONE],
                      "steps_solves_in_python": outcomes[native_q_step.SOLVES],
                      "steps_update_in_python": outcomes[native_q_step.UPDATE]}
    assert json.loads((slow.out / "summary.json").read_text())["compiled_step"] == {"off": "agent.native = false"}
    # the checkpoints hold the same state (a resumed run continues alike on either path)
    for trainer in (fast, slow):
        assert (trainer.out / "checkpoint.pkl").is_file()
    assert np.array_equal(fast.agent.replay.sample(np.random.default_rng(0))[0]["H"],
                          slow.agent.replay.sample(np.random.default_rng(0))[0]["H"])


def test_the_python_path_where_the_compiled_step_does_not_apply(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLES / "lti_qlearning.toml", output=tmp_path / "first_order")
    cfg = replace(cfg, steps=3, agent=replace(cfg.agent, order=1,
                                              optimizer={"type": "sgd", "learning_rate": 1e-3}))
    trainer = Trainer(cfg, progress_bar=False, plots=False)
    trainer.evaluate = lambda theta: 0.0  # type: ignore[method-assign]
    trainer.run()
    assert trainer.agent._native is None  # type: ignore[attr-defined]
    assert trainer.agent.compiled_step_report() == {"off": "order 1; optimizer 'sgd'"}


def test_a_nonlinear_problem_takes_the_compiled_step_alike(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # the cart-pole (SQP, no merged soft rows, Gaussian exploration) with Newton updates: the same θ
    histories = []
    outcomes: Counter[int] = Counter()
    _count_outcomes(outcomes, monkeypatch)
    for native in (True, False):
        cfg = load_config(EXAMPLES / "cartpole_qlearning.toml", output=tmp_path / f"cartpole_{native}")
        agent = replace(cfg.agent, order=2, optimizer={"type": "newton", "learning_rate": 1e-3}, native=native,
                        replay={"capacity": 1, "sample_size": 1, "include_latest": 1})
        trainer = Trainer(replace(cfg, steps=60, episodes=2, agent=agent), progress_bar=False, plots=False)
        trainer.evaluate = lambda theta: 0.0  # type: ignore[method-assign]
        trainer.run()
        assert (trainer.agent._native is not None) == native  # type: ignore[attr-defined]
        histories.append(np.array(trainer.history.theta))
    assert np.array_equal(histories[0], histories[1]) and len(histories[0]) > 20
    assert outcomes[native_q_step.DONE] > 0, outcomes


def test_native_may_change_between_a_checkpoint_and_its_resume(tmp_path: Path) -> None:
    text = (EXAMPLES / "lti_qlearning.toml").read_text()
    text = text.replace("steps = 5000", "steps = 40").replace("checkpoint_every = 1000", "checkpoint_every = 20")
    first, switched, other = (tmp_path / f"{name}.toml" for name in ("first", "switched", "other"))
    first.write_text(text)
    switched.write_text(text.replace('type = "lstd_q"', 'type = "lstd_q"\nnative = false'))
    other.write_text(text.replace("seed = 69", "seed = 70"))
    out = tmp_path / "run"
    trainer = Trainer(load_config(first, output=out), progress_bar=False, plots=False)
    trainer.evaluate = lambda theta: 0.0  # type: ignore[method-assign]
    trainer.run()
    # the same bits either way: switching the compiled step does not make it another run ...
    Trainer(load_config(switched, output=out), progress_bar=False, plots=False).read_checkpoint()
    # ... any other change does
    with pytest.raises(ValueError, match=r"different configuration .*\(changed: seed\)"):
        Trainer(load_config(other, output=out), progress_bar=False, plots=False).read_checkpoint()


def test_a_ctrl_c_that_a_library_swallowed_still_stops_rlmpc_train(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # CasADi's argument conversion can swallow the KeyboardInterrupt of a Ctrl-C pressed while the
    # solvers are set up; `rlmpc train` must stop anyway (exit 130), not train as if nothing happened
    import os
    import signal
    import time

    from rlmpc.cli import main
    from rlmpc.toolkit.rl import training

    setup = training.Trainer.__init__

    def swallowing(self: training.Trainer, *args: object, **kwargs: object) -> None:
        setup(self, *args, **kwargs)  # type: ignore[arg-type]
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        except KeyboardInterrupt:
            pass  # (what the library did)

    monkeypatch.setattr(training.Trainer, "__init__", swallowing)
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    assert main(["train", str(EXAMPLES / "lti_qlearning.toml"), "--steps", "50", "--quiet", "--no-plots",
                 "--out", str(out)]) == 130
    assert not (out / "summary.json").exists()
    assert signal.getsignal(signal.SIGINT) is before  # (main restores the handler it found)
