"""The θ file: learned parameters with the problem they belong to (JSON).

Written by ``rlmpc train``, read by ``rlmpc export``.  It names the registered
problem and its construction parameters, so the exact problem can be rebuilt,
and carries the problem hash, so θ is never applied to a different problem.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import rlmpc.toolkit as toolkit
from rlmpc.toolkit.acados_runtime import acados_version
from rlmpc.toolkit.json_file import read_json
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions

THETA_FORMAT = "rlmpc-theta/1"


def theta_document(problem: str, problem_params: dict[str, Any], fns: ProblemFunctions,
                   values: FloatArray, plant: dict[str, Any] | None = None) -> dict[str, Any]:
    """The θ file's content: names, values, bounds and the problem they belong to; ``plant``:
    the environment θ was learned on (``{"name", "params"}``), the HIL's default plant."""
    theta = fns.theta
    doc = {
        "format": THETA_FORMAT,
        "problem": problem,
        "problem_params": problem_params,
        "problem_hash": fns.problem_hash,
        "names": theta.names,
        "values": {k: v.tolist() for k, v in theta.unflatten(values).items()},
        "lb": {k: v.tolist() for k, v in theta.unflatten(theta.lower()).items()},
        "ub": {k: v.tolist() for k, v in theta.unflatten(theta.upper()).items()},
        "flat": np.asarray(values, dtype=float).tolist(),
        "labels": theta.labels(),
        "toolkit_version": toolkit.__version__,
        "acados_version": acados_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if plant is not None:
        doc["plant"] = {"name": str(plant["name"]), "params": dict(plant.get("params", {}))}
    return doc


def save_theta(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (a crash never leaves half a θ file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class ThetaFile:
    """A validated θ file with its rebuilt problem."""

    path: Path
    problem: str
    problem_params: dict[str, Any]
    fns: ProblemFunctions
    values: FloatArray
    document: dict[str, Any]

    @property
    def plant(self) -> dict[str, Any] | None:
        """The environment θ was learned on (``{"name", "params"}``), if the file records it."""
        plant = self.document.get("plant")
        return plant if isinstance(plant, dict) else None


def _same_flat(flat: Any, values: FloatArray) -> bool:
    try:
        arr = np.asarray(flat, dtype=float)
    except (TypeError, ValueError):
        return False
    return arr.shape == values.shape and bool(np.array_equal(arr, values))


def load_theta(path: str | Path) -> ThetaFile:
    """Read a θ file, rebuild its problem and check hash and bounds.

    Raises ValueError with a one-line message naming the file and the field.
    """
    from rlmpc.toolkit.registry import PROBLEMS, make_problem, plugin_hint

    src = Path(path)
    doc = read_json(src, "θ file")
    if not isinstance(doc, dict) or doc.get("format") != THETA_FORMAT:
        raise ValueError(f"{src}: format: expected {THETA_FORMAT!r}, got "
                         f"{doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}")
    for key in ("problem", "problem_hash", "values"):
        if key not in doc:
            raise ValueError(f"{src}: {key}: missing")
    problem = doc["problem"]
    if problem not in PROBLEMS:
        raise ValueError(f"{src}: problem: unknown problem {problem!r}; expected one of "
                         f"{sorted(PROBLEMS)} {plugin_hint()}")
    params = doc.get("problem_params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{src}: problem_params: expected an object, got {type(params).__name__}")
    fns = make_problem(problem, params).build()
    if fns.problem_hash != doc["problem_hash"]:
        raise ValueError(f"{src}: problem_hash: θ was learned for a different version of problem "
                         f"{problem!r} (hash {doc['problem_hash'][:12]}…, this toolkit builds "
                         f"{fns.problem_hash[:12]}…)")
    if not isinstance(doc["values"], dict):
        raise ValueError(f"{src}: values: expected an object {{name: value}}, got "
                         f"{type(doc['values']).__name__}")
    try:
        values = fns.theta.flatten(doc["values"])
    except ValueError as exc:
        raise ValueError(f"{src}: values: {exc}") from None
    missing = [n for n in fns.theta.names if n not in doc["values"]]
    if missing:  # (a configuration may give part of θ; a θ file is all of it)
        raise ValueError(f"{src}: values: missing {missing}; a θ file holds every parameter")
    plant = doc.get("plant")
    if plant is not None and not (isinstance(plant, dict) and isinstance(plant.get("name"), str)
                                  and isinstance(plant.get("params", {}), dict)):
        raise ValueError(f"{src}: plant: expected {{\"name\": str, \"params\": {{…}}}}")
    if plant is not None:
        from rlmpc.toolkit.registry import ENVS, plant_known, plugin_hint

        if not plant_known(plant["name"]):
            raise ValueError(f"{src}: plant: unknown plant {plant['name']!r}; expected one of {sorted(ENVS)}, "
                             f"or a gymnasium id {plugin_hint()}")
    if "flat" in doc and not _same_flat(doc["flat"], values):
        raise ValueError(f"{src}: flat: does not match values (flat is written from values for "
                         "reference; edit values and delete flat, or make them agree)")
    return ThetaFile(src, problem, params, fns, values, doc)


def init_theta(problem: str, problem_params: dict[str, Any], out: str | Path,
               plant: dict[str, Any] | None = None) -> Path:
    """Write the definition's own θ (each parameter's initial value) as a θ file, for exporting
    an MPC that was not trained.  An existing file is never overwritten (one-line ValueError)."""
    from rlmpc.toolkit.registry import ENVS, make_problem, plugin_hint

    dest = Path(out)
    if dest.exists():
        raise ValueError(f"{dest}: exists; θ files are never overwritten (remove it or choose another --out)")
    if not isinstance(problem_params, dict):
        raise ValueError(f"--problem-params: expected a JSON object, got {type(problem_params).__name__}")
    if plant is not None and plant["name"] not in ENVS:
        raise ValueError(f"--plant: unknown plant {plant['name']!r}; expected one of {sorted(ENVS)} "
                         f"{plugin_hint()}")
    fns = make_problem(problem, problem_params).build()
    if not dest.parent.is_dir():
        raise ValueError(f"{dest}: folder {dest.parent} does not exist")
    save_theta(dest, theta_document(problem, problem_params, fns, fns.theta.default(), plant))
    return dest
