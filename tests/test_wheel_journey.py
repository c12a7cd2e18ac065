"""The package as a user gets it (issue #13): the wheel and sdist are built, the wheel is installed
into a new virtual environment outside the checkout, and the README's journey runs from an unrelated
folder with the package index unreachable: doctor, train, export (cortex-m4, linux-aarch64), build,
HIL on the emulated mps2-an386 (PASS) and the pytest plugin from a test folder of its own.  Nothing
is written into site-packages or the current folder but the commands' own ``--out``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lti_configs import lti_qlearning_config

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, every request fails at once

pytestmark = pytest.mark.slow  # (qemu-system-arm and the toolchains come with the set-up: no skip)

CONFIG = lti_qlearning_config(seed=7, steps=5000, checkpoint_every=1000, speed_mode=False)

PLUGIN_TEST = '''
def test_the_device_follows_the_workstation(dut, hil_run):
    info = dut.info()
    assert info.board_name == "mps2-an386" and info.nx == 2
    result = hil_run(steps=30, seed=3)
    assert result.passed, result.verdict.reasons
'''


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from it (``python -m build``: sdist first, wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"wheel": next(out.glob("rlmpc-*.whl")), "sdist": next(out.glob("rlmpc-*.tar.gz"))}


def test_the_wheel_holds_one_top_level_name_and_everything_a_command_needs(dist: dict[str, Path]) -> None:
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"rlmpc"}, tops
    must = ["rlmpc/firmware_templates/app/controller.c", "rlmpc/firmware_templates/boards/mps2-an386/link.ld",
            "rlmpc/firmware_templates/protocol/rlmpc_protocol.c", "rlmpc/codegen/mcu/c/rlmpc_solver.c.in",
            "rlmpc/toolkit/native/rlmpc_glue.c", "rlmpc/examples/lti_qlearning.toml",
            "rlmpc/codegen/third_party/daqp/0.11.0/LICENSE", "rlmpc/codegen/third_party/daqp/0.11.0/src/daqp.c",
            "rlmpc/codegen/third_party/acados-aarch64/lib/libacados.so",
            "rlmpc/codegen/third_party/acados-aarch64/NOTICE"]
    assert not [m for m in must if m not in names]
    entry = zipfile.ZipFile(dist["wheel"]).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "rlmpc = rlmpc.cli:main" in entry and "rlmpc.hil.pytest_plugin" in entry


def _site_packages(env_dir: Path) -> Path:
    return next(env_dir.glob("lib/python3*/site-packages"))


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment (outside the checkout) with the wheel, installed as a user would:
    acados first, then CasADi, then the wheel (its dependencies are then satisfied)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True, clear=True)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "-q"]
    for args in (["install", "comma-deps-acados>=0.2.2,<0.2.3"],
                 ["install", "--force-reinstall", "--no-deps", "casadi==3.8.2"],
                 ["install", f"{dist['wheel']}[test]"]):
        proc = subprocess.run([*pip, *args], capture_output=True, text=True, check=False, cwd=env_dir)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    yield env_dir


def _offline_env(cache: Path) -> dict[str, str]:
    """No package index, no proxy that works, no path into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update({"PIP_NO_INDEX": "1", "PIP_INDEX_URL": f"{UNREACHABLE}/simple", "PIP_FIND_LINKS": "",
                "http_proxy": UNREACHABLE, "https_proxy": UNREACHABLE, "HTTP_PROXY": UNREACHABLE,
                "HTTPS_PROXY": UNREACHABLE, "no_proxy": "", "NO_PROXY": "", "RLMPC_CACHE_DIR": str(cache),
                "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def test_the_journey_from_an_installed_wheel_offline(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "somewhere_else"
    work.mkdir()
    env = _offline_env(tmp_path / "cache")
    rlmpc = str(installed / "bin" / "rlmpc")
    site = _site_packages(installed)
    before = _files(site)

    def run(*args: str, cwd: Path = work, timeout: float = 600) -> str:
        proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                              check=False, timeout=timeout)
        assert proc.returncode == 0, f"{' '.join(args)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n" \
                                     f"{proc.stderr[-3000:]}"
        return proc.stdout

    assert "[FAIL]" not in run(rlmpc, "doctor")
    (work / "lti.toml").write_text(CONFIG)
    run(rlmpc, "train", "lti.toml", "--out", "run", "--quiet")
    assert (work / "run" / "theta.json").is_file()
    out = run(rlmpc, "export", "--theta", "run/theta.json", "--target", "cortex-m4", "--out", "mcu", "--check")
    assert "PASS" in out
    run(rlmpc, "export", "--theta", "run/theta.json", "--target", "linux-aarch64", "--out", "a64", "--check")
    run(rlmpc, "build", "mcu", "--board", "mps2-an386", "--out", "fw")
    run(rlmpc, "hil", "mcu", "--target", "mps2-an386", "--program", "fw/controller.elf", "--steps", "60",
        "--out", "hil")
    assert json.loads((work / "hil" / "hil.json").read_text())["verdict"] == "PASS"

    tests = work / "device_tests"
    tests.mkdir()
    (tests / "test_device.py").write_text(textwrap.dedent(PLUGIN_TEST))
    run(str(installed / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hil-target",
        "mps2-an386", "--hil-bundle", str(work / "mcu"), str(tests), cwd=tests)

    assert {p.name for p in work.iterdir()} == {"lti.toml", "run", "mcu", "a64", "fw", "hil", "device_tests"}
    assert _files(site) == before, "a command wrote into site-packages"
    assert (tmp_path / "cache" / "acados").is_dir()  # the solver cache went where RLMPC_CACHE_DIR says
