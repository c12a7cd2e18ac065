"""Issue #18, item 3: a folder is rlmpc's only if it carries the marker of a *completed* run of the
same command; anything else that would be overwritten is refused before anything (the marker
included) is written.  One case per command with ``--out``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlmpc.cli import main
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.toolkit.output_folder import (
    MARKER,
    check_output_folder,
    claim_output_folder,
    complete_output_folder,
    read_marker,
)
from rlmpc.toolkit.registry import make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    fns = make_problem("lti", {}).build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default(),
                                                   plant={"name": "LtiGrosZanon"}))
    return {"theta": root / "theta.json", "bundle": export_mcu(root / "theta.json", root / "bundle")}


# (command line with OUT, a name the command writes there)
COMMANDS: list[tuple[str, Callable[[dict[str, Path], Path], list[str]], str]] = [
    ("hil", lambda i, out: ["hil", str(i["bundle"]), "--target", "host", "--out", str(out)], "summary.md"),
    ("bench-target", lambda i, out: ["bench-target", str(i["bundle"]), "--target", "host", "--out", str(out)],
     "bench_target.json"),
    ("build", lambda i, out: ["build", str(i["bundle"]), "--board", "host", "--out", str(out)], "controller"),
    ("train", lambda i, out: ["train", str(EXAMPLES / "lti_qlearning.toml"), "--out", str(out), "--quiet"],
     "theta.json"),
    ("sweep", lambda i, out: ["sweep", str(EXAMPLES / "lti_qlearning.toml"), str(EXAMPLES / "lti_sweep.toml"),
                              "--out", str(out)], "sweep_results.md"),
    ("evaluate", lambda i, out: ["evaluate", str(i["theta"]), "--episodes", "1", "--steps", "1", "--out", str(out)],
     "evaluation.md"),
    ("demo", lambda i, out: ["demo", "--out", str(out)], "cartpole_closed_loop.png"),
    ("export", lambda i, out: ["export", "--theta", str(i["theta"]), "--target", "cortex-m4", "--out", str(out)],
     "manifest.json"),
]


@pytest.mark.parametrize(("command", "argv", "name"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_users_file_is_never_overwritten(inputs: dict[str, Path], tmp_path: Path, command: str,
                                           argv: Callable[[dict[str, Path], Path], list[str]], name: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / name).write_text("the user's own file")
    assert main(argv(inputs, mine)) == 2, command
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(mine) in err[0], err
    assert (mine / name).read_text() == "the user's own file"
    assert sorted(p.name for p in mine.iterdir()) == [name]  # no marker, nothing else


@pytest.mark.parametrize("command", ["hil", "bench-target", "build"])
def test_another_commands_or_an_unfinished_folder_is_refused(inputs: dict[str, Path], tmp_path: Path,
                                                            command: str) -> None:
    argv = dict((c, a) for c, a, _ in COMMANDS)[command]
    other = tmp_path / "other"
    claim_output_folder(other, "train")
    complete_output_folder(other, "train")
    assert main(argv(inputs, other)) == 2
    assert read_marker(other) == ("train", "complete")
    unfinished = tmp_path / "unfinished"
    claim_output_folder(unfinished, command)  # a run that crashed: "running"
    (unfinished / "x").write_text("partial")
    assert main(argv(inputs, unfinished)) == 2
    assert (unfinished / "x").read_text() == "partial"


def test_the_marker_says_complete_only_after_the_run() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o"
        check_output_folder(out, "hil")
        assert not out.exists()  # a check writes nothing
        claim_output_folder(out, "hil")
        assert read_marker(out) == ("hil", "running")
        assert claim_output_folder(out, "hil") == out  # nothing written yet: reusable
        (out / "hil.json").write_text("{}")  # a run that crashed after writing
        with pytest.raises(ValueError, match="an unfinished rlmpc hil run"):
            claim_output_folder(out, "hil")
        assert claim_output_folder(out, "hil", resume=True) == out  # rlmpc train --resume
        complete_output_folder(out, "hil")
        (out / "summary.md").write_text("an earlier report")
        assert claim_output_folder(out, "hil") == out  # a completed run's folder is reused
        with pytest.raises(ValueError, match="written by rlmpc hil, not train"):
            claim_output_folder(out, "train")
        (out / MARKER).write_text("an output folder of rlmpc hil\n")  # an earlier version's marker
        assert read_marker(out) == ("hil", "complete")
        empty = Path(d) / "empty"
        empty.mkdir()
        assert claim_output_folder(empty, "hil") == empty
