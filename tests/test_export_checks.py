"""A user's own MPC to the board without training (issue 14): ``rlmpc theta init``, export of a
nonlinear model with no stabilisable linearisation (a unicycle), ``export --check`` with its
state box on the linear cart-pole (hard and soft constraints), ``bench-target --starts``."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rlmpc.cli import main
from rlmpc.toolkit.registry import ENVS, PROBLEMS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CARTPOLE = textwrap.dedent('''
    """A user's linear cart-pole: hard or soft (penalty 1e4) cart limit."""
    import casadi as cs

    from rlmpc.toolkit.problem import ParametricMPC
    from rlmpc.toolkit.problems.linear_cartpole import upright_linearisation
    from rlmpc.toolkit.registry import register_problem


    def my_cartpole(soft: bool = False, penalty: float = 1e4) -> ParametricMPC:
        a, b = upright_linearisation(20, 0.05)
        mpc = ParametricMPC("my_cartpole", nx=4, nu=1, horizon=20, discount=0.99)
        x, u = mpc.x, mpc.u
        q = mpc.learnable("q", [1.0, 5.0, 0.1, 0.1], lb=1e-3, ub=1e3)
        r = mpc.learnable("r", 0.1, lb=1e-3, ub=1e2)
        mpc.discrete_dynamics(cs.DM(a) @ x + cs.DM(b) @ u, dt=0.05)
        mpc.stage_cost(cs.sum1(q * x**2) + r * cs.sumsqr(u))
        mpc.terminal_cost(10.0 * cs.sum1(q * x**2))
        mpc.input_bounds(-5.0, 5.0)
        mpc.state_constraint("cart_position", x[0], lb=-1.0, ub=1.0, soft=soft,
                             linear_penalty=penalty if soft else 0.0,
                             quadratic_penalty=penalty if soft else 0.0)
        return mpc


    register_problem("my_cartpole", my_cartpole)
