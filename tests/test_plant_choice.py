"""Which plant a HIL run closes the loop with: the one θ was learned on, unless told otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmpc.hil.cli import plant_choice
from rlmpc.toolkit.problems import lti_mpc
from rlmpc.toolkit.theta_file import load_theta, save_theta, theta_document

LEARNED_ON = {"name": "CartPoleIncline", "params": {"m_pole": 0.65, "slope": 0.12}}


def manifest(plant: dict[str, object] | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"problem": {"name": "cartpole_incline", "params": {}}}
    if plant is not None:
        doc["plant"] = plant
    return doc


def test_the_plant_theta_was_learned_on_is_the_default() -> None:
    assert plant_choice(manifest(LEARNED_ON), None) == ("CartPoleIncline", LEARNED_ON["params"])
    # --plant-params updates its parameters
    assert plant_choice(manifest(LEARNED_ON), None, '{"m_pole": 0.7}') == (
        "CartPoleIncline", {"m_pole": 0.7, "slope": 0.12})
    # --plant replaces it, with only the given parameters
    assert plant_choice(manifest(LEARNED_ON), "CartPole", '{"m_pole": 0.7}') == ("CartPole", {"m_pole": 0.7})
    # without a record: the problem's default plant
    assert plant_choice(manifest(), None) == ("CartPoleIncline", {})
    with pytest.raises(ValueError, match="no default plant for problem 'rocket'"):
        plant_choice({"problem": {"name": "rocket"}}, None)


def test_theta_file_records_the_plant(tmp_path: Path) -> None:
    fns = lti_mpc().build()
    path = tmp_path / "theta.json"
    save_theta(path, theta_document("lti", {}, fns, fns.theta.default(),
                                    plant={"name": "LtiGrosZanon", "params": {"noise": 0.1}}))
    assert load_theta(path).plant == {"name": "LtiGrosZanon", "params": {"noise": 0.1}}
    doc = json.loads(path.read_text())
    doc["plant"] = "LtiGrosZanon"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="plant: expected"):
        load_theta(path)
    del doc["plant"]
    path.write_text(json.dumps(doc))
    assert load_theta(path).plant is None


def test_the_controller_sees_the_plant_state_not_the_observation() -> None:
    # GymPlant (e.g. Pendulum-v1) observes (cos, sin, rate) but gives the MPC's state in info
    import numpy as np

    from rlmpc.hil.runner import _plant_step, _reset_plant
    from rlmpc.toolkit.registry import make_env
    from rlmpc.toolkit.rl.plant_io import plant_state

    env = make_env("Pendulum-v1", {})
    x = _reset_plant(env, 3, None)
    obs, info = env.reset(seed=3)
    assert x.shape == (2,) and np.array_equal(x, plant_state(obs, info))
    x1, cost, _ = _plant_step(env, np.zeros(1))
    assert x1.shape == (2,) and np.isfinite(cost)


def test_a_device_of_another_problem_stops_the_run_at_once() -> None:
    from types import SimpleNamespace

    import numpy as np

    from rlmpc.hil.runner import run_hil
    from rlmpc.hil.transport import TransportError
    from rlmpc.toolkit.registry import make_env

    class OtherDevice:  # flashed with a cart-pole controller
        def info(self) -> SimpleNamespace:
            return SimpleNamespace(nx=4, nu=1)

    with pytest.raises(TransportError, match="nx = 4, nu = 1; the bundle's problem has nx = 2, nu = 1"):
        run_hil(OtherDevice(), make_env("LtiGrosZanon", {}), lambda x: np.zeros(1), 5,  # type: ignore[arg-type]
                manifest={"dims": {"nx": 2, "nu": 1}})


def test_state_constraint_violations_come_from_the_problem_when_the_plant_is_silent() -> None:
    import numpy as np

    from rlmpc.hil.runner import _plant_step, state_violation
    from rlmpc.toolkit import MPC
    from rlmpc.toolkit.problems import lti_mpc

    class Silent:  # a plant without info["violation"]
        def step(self, u: object) -> tuple[object, float, bool, bool, dict[str, object]]:
            x = np.array([-0.5, 0.0])  # x1 below its lower bound 0 of the LTI problem
            return x, -1.0, False, False, {"state": x}

    violation = state_violation(MPC(lti_mpc().build()))
    assert violation is not None
    _, _, v = _plant_step(Silent(), np.zeros(1), violation)
    assert v == pytest.approx(0.5)
