"""The θ file round trip and its refusals (hash mismatch, bounds, malformed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlmpc.toolkit.problems import lti_mpc
from rlmpc.toolkit.theta_file import load_theta, save_theta, theta_document


def write(tmp_path: Path, **changes: object) -> Path:
    fns = lti_mpc().build()
    doc = theta_document("lti", {}, fns, fns.theta.default() + 0.01)
    doc.update(changes)
    path = tmp_path / "theta.json"
    save_theta(path, doc)
    return path


def test_round_trip(tmp_path: Path) -> None:
    loaded = load_theta(write(tmp_path))
    fns = lti_mpc().build()
    np.testing.assert_allclose(loaded.values, fns.theta.default() + 0.01)
    assert loaded.problem == "lti" and loaded.fns.problem_hash == fns.problem_hash


def test_problem_params_rebuild_the_same_problem(tmp_path: Path) -> None:
    fns = lti_mpc(horizon=12).build()
    path = tmp_path / "t.json"
    save_theta(path, theta_document("lti", {"horizon": 12}, fns, fns.theta.default()))
    assert load_theta(path).fns.horizon == 12


@pytest.mark.parametrize(("changes", "message"), [
    ({"problem_hash": "0" * 64}, "problem_hash: θ was learned for a different version"),
    ({"format": "other"}, "format: expected 'rlmpc-theta/1'"),
    ({"problem": "rocket"}, "problem: unknown problem 'rocket'"),
    ({"values": {"x_lb": [5.0, 0.0]}}, r"values: theta 'x_lb\[0\]' = 5 is outside its bounds"),
    ({"values": {"A": [[1.0, 0.2]]}}, r"values: parameter 'A' value: expected a 2x2 matrix"),
    ({"values": [1.0, 2.0]}, r"values: expected an object \{name: value\}, got list"),
    ({"flat": [0.0] * 16}, "flat: does not match values"),
    ({"values": {"A": [[1.0, 0.1], [0.0, 1.0]]}},
     r"values: missing \['V0', .*'B'\]; a θ file holds every parameter"),
])
def test_refusals_name_the_field(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_theta(write(tmp_path, **changes))


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "theta.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_theta(path)
    with pytest.raises(ValueError, match="no such θ file"):
        load_theta(tmp_path / "missing.json")
    assert json.loads(write(tmp_path).read_text())["format"] == "rlmpc-theta/1"


def test_a_folder_is_not_a_theta_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a folder; expected a θ file"):
        load_theta(tmp_path)


def test_values_without_flat_are_read(tmp_path: Path) -> None:
    doc = json.loads(write(tmp_path).read_text())
    del doc["flat"]
    (tmp_path / "edited.json").write_text(json.dumps(doc))
    expected = lti_mpc().build().theta.default() + 0.01
    np.testing.assert_allclose(load_theta(tmp_path / "edited.json").values, expected)
