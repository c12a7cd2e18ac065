"""Plots written by runs leave matplotlib's global state alone (notebooks keep their inline plots)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np

from rlmpc.toolkit.rl.outputs import plot_learning_curves

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("toolkit", "codegen", "hil", "rlmpc")


def test_learning_curves_keep_the_users_backend(tmp_path: Path) -> None:
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands in for a notebook's inline backend: anything but Agg
    try:
        rng = np.random.default_rng(0)
        hist = SimpleNamespace(step_cost=list(rng.uniform(0.1, 2.0, 300)), td_error=list(rng.normal(size=300)),
                               theta=list(np.cumsum(rng.normal(size=(300, 3)), axis=0)), episode_cost=[5.0])
        path = plot_learning_curves(tmp_path / "curves.png", hist, ["a", "b", "c"])
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_no_package_module_switches_the_backend_or_uses_pyplot() -> None:
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"plot with rlmpc.toolkit.figures instead: {offenders}"
