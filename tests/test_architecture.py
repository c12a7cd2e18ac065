"""The package's shape: one top-level name, layers that depend downward only, no stray writes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"toolkit": 0, "codegen": 1, "hil": 2}  # hil -> codegen -> toolkit; rlmpc.cli above all


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py") if "third_party" not in p.parts)


@pytest.mark.parametrize("folder", ["toolkit", "codegen", "hil", "rlmpc", "tests", "bench", "examples"])
def test_every_import_goes_through_the_rlmpc_namespace(folder: str) -> None:
    bare = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in _sources(folder) for line, name in _imports(p)
            if name.split(".")[0] in LAYERS]
    assert not bare, "imports outside the rlmpc namespace:\n" + "\n".join(bare)


def test_layers_depend_downward_only() -> None:
    upward = []
    for layer, rank in LAYERS.items():
        for path in _sources(layer):
            for line, name in _imports(path):
                parts = name.split(".")
                if parts[0] == "rlmpc" and len(parts) == 1:
                    upward.append(f"{path.relative_to(ROOT)}:{line}: imports rlmpc (the top) from {layer}")
                elif parts[0] == "rlmpc" and parts[1] == "cli":
                    upward.append(f"{path.relative_to(ROOT)}:{line}: imports the CLI from {layer}")
                elif parts[0] == "rlmpc" and LAYERS.get(parts[1], -1) > rank:
                    upward.append(f"{path.relative_to(ROOT)}:{line}: {layer} imports {name}")
    assert not upward, "\n".join(upward)


def test_the_package_links_to_the_design_card_folders() -> None:
    for name in ("toolkit", "codegen", "hil", "firmware_templates", "examples"):
        link = ROOT / "rlmpc" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve(), name


def test_no_peer_benchmark_in_the_product_package() -> None:
    product = [p.name for p in _sources("toolkit", "codegen", "hil")]
    assert not {"osqp_bench.py", "osqp_worker.py", "osqp_peer.py", "_osqp_worker.py"} & set(product)
