"""The inputs of ``rlmpc hil`` besides the bundle: a θ to push (``--theta``) and p per step (``--params``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.codegen.manifest import theta_hash


def theta_for_bundle(path: str | Path, manifest: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """θ of the file ``path`` (checked against the bundle's problem), and the manifest as it is
    after SET_THETA (the θ values and hash replaced).  One-line ValueError on a mismatch."""
    from rlmpc.toolkit.theta_file import load_theta

    tf = load_theta(path)
    if tf.fns.problem_hash != manifest["problem"]["hash"]:
        raise ValueError(f"--theta {path}: θ of problem {tf.problem!r} (hash {tf.fns.problem_hash[:12]}…), "
                         f"the bundle's problem is {manifest['problem']['name']!r} "
                         f"(hash {manifest['problem']['hash'][:12]}…)")
    values = np.asarray(tf.values, dtype=float)
    pushed = copy.deepcopy(manifest)
    pushed["theta"]["flat"] = [float(v) for v in values]
    pushed["theta"]["hash"] = theta_hash(values)
    pushed["theta"]["values"] = {k: np.asarray(v).tolist() for k, v in tf.fns.theta.unflatten(values).items()}
    return values, pushed


def load_params(path: str | Path, steps: int, n_p: int) -> np.ndarray:
    """p per step from a ``.csv`` (one row per step, comma-separated, ``#`` comments) or ``.npy``
    file: shape (steps, np); the last row is repeated if the file is shorter."""
    src = Path(path)
    try:
        if src.suffix == ".npy":
            data = np.load(src, allow_pickle=False)
        elif src.suffix == ".csv":
            data = np.loadtxt(src, delimiter=",", ndmin=2, comments="#")
        else:
            raise ValueError(f"--params {src}: expected a .csv or .npy file")
    except (OSError, ValueError) as exc:
        if str(exc).startswith("--params"):
            raise
        raise ValueError(f"--params {src}: cannot read it ({exc})") from None
    data = np.asarray(data, dtype=float)
    if data.ndim == 1:
        data = data.reshape(-1, 1) if n_p == 1 else data.reshape(1, -1)
    if data.ndim != 2 or data.shape[1] != n_p or data.shape[0] < 1:
        raise ValueError(f"--params {src}: expected rows of {n_p} values (the problem's p), got shape "
                         f"{tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise ValueError(f"--params {src}: every value must be finite")
    if data.shape[0] < steps:
        data = np.vstack([data, np.repeat(data[-1:], steps - data.shape[0], axis=0)])
    return data[:steps]
