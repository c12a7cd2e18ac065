"""The compiled DPG step (rlmpc.toolkit.rl.native_dpg_step) computes the Python path's numbers: every
step's θ bit for bit, through its outcomes (done in C; a plan made in Python and handed to C; a solve
left to Python).  And the planned solve's LU cache returns what a fresh factorisation returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlmpc.toolkit import kkt_reduction
from rlmpc.toolkit.mpc import MPC
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problems.lti import lti_mpc
from rlmpc.toolkit.rl import native_dpg_step
from rlmpc.toolkit.rl.config import load_config
from rlmpc.toolkit.rl.training import Trainer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _train(tmp: Path, native: bool, outcomes: Counter[int], monkeypatch: pytest.MonkeyPatch) -> Trainer:
    cfg = load_config(EXAMPLES / "lti_dpg.toml", output=tmp / f"native_{native}")
    # (QPs capped at 9 iterations: some stop at the limit, are not verified and are solved again)
    solver = replace(cfg.mpc.solver, qp_max_iter=9)
    cfg = replace(cfg, episodes=6, agent=replace(cfg.agent, native=native), mpc=replace(cfg.mpc, solver=solver))
    trainer = Trainer(cfg, progress_bar=False, plots=False)
    trainer.evaluate = lambda theta: 0.0  # type: ignore[method-assign]  (not what is compared)
    run, register = native_dpg_step.NativeDpgStep.run, native_dpg_step.NativeDpgStep._register_plan

    def counted(self: native_dpg_step.NativeDpgStep, s: np.ndarray) -> int:
        outcome = run(self, s)
        outcomes[outcome] += 1
        return outcome

    def registered(self: native_dpg_step.NativeDpgStep) -> int:
        outcomes[native_dpg_step.PLAN] += 1
        return register(self)

    monkeypatch.setattr(native_dpg_step.NativeDpgStep, "run", counted)
    monkeypatch.setattr(native_dpg_step.NativeDpgStep, "_register_plan", registered)
    trainer.run()
    return trainer


def test_the_compiled_step_is_the_python_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes: Counter[int] = Counter()
    fast = _train(tmp_path, True, outcomes, monkeypatch)
    slow = _train(tmp_path, False, Counter(), monkeypatch)
    assert fast.agent._native is not None and slow.agent._native is None  # type: ignore[attr-defined]
    assert np.array_equal(np.array(fast.history.theta), np.array(slow.history.theta))
    assert np.array_equal(fast.history.td_error, slow.history.td_error, equal_nan=True)
    assert fast.mpc.verification == slow.mpc.verification and fast.mpc.verification.unverified > 0
    assert vars(fast.agent.failures) == vars(slow.agent.failures)
    assert fast.agent.updates == slow.agent.updates == 6
    assert outcomes[native_dpg_step.DONE] > 0 and outcomes[native_dpg_step.PLAN] > 0, outcomes
    assert outcomes[native_dpg_step.SOLVE] > 0, outcomes


def test_the_lu_cache_returns_a_fresh_factorisations_answer() -> None:
    mpc = MPC(lti_mpc(), SolverOptions(hpipm_mode="BALANCE"))
    sens = mpc.sensitivities
    solver = kkt_reduction.planned_solve()
    assert solver.available
    rng = np.random.default_rng(2)
    hits, moving = 0, 0
    for s in rng.uniform([-0.2, -0.5], [1.1, 0.5], size=(12, 2)):
        sol = mpc.value(s)
        first = sens.policy_jacobian(sol, method="sparse")  # (the cache holds this point's factors now)
        again = sens.policy_jacobian(sol, method="sparse")  # same plan, same K: the cached factors
        fresh = kkt_reduction.PlannedSolve()  # an empty cache: factorised anew
        kkt_reduction._SOLVER[0], saved = fresh, solver
        try:
            anew = sens.policy_jacobian(sol, method="sparse")
        finally:
            kkt_reduction._SOLVER[0] = saved
        assert np.array_equal(first, again) and np.array_equal(first, anew)
        assert np.allclose(first, sens.policy_jacobian(sol, method="dense"), rtol=1e-8, atol=1e-10)
        cache, (_, lu, _) = solver._cache  # type: ignore[misc]
        lu *= 2.0  # a hit uses these factors: its answer changes (unless u_0 sits on a bound: ∇θπ = 0)
        hits += not np.array_equal(sens.policy_jacobian(sol, method="sparse"), first)
        moving += bool(np.any(first != 0.0))
        cache.plan = None  # forgotten: factorised anew
        assert np.array_equal(sens.policy_jacobian(sol, method="sparse"), first)
    assert hits == moving > 6


def test_without_a_compiler_the_planned_solve_computes_the_same_in_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    mpc = MPC(lti_mpc(), SolverOptions(hpipm_mode="BALANCE"))
    sens = mpc.sensitivities
    states = np.random.default_rng(4).uniform([-0.2, -0.5], [1.1, 0.5], size=(8, 2))
    solutions = [mpc.value(s) for s in states]
    compiled = [sens.policy_jacobian(sol, method="sparse") for sol in solutions]
    monkeypatch.setattr(kkt_reduction.planned_solve(), "available", False)
    in_numpy = [sens.policy_jacobian(sol, method="sparse") for sol in solutions]
    assert any(np.any(j != 0.0) for j in compiled)
    for a, b in zip(compiled, in_numpy, strict=True):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)
