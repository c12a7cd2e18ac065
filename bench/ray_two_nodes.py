"""A sweep on a two-node Ray cluster on this one machine: a head and a worker started with
``ray start`` with different resources (head: 1 CPU + ``head_node``; worker: 1 CPU + ``second_node``),
``rlmpc sweep --address 127.0.0.1:PORT``, and which node ran each trial (from ``trial.json``).

    .venv/bin/python bench/ray_two_nodes.py [--trials 8]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PORT = 6397

CONFIG = (ROOT / "examples" / "lti_qlearning.toml").read_text().replace("steps = 5000", "steps = 1000")


def ray_cli(*args: str) -> None:
    subprocess.run([str(BIN / "ray"), *args], check=True, capture_output=True, text=True,
                   env={**os.environ, "RAY_AUTH_MODE": "disabled"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlmpc-two-nodes-") as tmp:
        work = Path(tmp)
        (work / "lti.toml").write_text(CONFIG)
        (work / "sweep.toml").write_text(f"[space]\nseed = {{ grid = {list(range(1, args.trials + 1))} }}\n")
        ray_cli("start", "--head", "--port", str(PORT), "--num-cpus", "1", "--resources", '{"head_node": 1}',
                "--include-dashboard", "false")
        try:
            ray_cli("start", "--address", f"127.0.0.1:{PORT}", "--num-cpus", "1",
                    "--resources", '{"second_node": 1}')
            proc = subprocess.run([str(BIN / "rlmpc"), "sweep", "lti.toml", "sweep.toml", "--out", "out",
                                   "--address", f"127.0.0.1:{PORT}"], cwd=work, text=True, capture_output=True,
                                  env={**os.environ, "RAY_AUTH_MODE": "disabled"})
            print(proc.stdout.strip().splitlines()[-2])
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:])
                return 1
            per_node: dict[str, list[str]] = collections.defaultdict(list)
            for f in sorted((work / "out" / "trials").glob("*/trial.json")):
                doc = json.loads(f.read_text())
                kind = ",".join(k for k in doc["ran_on"]["node_resources"] if k.endswith("_node")) or "?"
                per_node[f"{doc['ran_on']['node_id'][:12]} ({kind})"].append(doc["name"])
            for node, names in per_node.items():
                print(f"node {node}: {len(names)} trials: {', '.join(names)}")
            return 0 if len(per_node) == 2 else 1
        finally:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
