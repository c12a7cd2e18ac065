"""Exported C bundles (acados targets): bit-exact on x86-64, ≤ 1e-9 on aarch64 under qemu,
refusals before anything is written, byte-identical re-exports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlmpc.codegen.bundle import export_bundle
from rlmpc.codegen.manifest import read_manifest, theta_hash
from rlmpc.codegen.run_bundle import run_bundle
from rlmpc.toolkit.acados_runtime import acados_paths
from rlmpc.toolkit.problem import ParametricMPC
from rlmpc.toolkit.problems import cartpole_mpc, lti_mpc
from rlmpc.toolkit.theta_file import save_theta, theta_document

MAKERS: dict[str, Callable[[], ParametricMPC]] = {"lti": lti_mpc, "cartpole": cartpole_mpc}


def learned(name: str) -> np.ndarray:
    fns = MAKERS[name]().build()
    return fns.theta.default() + 0.01 if name == "lti" else fns.theta.default() * 1.05


def write_theta(path: Path, name: str, **changes: object) -> Path:
    fns = MAKERS[name]().build()
    doc = theta_document(name, {}, fns, learned(name))
    doc.update(changes)
    save_theta(path, doc)
    return path


@pytest.fixture(scope="module")
def theta_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("theta")
    return {name: write_theta(root / f"{name}.json", name) for name in MAKERS}


@pytest.fixture(scope="module")
def lti_bundle(theta_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(theta_files["lti"], "linux-x86_64", tmp_path_factory.mktemp("out") / "lti")


def test_manifest_describes_the_bundle(lti_bundle: Path) -> None:
    manifest = read_manifest(lti_bundle)  # also checks every file's sha256
    fns = lti_mpc().build()
    assert manifest["target"] == "linux-x86_64" and manifest["precision"] == "float64"
    assert manifest["problem"] == {"name": "lti", "params": {}, "hash": fns.problem_hash}
    assert manifest["theta"]["hash"] == theta_hash(learned("lti"))
    assert manifest["theta"]["flat"] == learned("lti").tolist()
    assert manifest["dims"] == {"nx": 2, "nu": 1, "np": 0, "N": 10, "ntheta": fns.ntheta,
                                 "np_stage": fns.ntheta + 1}  # stage parameters [θ; p; γ^k]: θ set at run time
    assert manifest["solver"]["nlp_solver_resolved"] == "SQP_RTI"
    paths = {f["path"] for f in manifest["files"]}
    assert {"Makefile", "src/rlmpc_controller.c", "src/rlmpc_test_main.c", "test_vectors.json",
            "solver/acados_solver_lti.c"} <= paths
    vectors = json.loads((lti_bundle / "test_vectors.json").read_text())["vectors"]
    assert len(vectors) >= 20 and {v["source"] for v in vectors} == {"closed_loop", "random"}


@pytest.mark.parametrize("name", ["lti", "cartpole"])
def test_x86_64_bundle_matches_the_mpc_bit_for_bit(name: str, theta_files: dict[str, Path],
                                                   lti_bundle: Path, tmp_path: Path) -> None:
    bundle = lti_bundle if name == "lti" else export_bundle(theta_files[name], "linux-x86_64",
                                                            tmp_path / name)
    report = run_bundle(bundle, tmp_path / "build")
    assert report.passed, report.summary()
    assert report.vectors >= 20
    assert report.max_abs_du0 == 0.0 and report.max_abs_dprediction == 0.0
    assert report.iteration_mismatches == 0


def test_aarch64_bundle_under_qemu(theta_files: dict[str, Path], tmp_path: Path) -> None:
    bundle = export_bundle(theta_files["cartpole"], "linux-aarch64", tmp_path / "cartpole")
    report = run_bundle(bundle)
    assert report.passed, report.summary()
    assert report.max_abs_du0 <= 1e-9 and report.vectors >= 20
    elf = report.executable.read_bytes()[:20]
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64


@pytest.mark.parametrize(("target", "changes", "message"), [
    ("linux-riscv", {}, r"target: expected one of \['linux-x86_64', 'linux-aarch64'\]"),
    ("linux-x86_64", {"problem_hash": "0" * 64}, "problem_hash: θ was learned for a different version"),
    ("linux-x86_64", {"values": {"x_lb": [5.0, 0.0]}}, r"values: theta 'x_lb\[0\]' = 5 is outside"),
])
def test_refusals_write_nothing(target: str, changes: dict[str, object], message: str,
                                tmp_path: Path) -> None:
    theta = write_theta(tmp_path / "theta.json", "lti", **changes)
    out = tmp_path / "out" / "bundle"
    with pytest.raises(ValueError, match=message):
        export_bundle(theta, target, out)
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_that_is_not_a_bundle(theta_files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and not a bundle"):
        export_bundle(theta_files["lti"], "linux-x86_64", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_export_is_reproducible(theta_files: dict[str, Path], lti_bundle: Path, tmp_path: Path) -> None:
    again = export_bundle(theta_files["lti"], "linux-x86_64", tmp_path / "elsewhere" / "lti")
    assert (again / "manifest.json").read_bytes() == (lti_bundle / "manifest.json").read_bytes()
    manifest = read_manifest(again)
    for entry in manifest["files"]:
        text = (again / entry["path"]).read_bytes()
        assert text == (lti_bundle / entry["path"]).read_bytes(), entry["path"]
        for path in (str(tmp_path), str(lti_bundle.parent), str(acados_paths().package)):
            assert path.encode() not in text, f"{entry['path']} embeds {path}"
