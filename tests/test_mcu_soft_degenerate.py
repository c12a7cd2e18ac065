"""The dense MCU solver where DAQP's answer for soft rows with a purely linear (L1) penalty is degenerate.

Three steps of the LTI Q-learning run with seed 3 and ``hpipm_mode = "BALANCE"`` through the float32 device
(θ, s of the run): DAQP ends with all 10 input bounds held plus 12 soft rows with free slacks, one of which
is not violated (its slack state is decided at the resolution ε'·violation, below DAQP's rounding), and
``polish_l1`` could not make that side held (11 held rows for 10 variables): the device reported u0 = 1
(the input bound) as optimal where the optimum is 0.99919 (step 2816).  Now the polish lets the held row
whose multiplier reaches zero first leave; and an answer that fails the exact problem's optimality
conditions is reported ``RLMPC_OPTIMAL_INEXACT``, never optimal.  The RTI solver's DAQP use has the same
defect on its first (cold) step; it has no polish, but its check of the working set reports it INEXACT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.mcu.generate import generate
from rlmpc.codegen.mcu.generate_rti import generate_rti
from rlmpc.codegen.mcu.host_check import HostSolver
from rlmpc.codegen.mcu.toolchain import build_host_harness
from rlmpc.toolkit.nlp import solve_with_ipopt, transcribe
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.problems import lti_mpc

OPTIMAL, SOFT_OPTIMAL, OPTIMAL_INEXACT = 1, 2, 4  # rlmpc_solver.h
TOLERANCE = {"float32": 1e-5, "float64": 1e-8}
# step of the run: (θ, s)
CASES: dict[int, tuple[list[float], list[float]]] = {
    2816: ([0.022703287758208898, 0.2330371447301987, 4.346420676095524e-15, 0.999999999999998,
         -0.0050397668774742775, 0.02964271933896307, 0.24618909861481938, 0.02690214462583828,
         -0.014254231022327556, -0.065013653604016, 1.0751299310992677, 0.025792532907285986,
         0.2085874050064398, 1.0509104061741774, 0.036614105850259045, 0.07336109436170483],
           [-0.44253403079452724, -0.09890295698924509]),
    4575: ([0.02270198162797, 0.23299273570817808, 4.3528612269718676e-15, 0.999999999999998,
         -0.004428691359288782, 0.027073361142542617, 0.2394629428592806, 0.02689408461985933,
         -0.014289924217984591, -0.06498573874422237, 1.0751676651476365, 0.027359234501001337,
         0.2081140697863088, 1.044564934786183, 0.03536939583936062, 0.08137826537628587],
           [-0.4742663993089865, -0.03254399778400871]),
    4703: ([0.022701995732642716, 0.2330126188019168, 4.350473453355964e-15, 0.999999999999998,
         -0.004414733868508763, 0.02687636030392233, 0.2392436914387206, 0.026893966208115967,
         -0.014291353549030968, -0.06498520163102765, 1.0751621177817248, 0.027448587591671347,
         0.2080909414462224, 1.0442927515603575, 0.03537796409878147, 0.08162739743805435],
           [-0.4095261224577508, -0.0862863873152549]),
}


@pytest.fixture(scope="module")
def fns() -> ProblemFunctions:
    return lti_mpc().build()


def _optimum(fns: ProblemFunctions, step: int) -> np.ndarray:
    theta, s = CASES[step]
    return solve_with_ipopt(transcribe(fns, False), np.array(s), np.array(theta), np.zeros(fns.np)).u0


def _solve(fns: ProblemFunctions, step: int, precision: str, out: Path, old_polish: bool = False
           ) -> tuple[int, np.ndarray]:
    """A cold solve at the step's s with its θ compiled in (``old_polish``: a free side that is not violated
    simply becomes held, as before the fix)."""
    theta, s = CASES[step]
    gen = generate(fns, out, theta=np.array(theta), precision=precision)
    if old_polish:
        source = gen.directory / "rlmpc_solver.c"
        text = source.read_text()
        assert text.count("return polish_unfree(j, nh, np);") == 1
        old = "{ if (0) return polish_unfree(j, nh, np); pol_free[j] = 0; return 1; }"
        source.write_text(text.replace("return polish_unfree(j, nh, np);", old))
    with HostSolver(build_host_harness(gen, out / "harness")) as solver:
        res = solver.solve(np.array(s))
    return res.status, res.u0


@pytest.mark.parametrize(("step", "precision"), [(2816, "float32"), (2816, "float64"), (4575, "float32"),
                                                 (4703, "float32")])
def test_degenerate_soft_working_set_gives_the_optimum(fns: ProblemFunctions, tmp_path: Path, step: int,
                                                       precision: str) -> None:
    status, u0 = _solve(fns, step, precision, tmp_path)
    err = float(np.max(np.abs(u0 - _optimum(fns, step))))
    assert status in (OPTIMAL, SOFT_OPTIMAL) and err <= TOLERANCE[precision], (status, u0, err)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_an_answer_that_is_not_optimal_is_reported_inexact(fns: ProblemFunctions, tmp_path: Path,
                                                           precision: str) -> None:
    status, u0 = _solve(fns, 2816, precision, tmp_path, old_polish=True)
    assert np.max(np.abs(u0 - _optimum(fns, 2816))) > 1e-4  # (the wrong answer of the old polish)
    assert status == OPTIMAL_INEXACT


@pytest.mark.parametrize(("step", "precision"), [(2816, "float32"), (2816, "float64"), (4703, "float32")])
def test_rti_cold_step_is_optimal_or_inexact(fns: ProblemFunctions, tmp_path: Path, step: int,
                                             precision: str) -> None:
    theta, s = CASES[step]
    gen = generate_rti(fns, tmp_path, theta=np.array(theta), precision=precision)
    with HostSolver(build_host_harness(gen, tmp_path / "harness", rti=True)) as solver:
        res = solver.solve(np.array(s))
    err = float(np.max(np.abs(res.u0 - _optimum(fns, step))))
    assert res.status == OPTIMAL_INEXACT or (res.status > 0 and err <= TOLERANCE[precision]), (res.status, err)