''')


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder with the unicycle example and a linear cart-pole as plugins."""
    shutil.copyfile(EXAMPLES / "unicycle.py", tmp_path / "my_unicycle.py")
    (tmp_path / "my_cartpole.py").write_text(CARTPOLE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLMPC_PLUGINS", "my_unicycle,my_cartpole")
    monkeypatch.setattr("sys.path", ["", *sys.path])
    try:
        yield tmp_path
    finally:
        for name in ("unicycle", "my_cartpole"):
            PROBLEMS.pop(name, None)
        ENVS.pop("Unicycle", None)
        for module in ("my_unicycle", "my_cartpole"):
            sys.modules.pop(module, None)


def test_unicycle_exports_without_a_stabilisable_linearisation(user_folder: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theta", "init", "unicycle", "--plant", "Unicycle", "--out", "theta.json"]) == 0
    assert main(["theta", "init", "unicycle", "--out", "theta.json"]) == 2  # never overwritten
    assert "never overwritten" in capsys.readouterr().err
    # a steady state the user names must be one, with a stabilisable linearisation
    assert main(["export", "--theta", "theta.json", "--target", "cortex-m4", "--out", "bad",
                 "--operating-point", '{"x": [0, 0, 0], "u": [0.5, 0]}']) == 2
    assert "is not a steady state" in capsys.readouterr().err
    assert main(["export", "--theta", "theta.json", "--target", "cortex-m4", "--out", "bad",
                 "--operating-point", '{"x": [0, 0, 0], "u": [0, 0]}']) == 2
    err = capsys.readouterr().err
    assert "not stabilisable" in err and "--operating-point" in err and len(err.strip().splitlines()) == 1
    assert not (user_folder / "bad").exists()
    assert main(["export", "--theta", "theta.json", "--target", "cortex-m4", "--out", "mcu", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("PASS") and "infeasible" not in out
    assert "the previous plan shifted" in out
    fallback = json.loads((user_folder / "mcu" / "manifest.json").read_text())["fallback"]
    assert fallback["gain"] is False and fallback["operating_point"]["x"] == pytest.approx([1.0, 0.0, 0.0])
    assert "#define HAS_GAIN 0" in (user_folder / "mcu" / "rlmpc_rti.c").read_text()

    # HIL judges the RTI device against acados SQP_RTI from the same warm start; the converged
    # MPC (3e-3 away on these states, more than the 1e-3 threshold) is a second figure
    assert main(["hil", "mcu", "--target", "host", "--steps", "20", "--out", "hil"]) == 0
    out = capsys.readouterr().out
    assert "HIL host: PASS" in out and "distance to the converged MPC" in out
    reference = json.loads((user_folder / "hil" / "hil.json").read_text())["conditions"]["reference"]
    assert reference["algorithm"].startswith("acados SQP_RTI") and reference["max_distance_to_converged_mpc"] > 1e-3

    # closed loops on the host board from given states, the reference the device's own algorithm
    np.savetxt("starts.csv", [[-0.5, 0.1, 0.0], [-0.3, -0.2, 0.3]], delimiter=",")
    assert main(["bench-target", "mcu", "--target", "host", "--starts", "starts.csv", "--steps", "8",
                 "--out", "bench"]) == 0
    doc = json.loads((user_folder / "bench" / "bench_target.json").read_text())
    assert doc["episodes"] == 2 and doc["starts"] == [[-0.5, 0.1, 0.0], [-0.3, -0.2, 0.3]]
    assert len(doc["costs"]) == 16 and doc["max_action_error"] < 1e-4
    (user_folder / "bad.csv").write_text("1, 2\n")
    assert main(["bench-target", "mcu", "--target", "host", "--starts", "bad.csv", "--out", "bench2"]) == 2
    assert "expected rows of 3 numbers" in capsys.readouterr().err


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft-1e4"])
def test_linear_cartpole_check_passes_with_the_default_box(user_folder: Path, soft: bool,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    params = json.dumps({"soft": soft, "penalty": 1e4})
    assert main(["theta", "init", "my_cartpole", "--problem-params", params, "--out", "theta.json"]) == 0
    assert main(["export", "--theta", "theta.json", "--target", "cortex-m4", "--out", "mcu", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("PASS") and "infeasible" not in out
    # the default box: the cart limit widened by 20 % of its range, ±1 for the other states
    assert "check states from the box [-1.4..1.4, -1..1, -1..1, -1..1]" in out


def test_check_box_option(user_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theta", "init", "my_cartpole", "--out", "theta.json"]) == 0
    for box, message in (('{"lb": [-1, 1], "ub": [1, 2]}', "expected 4 numbers"),
                         ('{"lb": 1, "ub": -1}', "lb < ub"), ("[1", "not JSON")):
        assert main(["export", "--theta", "theta.json", "--target", "cortex-m4", "--out", "mcu",
                     "--check", "--check-box", box]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("rlmpc: error: --check-box")
    assert not (user_folder / "mcu").exists()
    from rlmpc.codegen.mcu_export import check_mcu

    report = check_mcu("theta.json", user_folder / "work", box={"lb": [-0.5, -0.1, -0.2, -0.2],
                                                                  "ub": [0.5, 0.1, 0.2, 0.2]})
    text = "\n".join(report.lines())
    assert "check states from the box [-0.5..0.5, -0.1..0.1, -0.2..0.2, -0.2..0.2] (--check-box" in text
    assert text.endswith("PASS")


def test_a_soft_rti_qp_is_never_reported_infeasible(tmp_path: Path) -> None:
    """Input bounds and soft state rows only (penalty 1e4): the QP is always feasible.  float32
    rounding that makes the plan miss an input bound is reported as such (RLMPC_INACCURATE,
    -20), no longer as DAQP's 'infeasible' (-1), which it was at one of these states."""
    import casadi as cs

    from rlmpc.codegen.mcu.rti_check import check_rti
    from rlmpc.toolkit.problem import ParametricMPC
    from rlmpc.toolkit.problems.cartpole import cartpole_dynamics

    mpc = ParametricMPC("soft_cartpole", nx=4, nu=1, horizon=20, discount=0.99)
    x, u = mpc.x, mpc.u
    mpc.continuous_dynamics(cartpole_dynamics(x, u, 1.0, 0.1, 0.8), dt=0.05)
    mpc.stage_cost(cs.sumsqr(x) + 4 * x[1] ** 2 + 0.1 * cs.sumsqr(u))
    mpc.terminal_cost(10.0 * cs.sumsqr(x))
    mpc.input_bounds(-5.0, 5.0)
    soft = {"soft": True, "linear_penalty": 1e4, "quadratic_penalty": 1e4}
    mpc.state_constraint("cart", x[0], lb=-1.0, ub=1.0, **soft)
    mpc.state_constraint("angle", x[1], lb=-0.3, ub=0.3, **soft)
    mpc.state_constraint("velocities", x[2:], lb=-1.5, ub=1.5, **soft)
    report = check_rti(mpc.build(), tmp_path, n_loops=0, precisions=("float32",), footprint=False,
                       box=(np.full(4, -1.0), np.full(4, 1.0)))
    statuses = set(report.precisions[0].statuses)
    assert -1 not in statuses and statuses <= {1, 2, 4, -20}, statuses


def test_an_unstabilisable_linear_model_condenses_without_a_gain() -> None:
    """The linear solver's pre-stabilisation: an unstable mode no input reaches has no LQR gain
    (scipy: 'Failed to find a finite solution'); the condensing then uses K = 0."""
    import casadi as cs

    from rlmpc.codegen.mcu.condense import condense
    from rlmpc.codegen.mcu.fallback import lqr
    from rlmpc.codegen.mcu.linearise import linearise
    from rlmpc.toolkit.problem import ParametricMPC

    mpc = ParametricMPC("drift", nx=2, nu=1, horizon=5)
    x, u = mpc.x, mpc.u
    mpc.discrete_dynamics(cs.vertcat(x[0] + 0.1 * u[0], 1.05 * x[1]))
    mpc.stage_cost(cs.sumsqr(x) + cs.sumsqr(u))
    mpc.input_bounds(-1.0, 1.0)
    ocp = linearise(mpc.build())
    s0 = ocp.stages[0]
    assert lqr(s0.A, s0.B, s0.W) is None
    qp = condense(ocp)
    assert np.array_equal(qp.K, np.zeros((1, 2))) and np.isfinite(qp.cond_h)


def test_the_check_box_comes_from_the_plant_s_resets(tmp_path: Path) -> None:
    from rlmpc.codegen.mcu_export import check_box
    from rlmpc.toolkit.theta_file import init_theta, load_theta

    path = init_theta("pendulum", {}, tmp_path / "theta.json", plant={"name": "Pendulum-v1", "params": {}})
    box, source = check_box(load_theta(path))
    assert box is not None and source == "the reset distribution of plant 'Pendulum-v1'"
    assert np.all(box[0] < box[1])
    given, source = check_box(load_theta(path), {"lb": [-0.1, -0.2], "ub": [0.1, 0.2]})
    assert source == "--check-box" and given[0].tolist() == [-0.1, -0.2]
    # a plant that always starts from the same state gives no box: the problem's own is used
    path = init_theta("lti", {}, tmp_path / "lti.json", plant={"name": "LtiGrosZanon", "params": {}})
    assert check_box(load_theta(path)) == (None, "")
