"""Mistakes a user makes on the command line end in one line naming what was wrong (exit 2),
before anything is built or started; nothing is left half-written."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from rlmpc.cli import main
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.codegen.program_check import EM_AARCH64, EM_ARM, EM_X86_64, check_program
from rlmpc.hil.verdict import Thresholds
from rlmpc.toolkit.registry import make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document


def elf(path: Path, machine: int, load_address: int, wide: bool = False) -> Path:
    """A minimal ELF file: header and one PT_LOAD program header."""
    if wide:
        header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, 64,
                                                                  0, 0, 64, 56, 1, 0, 0, 0)
        phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, load_address, load_address, 16, 16, 4)
    else:
        header = b"\x7fELF\x01\x01\x01" + bytes(9) + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0, 52,
                                                                  0, 0, 52, 32, 1, 0, 0, 0)
        phdr = struct.pack("<IIIIIIII", 1, 0, load_address, load_address, 16, 16, 5, 4)
    path.write_bytes(header + phdr + bytes(16))
    return path


def test_a_program_for_another_board_is_refused(tmp_path: Path) -> None:
    stm32 = elf(tmp_path / "stm32.elf", EM_ARM, 0x08000000)
    mps2 = elf(tmp_path / "mps2.elf", EM_ARM, 0x00000000)
    assert check_program(stm32, "stm32f405") == stm32 and check_program(mps2, "mps2-an386") == mps2
    with pytest.raises(ValueError, match=r"at 0x08000000, not for mps2-an386's \(0x00000000\)"):
        check_program(stm32, "mps2-an386")
    with pytest.raises(ValueError, match=r"a program for 32-bit ARM .*, not for linux-aarch64"):
        check_program(mps2, "linux-aarch64")
    aarch64 = elf(tmp_path / "a64", EM_AARCH64, 0x400000, wide=True)
    assert check_program(aarch64, "linux-aarch64") == aarch64
    with pytest.raises(ValueError, match="a program for aarch64, not for stm32f405"):
        check_program(aarch64, "stm32f405")
    x86 = elf(tmp_path / "x86", EM_X86_64, 0x400000, wide=True)
    with pytest.raises(ValueError, match="a program for x86-64, not for linux-aarch64"):
        check_program(x86, "linux-aarch64")
    (tmp_path / "theta.json").write_text("{}")
    with pytest.raises(ValueError, match="not a firmware program"):
        check_program(tmp_path / "theta.json", "host")
    with pytest.raises(ValueError, match="no such firmware program"):
        check_program(tmp_path / "missing", "host")


def test_flash_refuses_a_file_that_is_not_a_program(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    theta = tmp_path / "theta.json"
    theta.write_text("{}")
    for board in ("mps2-an386", "host"):
        assert main(["flash", str(theta), "--board", board]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a firmware program (not an ELF file)" in err[0]


def test_thresholds_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.json: no such thresholds file"):
        Thresholds.load(tmp_path / "nope.json")
    bad = tmp_path / "th.json"
    bad.write_text('{"cost_rel_tol": 0.01,\n')
    with pytest.raises(ValueError, match=r"th\.json: not valid JSON"):
        Thresholds.load(bad)
    bad.write_text('{"cost_rel_tol": -1}')
    with pytest.raises(ValueError, match=r"th\.json: thresholds: cost_rel_tol: expected a non-negative"):
        Thresholds.load(bad)
    bad.write_text('{"thresholds": {"allow_fallback": 1}}')
    with pytest.raises(ValueError, match="allow_fallback: expected true or false"):
        Thresholds.load(bad)


@pytest.fixture(scope="module")
def lti_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    fns = make_problem("lti", {}).build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    return export_mcu(root / "theta.json", root / "lti_mcu")


@pytest.mark.parametrize(("extra", "message"), [
    (["--steps", "0"], "--steps: expected an integer from 1 to 1000000"),
    (["--measurement-noise", "0.1", "0.1", "0.1"], "measurement_noise: expected one standard deviation or 2"),
    (["--cost-budget", "-1"], "--cost-budget: expected a non-negative number"),
    (["--thresholds", "/nonexistent/th.json"], "no such thresholds file"),
    (["--program", "/nonexistent/controller"], "no such firmware program"),
])
def test_hil_arguments_are_checked_before_building(lti_bundle: Path, tmp_path: Path, extra: list[str],
                                                   message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hil"
    assert main(["hil", str(lti_bundle), "--target", "host", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (out / "firmware").exists()


def test_train_output_must_be_a_folder_and_ctrl_c_says_how_to_resume(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('steps = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'
                      '[agent]\ntype = "lstd_q"\n')
    (tmp_path / "file").write_text("mine")
    assert main(["train", str(config), "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine"

    from rlmpc.toolkit.rl import training

    def interrupted(self: training.Trainer, resume: bool = False) -> None:
        self.save_checkpoint()
        raise KeyboardInterrupt

    monkeypatch.setattr(training.Trainer, "run", interrupted)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert f"--out {tmp_path / 'run'} --resume` continues from the last checkpoint" in err
    assert "Traceback" not in err


def test_output_folders_of_the_user_are_refused(tmp_path: Path, lti_bundle: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from rlmpc.toolkit.output_folder import MARKER, claim_output_folder, complete_output_folder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    (mine / "summary.md").write_text("my notes")
    for argv in (["hil", str(lti_bundle), "--target", "host", "--out", str(mine)],
                 ["bench-target", str(lti_bundle), "--target", "host", "--out", str(mine)],
                 ["build", str(lti_bundle), "--board", "host", "--out", str(mine)]):
        assert main(argv) == 2, argv
        assert "holds files rlmpc" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["summary.md", "thesis.tex"]
    assert (mine / "summary.md").read_text() == "my notes"
    # a folder holding only names rlmpc writes, without the marker of a completed run, is refused
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "hil.json").write_text("{}")
    with pytest.raises(ValueError, match="no marker of a completed rlmpc hil run"):
        claim_output_folder(earlier, "hil", ["hil.json"])
    assert not (earlier / MARKER).exists()
    complete_output_folder(earlier, "hil")
    (earlier / "notes.txt").write_text("added later")
    assert claim_output_folder(earlier, "hil", ["hil.json"]) == earlier  # marked: the user's names stay


@pytest.mark.parametrize(("extra", "message"), [
    (["--plant", "CartPole"], "--plant: CartPole has states of 4 entries, the bundle's problem 'lti' has 2"),
    (["--baud", "9600"], "--baud: only with --port"),
])
def test_hil_plant_and_link_options_are_checked(lti_bundle: Path, tmp_path: Path, extra: list[str],
                                                message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hil", str(lti_bundle), "--target", "host", "--out", str(tmp_path / "h"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "h").exists()  # refused before the output folder is made


def test_output_folders_belong_to_one_command(tmp_path: Path) -> None:
    from rlmpc.toolkit.output_folder import claim_output_folder, complete_output_folder

    claim_output_folder(tmp_path / "o", "hil", ["hil.json"])
    complete_output_folder(tmp_path / "o", "hil")
    with pytest.raises(ValueError, match="written by rlmpc hil, not train"):
        claim_output_folder(tmp_path / "o", "train", ["theta.json"])


def test_demo_checks_its_folders_before_deleting_anything(tmp_path: Path) -> None:
    from rlmpc.cli import _demo_folders
    from rlmpc.toolkit.output_folder import complete_output_folder

    run = tmp_path / "demo" / "lti_qlearning"
    run.mkdir(parents=True)
    complete_output_folder(tmp_path / "demo", "demo")
    complete_output_folder(run, "train")
    (run / "checkpoint.pkl").write_bytes(b"old run")
    (run / "my_notes.txt").write_text("mine")
    unmarked = tmp_path / "demo" / "hil"
    unmarked.mkdir()
    (unmarked / "summary.md").write_text("mine")
    with pytest.raises(ValueError, match=r"hil: output folder: holds files rlmpc hil did not write \(summary\.md\)"):
        _demo_folders(tmp_path / "demo")
    assert (run / "checkpoint.pkl").read_bytes() == b"old run" and (run / "my_notes.txt").is_file()
    (unmarked / "summary.md").unlink()
    assert _demo_folders(tmp_path / "demo") == run
    assert not (run / "checkpoint.pkl").exists()  # an earlier demo's run is forgotten, file by file


def test_more_wrong_inputs_in_one_line(tmp_path: Path, lti_bundle: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text('steps = 10\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'
                      '[agent]\ntype = "lstd_q"\n')
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pkl").write_bytes(b"not a pickle")
    cases = [
        (["train", str(config), "--out", str(run), "--resume", "--quiet"], "not a readable checkpoint"),
        (["build", str(lti_bundle), "--board", "host", "--sqp-iterations", "2", "--out", str(tmp_path / "b")],
         "sqp_iterations: only for a real-time iteration"),
        (["flash", str(lti_bundle), "--board", "host", "--probe-serial", "123"],
         "--probe-serial: only with --probe"),
        (["hil", str(lti_bundle), "--target", "host", "--plant-params", '{"a": "heavy"}', "--out",
          str(tmp_path / "h")], "--plant-params: plant LtiGrosZanon"),
        (["hil", str(lti_bundle), "--target", "host", "--seed", "-1", "--out", str(tmp_path / "h")],
         "--seed: expected >= 0"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
