"""The ADMM MCU path (time-invariant QPs, cached Riccati gains) against acados, natively compiled,
its anytime contract and the export's choice of path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.mcu.host_check import HostSolver
from rlmpc.codegen.mcu.structured.admm import generate_admm, render_admm
from rlmpc.codegen.mcu.structured.check import check_structured
from rlmpc.codegen.mcu.structured.lti import NotTimeInvariant, lti_qp
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.toolkit.problems.mass_chain import mass_chain_mpc
from rlmpc.toolkit.problems.quadrotor import INPUT_LIMITS, quadrotor_hover_mpc

OPTIMAL, SOFT_OPTIMAL, INEXACT, MAX_ITER, INVALID_STATE = 1, 2, 4, -4, -100
HOVER_BOX = np.r_[[1.5] * 3, [1.0] * 3, [0.2] * 3, [0.5] * 3]


def hover_states(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 12)) * HOVER_BOX * scale


@pytest.mark.parametrize("name", ["hover", "chain"])
def test_admm_reproduces_acados(name: str, tmp_path: Path) -> None:
    """float64 and float32 u0 (cold and warm) and closed loops within the check's tolerances."""
    if name == "hover":
        fns = quadrotor_hover_mpc(horizon=8).build()
        rep = check_structured(fns, tmp_path, states=hover_states(6, 0), loop_states=hover_states(2, 1),
                               steps=30, footprint=False, method="admm", max_iter=5000)
    else:
        fns = mass_chain_mpc(nx=8, nu=2, horizon=8).build()
        rep = check_structured(fns, tmp_path, n_states=6, n_loops=2, steps=30, footprint=False,
                               method="admm", max_iter=5000)
    assert rep.n_input_active >= 1, rep.lines()
    assert rep.problems() == [], rep.lines()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    fns = quadrotor_hover_mpc(horizon=10).build()
    out = tmp_path_factory.mktemp("admm_capped")
    return {cap: build_host_harness(generate_admm(fns, out / f"c{cap}", precision="float32", max_iter=cap),
                                    out / f"c{cap}" / "harness") for cap in (1, 2, 200)}


def _answers(exe: Path, states: np.ndarray, reset: bool = False) -> list[tuple[int, np.ndarray]]:
    with HostSolver(exe) as sv:
        out = []
        for s in states:
            if reset:
                sv.reset()
            res = sv.solve(s)
            out.append((res.status, res.u0))
        return out


def test_capped_solves_are_inexact_finite_and_within_the_input_box(capped: dict[int, Path]) -> None:
    lim = np.asarray(INPUT_LIMITS)
    for cap in (1, 2):
        answers = _answers(capped[cap], hover_states(10, 4), reset=True)
        assert all(status == INEXACT for status, _ in answers), [s for s, _ in answers]
        assert all(np.all(np.isfinite(u0)) and np.all(np.abs(u0) <= lim) for _, u0 in answers)


def test_extreme_states_are_never_called_optimal_with_a_bad_answer(capped: dict[int, Path]) -> None:
    lim = np.asarray(INPUT_LIMITS)
    rng = np.random.default_rng(5)
    states = np.vstack([hover_states(10, 3, 1e3), rng.uniform(-1e30, 1e30, (4, 12)),
                        np.tile(np.r_[[50.0] * 3, [0.0] * 9], (2, 1))])
    for exe in capped.values():
        for status, u0 in _answers(exe, states):
            assert np.all(np.isfinite(u0)) and np.all(np.abs(u0) <= lim), (status, u0)
            assert status in (OPTIMAL, SOFT_OPTIMAL, INEXACT, MAX_ITER), status
    # 1e30 is finite in float32 but far from converging; 3e38 overflows: the fallback
    for status, _ in _answers(capped[200], rng.uniform(-1e30, 1e30, (3, 12)), reset=True):
        assert status in (INEXACT, MAX_ITER), status
    for status, u0 in _answers(capped[200], np.full((2, 12), 3e38), reset=True):
        assert status == MAX_ITER and np.all(np.abs(u0) <= lim), status
    bad = np.zeros((2, 12))
    bad[0, 0], bad[1, 5] = np.nan, np.inf
    for status, u0 in _answers(capped[200], bad):
        assert status == INVALID_STATE and np.all(np.isfinite(u0))


def test_time_invariance_is_detected() -> None:
    lti_qp(quadrotor_hover_mpc(horizon=5).build())
    with pytest.raises(NotTimeInvariant, match="cost Hessian"):
        lti_qp(quadrotor_hover_mpc(horizon=5, discount=0.9).build())


def test_identical_inputs_give_identical_files() -> None:
    fns = quadrotor_hover_mpc(horizon=5).build()
    a = render_admm(fns, precision="float32")[0]
    assert a == render_admm(fns, precision="float32")[0] and set(a) == {"rlmpc_solver.h", "rlmpc_solver.c"}


