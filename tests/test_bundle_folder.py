"""Where a bundle may be written: nothing the user saved is replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmpc.codegen.bundle_folder import check_destination, staged_bundle
from rlmpc.codegen.manifest import write_manifest


def earlier_bundle(root: Path) -> Path:
    """A folder as an export leaves it: sources and a manifest listing them."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "solver.c").write_text("int x;\n")
    (root / "Makefile").write_text("all:\n")
    write_manifest(root, {"target": "cortex-m4"})
    return root


def test_new_empty_and_unchanged_bundle_folders_are_accepted(tmp_path: Path) -> None:
    check_destination(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_destination(tmp_path / "empty")
    bundle = earlier_bundle(tmp_path / "bundle")
    (bundle / "build" / "obj").mkdir(parents=True)  # its own build output is replaced with it
    (bundle / "build" / "obj" / "solver.o").write_bytes(b"\0")
    check_destination(bundle)


@pytest.mark.parametrize(("change", "named"), [
    (lambda b: (b / "NOTES.md").write_text("mine"), "NOTES.md"),
    (lambda b: (b / "src" / "solver.c").write_text("int y;\n"), "src/solver.c"),
    (lambda b: (b / "mytests").mkdir(), "mytests/"),
    (lambda b: ((b / "mytests").mkdir(), (b / "mytests" / "t.py").write_text("")), "mytests/"),
])
def test_an_earlier_bundle_with_user_changes_is_refused(tmp_path: Path, change: object,
                                                        named: str) -> None:
    bundle = earlier_bundle(tmp_path / "bundle")
    change(bundle)  # type: ignore[operator]
    before = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*"))
    with pytest.raises(ValueError, match=f"replacing it would lose {named}(,| \\()"):
        check_destination(bundle)
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")) == before


def test_a_foreign_manifest_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "my-web-app"}))
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match=r"manifest\.json: not the manifest of an rlmpc bundle"):
        check_destination(tmp_path)
    (tmp_path / "manifest.json").write_text("{ not json")
    with pytest.raises(ValueError, match="not the manifest of an rlmpc bundle"):
        check_destination(tmp_path)


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        check_destination(tmp_path / "out")


def test_a_failed_export_leaves_the_earlier_bundle(tmp_path: Path) -> None:
    bundle = earlier_bundle(tmp_path / "bundle")
    with pytest.raises(RuntimeError, match="generation failed"), staged_bundle(bundle) as staging:
        (staging / "half.c").write_text("")
        raise RuntimeError("generation failed")
    assert (bundle / "src" / "solver.c").read_text() == "int x;\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
