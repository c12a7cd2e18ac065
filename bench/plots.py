"""Benchmark of drawing a run's PNGs (issue #17: writing outputs must stay cheap), this code against a
git revision's, side by side.

Times ``learning_curves.png`` + ``evaluation.png`` (``rlmpc plot RUN``) and, for a run through a
device, ``device_panel.png``, each the median of ``--repeat`` draws into a temporary folder (the run
folder is only read).  The baseline's ``toolkit/rl/outputs.py`` and ``hil/device_training.py`` are
taken from ``--baseline REV`` (default ``main``) with ``git show`` and imported from a temporary folder.

    .venv/bin/python bench/plots.py RUN [--repeat 5] [--baseline main]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _module_at(rev: str, path: str, folder: Path) -> ModuleType:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True,
                            text=True).stdout
    file = folder / (path.replace("/", "_"))
    file.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"baseline_{file.stem}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished training run's folder")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default main)")
    args = parser.parse_args()
    from rlmpc.hil.device_panel import plot_device_panel
    from rlmpc.toolkit.rl.outputs import write_plots

    with tempfile.TemporaryDirectory() as tmp:
        work, old_dir = Path(tmp) / "run", Path(tmp) / "old"
        old_dir.mkdir()
        shutil.copytree(args.run, work, ignore=shutil.ignore_patterns("*.png", "device", "checkpoint*"))
        old_out = _module_at(args.baseline, "toolkit/rl/outputs.py", old_dir)
        rows = [("learning_curves + evaluation", _median_time(lambda: write_plots(work), args.repeat),
                 _median_time(lambda: old_out.write_plots(work), args.repeat))]
        if (work / "device_steps.npz").is_file():
            old_dev = _module_at(args.baseline, "hil/device_training.py", old_dir)
            with np.load(work / "device_steps.npz") as data:
                d = {k: data[k] for k in data}
            summary = json.loads((work / "device.json").read_text(encoding="utf-8"))
            record = old_dev.DeviceRecord(distance=list(d["distance"]), cost=list(d["cost"]))
            starts = [int(v) for v in d.get("episode_start", [])]
            rows.append(("device_panel", _median_time(lambda: plot_device_panel(
                work / "device_panel.png", d["distance"], d["cost"], summary, starts), args.repeat),
                _median_time(lambda: old_dev.plot_device_panel(work / "device_panel.png", record, summary),
                             args.repeat)))
    print(f"{args.run} (median of {args.repeat}; baseline {args.baseline})")
    print(f"{'plot':32s} {'this [s]':>9s} {'baseline [s]':>13s} {'ratio':>6s}")
    for name, new, old in rows:
        print(f"{name:32s} {new:9.3f} {old:13.3f} {new / old:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
