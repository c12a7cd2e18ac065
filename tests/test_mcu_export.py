"""``rlmpc export --target cortex-m4``: the footprint in the manifest, and a problem too large for
the target's RAM refused in one line before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmpc.cli import main
from rlmpc.codegen.mcu_export import DEFAULT_RAM_LIMIT, export_mcu
from rlmpc.toolkit.registry import make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document


def _theta(path: Path, **params: int) -> Path:
    fns = make_problem("lti", dict(params)).build()
    save_theta(path, theta_document("lti", dict(params), fns, fns.theta.default()))
    return path


def test_manifest_reports_the_cortex_m4_footprint(tmp_path: Path) -> None:
    out = export_mcu(_theta(tmp_path / "t.json"), tmp_path / "b")
    fp = json.loads((out / "manifest.json").read_text())["footprint"]
    assert fp["flash"] == fp["text"] + fp["data"] and fp["ram"] == fp["data"] + fp["bss"]
    assert 4_000 < fp["flash"] < 32 * 1024 and 0 < fp["ram"] < 16 * 1024
    assert "-mcpu=cortex-m4" in fp["toolchain"] and "-mfloat-abi=hard" in fp["toolchain"]


def test_too_large_for_the_ram_is_refused_before_writing(tmp_path: Path) -> None:
    theta = _theta(tmp_path / "big.json", horizon=120)
    with pytest.raises(ValueError, match=r"^problem 'lti' \(N=120, nx=2, nu=1\): the solver needs "
                                         r"\d+\.\d KB of static RAM on a Cortex-M4F, more than the "
                                         r"target's 112\.0 KB \(--ram-limit\)"):
        export_mcu(theta, tmp_path / "out", qp="dense")  # (auto: the structured path fits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.json"]  # no bundle, no staging left
    assert DEFAULT_RAM_LIMIT == 112 * 1024


def test_cli_ram_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    theta = _theta(tmp_path / "t.json")
    code = main(["export", "--theta", str(theta), "--target", "cortex-m4", "--out", str(tmp_path / "b"),
                 "--ram-limit", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "more than the target's 1.0 KB (--ram-limit)" in err[0]
    assert not (tmp_path / "b").exists()
    assert main(["export", "--theta", str(theta), "--target", "cortex-m4", "--out", str(tmp_path / "b")]) == 0
    assert "Cortex-M4F footprint of the solver: text" in capsys.readouterr().out


def test_exports_are_byte_identical(tmp_path: Path) -> None:
    theta = _theta(tmp_path / "t.json")
    a, b = export_mcu(theta, tmp_path / "a"), export_mcu(theta, tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert Path("test_vectors.json") in files and Path("manifest.json") in files
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_rti_warm_start_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lti = _theta(tmp_path / "lti.json")
    args = ["export", "--theta", str(lti), "--out", str(tmp_path / "x"), "--rti-warm-start", "plan"]
    assert main([*args, "--target", "cortex-m4"]) == 2
    assert "problem 'lti' is linear (a condensed QP, no real-time iteration)" in capsys.readouterr().err
    assert main([*args, "--target", "linux-x86_64"]) == 2
    assert "only for the bare-metal solver (--target cortex-m4)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    fns = make_problem("cartpole", {}).build()
    cp = tmp_path / "cp.json"
    save_theta(cp, theta_document("cartpole", {}, fns, fns.theta.default()))
    shift_line = "#define GUESS_SHIFT "
    for warm, shift in (("plan", "0"), ("shifted", "1")):
        out = export_mcu(cp, tmp_path / warm, rti_warm_start=warm)
        assert f"{shift_line}{shift}\n" in (out / "rlmpc_rti.c").read_text()
        kind = json.loads((out / "manifest.json").read_text())["solver"]["kind"]
        assert ("like acados SQP_RTI" in kind) == (warm == "plan")


def test_cli_options_for_the_wrong_target_are_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    lti = _theta(tmp_path / "lti.json")
    args = ["export", "--theta", str(lti), "--out", str(tmp_path / "x")]
    for extra, message in (
            (["--target", "linux-x86_64", "--precision", "float32"], "--precision: only for"),
            (["--target", "linux-x86_64", "--ram-limit", "64"], "--ram-limit: only for"),
            (["--target", "cortex-m4", "--ram-limit", "-5"], "--ram-limit: expected a positive")):
        assert main([*args, *extra]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: every target named
        main([*args, "--target", "cortex-m7"])
    assert exit_info.value.code == 2
    assert "'linux-x86_64', 'linux-aarch64', 'cortex-m4'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_check_exit_code_follows_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import rlmpc.codegen.mcu_export

    class Report:
        def __init__(self, problems: list[str]) -> None:
            self._problems = problems

        def lines(self) -> list[str]:
            return ["FAIL: " + "; ".join(self._problems)] if self._problems else ["PASS"]

        def problems(self) -> list[str]:
            return self._problems

    lti = _theta(tmp_path / "lti.json")
    for problems, code in (([], 0), (["float32: 3 steps failed"], 1)):
        monkeypatch.setattr(rlmpc.codegen.mcu_export, "check_mcu", lambda *a, p=problems, **k: Report(p))
        out = tmp_path / f"b{code}"
        args = ["export", "--theta", str(lti), "--target", "cortex-m4", "--out", str(out), "--check"]
        assert main(args) == code
        verdict = "PASS" if code == 0 else "FAIL: float32: 3 steps failed"
        assert capsys.readouterr().out.rstrip().endswith(verdict)