def test_choice_takes_admm_where_dense_does_not_fit() -> None:
    from rlmpc.codegen.mcu.structured.choice import choose_qp
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

    assert choose_qp(linear_cartpole_mpc().build(), "float32").path == "dense"
    hover20 = quadrotor_hover_mpc(horizon=20).build()
    assert choose_qp(hover20, "float32").path == "dense"
    assert choose_qp(hover20, "float32", admm_options=True).path == "admm"  # a budget given
    choice = choose_qp(quadrotor_hover_mpc(horizon=40).build(), "float32")
    assert choice.path == "admm" and "time-invariant" in choice.reason and "does not fit" in choice.reason
    discounted = quadrotor_hover_mpc(horizon=40, discount=0.9).build()
    choice = choose_qp(discounted, "float32")
    assert choice.path == "structured" and "not a time-invariant QP" in choice.reason
    with pytest.raises(ValueError, match="--qp admm: the problem is not a time-invariant QP"):
        choose_qp(discounted, "float32", requested="admm")


def test_ram_estimate_matches_the_arrays(tmp_path: Path) -> None:
    from rlmpc.codegen.mcu.structured.choice import admm_ram_estimate
    from rlmpc.codegen.mcu.toolchain import cortex_m4_footprint

    fns = quadrotor_hover_mpc(horizon=20).build()
    ram = cortex_m4_footprint(generate_admm(fns, tmp_path / "g"), tmp_path / "arm").ram
    assert abs(admm_ram_estimate(fns, "float32") - ram) <= 0.1 * ram + 64


def test_admm_bundle_runs_in_the_unchanged_firmware(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """export --qp admm (a small chain), build for the host board, HIL on the MassChain plant: PASS."""
    from rlmpc.cli import main
    from rlmpc.toolkit.registry import make_problem
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    params = {"nx": 4, "nu": 1, "horizon": 10}
    fns = make_problem("mass_chain", params).build()
    theta = tmp_path / "theta.json"
    save_theta(theta, theta_document("mass_chain", params, fns, fns.theta.default()))
    bundle, fw = tmp_path / "bundle", tmp_path / "fw"
    assert main(["export", "--theta", str(theta), "--target", "cortex-m4", "--out", str(bundle), "--qp", "admm",
                 "--admm-max-iter", "300", "--admm-rho", "3"]) == 0
    assert "ADMM on cached Riccati gains, rho 3, at most 300 iterations" in capsys.readouterr().out
    assert main(["export", "--theta", str(theta), "--target", "cortex-m4", "--out", str(tmp_path / "d"), "--qp",
                 "dense", "--admm-rho", "3"]) == 2
    assert "--admm-rho: only for the ADMM path" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    assert main(["build", str(bundle), "--board", "host", "--out", str(fw)]) == 0
    code = main(["hil", str(bundle), "--target", "host", "--program", str(fw / "controller"), "--steps", "30",
                 "--seed", "3", "--plant-params", '{"nx": 4, "nu": 1}', "--out", str(tmp_path / "hil")])
    out = capsys.readouterr().out
    assert code == 0 and "HIL host: PASS" in out, out


def test_mass_chain_plant_follows_the_model_and_refuses_bad_params() -> None:
    from rlmpc.toolkit.problems.mass_chain import chain_model
    from rlmpc.toolkit.registry import make_env

    env = make_env("MassChain", {"nx": 4, "nu": 1})
    x0, _ = env.reset(seed=0)
    x1, _, _, _, info = env.step(np.array([0.5]))
    A, B = chain_model(4, 1, 0.1)
    assert np.allclose(x1, A @ x0 + B @ [0.5]) and info["cost"] > 0
    for bad in ({"nx": "4"}, {"dt": -1.0}, {"nu": True}):
        with pytest.raises(ValueError, match="MassChain: expected a positive"):
            make_env("MassChain", bad)


def test_dense_choice_that_does_not_fit_once_compiled_falls_back_to_admm(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The dense RAM estimate is a fit: where it says "fits" but the compiled solver does not (the
    12-state chain at N = 20 on 112 KB; here N = 10 on 30 KB), the export takes ADMM and says why."""
    import json

    from rlmpc.cli import main
    from rlmpc.toolkit.registry import make_problem
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    params = {"horizon": 10}
    fns = make_problem("mass_chain", params).build()
    theta = tmp_path / "theta.json"
    save_theta(theta, theta_document("mass_chain", params, fns, fns.theta.default()))
    from rlmpc.codegen.mcu.structured.choice import choose_qp

    assert choose_qp(fns, "float32", ram_limit=30 * 1024).path == "dense"  # the estimate says it fits
    bundle = tmp_path / "bundle"
    assert main(["export", "--theta", str(theta), "--target", "cortex-m4", "--out", str(bundle),
                 "--ram-limit", "30"]) == 0
    out = capsys.readouterr().out
    assert "the dense path, compiled, needs" in out and "ADMM on cached Riccati gains" in out, out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["solver"]["qp_path"] == "admm" and manifest["footprint"]["ram"] <= 30 * 1024
    assert not (bundle / "daqp").exists() and not (bundle / "rlmpc_lin_model.c").exists()  # no dense leftovers
