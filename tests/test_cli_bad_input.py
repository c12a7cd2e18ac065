"""Issue #18, item 4: bad input to any command ends in one line naming the field or file and what
was expected (exit 2), before anything is built, started or written; never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from rlmpc.cli import main
from rlmpc.codegen.mcu_export import export_mcu
from rlmpc.toolkit.registry import make_problem
from rlmpc.toolkit.theta_file import save_theta, theta_document

Paths = dict[str, Path]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    root = tmp_path_factory.mktemp("bad_input")
    fns = make_problem("lti", {}).build()
    save_theta(root / "theta.json", theta_document("lti", {}, fns, fns.theta.default()))
    bundle = export_mcu(root / "theta.json", root / "bundle")
    edited = root / "edited_source"
    shutil.copytree(bundle, edited)
    with (edited / "rlmpc_solver.c").open("a") as f:
        f.write("/* a local change */\n")
    edited_theta = root / "edited_theta"
    shutil.copytree(bundle, edited_theta)
    doc = json.loads((edited_theta / "manifest.json").read_text())
    doc["theta"]["flat"][0] += 0.5
    (edited_theta / "manifest.json").write_text(json.dumps(doc))
    ghost = root / "ghost_plant.json"
    save_theta(ghost, theta_document("lti", {}, fns, fns.theta.default(), plant={"name": "NoSuchPlant"}))
    (root / "garbage.toml").write_bytes(b"\xff\xfe\x00garbage")
    (root / "abc.toml").write_text('steps = "abc"\n[env]\nname = "LtiGrosZanon"\n[mpc]\nproblem = "lti"\n'
                                   '[agent]\ntype = "lstd_q"\n')
    (root / "a_file").write_text("not a folder")
    (root / "thresholds.json").write_text('{"cost_rel_tol": "tight"}')
    return {"root": root, "bundle": bundle, "theta": root / "theta.json", "edited_source": edited,
            "edited_theta": edited_theta, "ghost": ghost}


def hil(*extra: str) -> Callable[[Paths], list[str]]:
    return lambda f: ["hil", str(f["bundle"]), "--target", "host", "--out", str(f["root"] / "h"), *extra]


def bench(*extra: str) -> Callable[[Paths], list[str]]:
    return lambda f: ["bench-target", str(f["bundle"]), "--target", "host", "--out", str(f["root"] / "bt"), *extra]


def build(*extra: str, bundle: str = "bundle") -> Callable[[Paths], list[str]]:
    return lambda f: ["build", str(f[bundle]) if bundle in f else str(f["root"] / bundle), "--board", "host",
                      "--out", str(f["root"] / "b"), *extra]


EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples") + "/"
CASES: list[tuple[str, Callable[[Paths], list[str]], str]] = [
    # rlmpc hil
    ("hil-steps-huge", hil("--steps", "100000000000"), "--steps: expected an integer from 1 to 1000000"),
    ("hil-steps-zero", hil("--steps", "0"), "--steps: expected an integer from 1"),
    ("hil-steps-text", hil("--steps", "many"), "--steps: invalid int value: 'many'"),
    ("hil-seed-negative", hil("--seed", "-1"), "--seed: expected >= 0"),
    ("hil-faults-rate", hil("--faults", "drop=2"), "--faults: drop_rate: expected a probability in [0, 1]"),
    ("hil-faults-key", hil("--faults", "bogus=1"), "--faults: 'bogus=1': expected KEY=VALUE"),
    ("hil-faults-no-value", hil("--faults", "drop"), "--faults: 'drop': expected KEY=VALUE"),
    ("hil-faults-reset-zero", hil("--faults", "reset=0"), "--faults: reset: expected step counts >= 1"),
    ("hil-faults-direction", hil("--faults", "dir=up"), "--faults: dir: expected tx, rx or both"),
    ("hil-faults-reset-port", lambda f: ["hil", str(f["bundle"]), "--port", "socket://127.0.0.1:9",
                                         "--faults", "reset=5", "--out", str(f["root"] / "h")],
     "--faults: reset=…: only with --target"),
    ("hil-max-silence", hil("--max-silence", "0"), "--max-silence: expected a positive number of seconds"),
    ("hil-max-lost", hil("--max-lost", "0"), "--max-lost: expected an integer >= 1"),
    ("hil-port-bad-url", lambda f: ["hil", str(f["bundle"]), "--port", "socket://nohost.invalid:99999",
                                    "--out", str(f["root"] / "h")], "--port: 'socket://nohost.invalid:99999': "
     "expected socket://HOST:PORT with PORT from 1 to 65535"),
    ("hil-port-and-target", lambda f: ["hil", str(f["bundle"]), "--port", "socket://127.0.0.1:9",
                                       "--target", "host"], "not allowed with argument"),
    ("hil-program-with-port", lambda f: ["hil", str(f["bundle"]), "--port", "socket://127.0.0.1:9",
                                         "--program", "x.elf", "--out", str(f["root"] / "h")],
     "--program: only with --target"),
    ("hil-baud-with-target", hil("--baud", "9600"), "--baud: only with --port"),
    ("hil-target-unknown", lambda f: ["hil", str(f["bundle"]), "--target", "esp32"],
     "--target/--board: invalid choice"),
    ("hil-thresholds-missing", hil("--thresholds", "/nonexistent/th.json"), "th.json: no such thresholds file"),
    ("hil-thresholds-bad", lambda f: hil("--thresholds", str(f["root"] / "thresholds.json"))(f),
     "thresholds: cost_rel_tol: expected a non-negative number"),
    ("hil-plant-params-json", hil("--plant-params", "{heavy}"), "--plant-params: not valid JSON"),
    ("hil-plant-params-list", hil("--plant-params", "[1]"), "--plant-params: expected a JSON object, got list"),
    ("hil-plant-unknown-param", hil("--plant-params", '{"a": 1}'), "--plant-params: plant LtiGrosZanon"),
    ("hil-noise-size", hil("--measurement-noise", "1", "2", "3"), "measurement_noise"),
    ("hil-cost-budget", hil("--cost-budget", "-1"), "--cost-budget: expected a non-negative number"),
    ("hil-no-bundle", lambda f: ["hil", str(f["root"] / "nope"), "--target", "host"], "manifest.json: not a readable"),
    ("hil-edited-source", lambda f: ["hil", str(f["edited_source"]), "--target", "host", "--out",
                                     str(f["root"] / "h")], "rlmpc_solver.c was modified"),
    ("hil-edited-theta", lambda f: ["hil", str(f["edited_theta"]), "--target", "host", "--out",
                                    str(f["root"] / "h")], "theta: its values do not give its hash"),
    ("hil-out-is-a-file", lambda f: [*hil()(f)[:-2], "--out", str(f["root"] / "a_file")],
     "a_file: output folder: exists and is not a folder"),
    # rlmpc bench-target
    ("bench-steps-huge", bench("--steps", "100000000000"), "expected at most 1000000 steps in all"),
    ("bench-episodes-zero", bench("--episodes", "0"), "--episodes and --steps: expected >= 1"),
    ("bench-budget-zero", bench("--budget", "0"), "--budget: expected a positive per-step cost"),
    ("bench-seed", bench("--seed", "-2"), "--seed: expected >= 0"),
    ("bench-edited", lambda f: ["bench-target", str(f["edited_source"]), "--target", "host"], "was modified"),
    # rlmpc build
    ("build-budget-zero", build("--budget", "0"), "--budget: expected a positive per-step cost"),
    ("build-budget-negative", build("--budget", "-5"), "--budget: expected a positive per-step cost"),
    ("build-sqp-iterations", build("--sqp-iterations", "0"), "sqp_iterations: expected 1 to 100"),
    ("build-edited-source", build(bundle="edited_source"), "pass --allow-modified to build it as it is"),
    ("build-edited-theta", build(bundle="edited_theta"), "θ was edited in the manifest"),
    ("build-no-bundle", build(bundle="nope"), "manifest.json: not a readable bundle manifest"),
    ("build-board-unknown", lambda f: ["build", str(f["bundle"]), "--board", "esp32"], "--board: invalid choice"),
    ("build-out-is-a-file", lambda f: ["build", str(f["bundle"]), "--board", "host", "--out",
                                       str(f["root"] / "a_file")], "exists and is not a folder"),
    # rlmpc export
    ("export-theta-missing", lambda f: ["export", "--theta", str(f["root"] / "none.json"), "--target",
                                        "cortex-m4", "--out", str(f["root"] / "e")], "none.json"),
    ("export-theta-garbage", lambda f: ["export", "--theta", str(f["root"] / "garbage.toml"), "--target",
                                        "cortex-m4", "--out", str(f["root"] / "e")], "garbage.toml"),
    ("export-ghost-plant", lambda f: ["export", "--theta", str(f["ghost"]), "--target", "cortex-m4",
                                      "--out", str(f["root"] / "e")], "plant: unknown plant 'NoSuchPlant'"),
    ("export-target-unknown", lambda f: ["export", "--theta", str(f["theta"]), "--target", "avr",
                                         "--out", str(f["root"] / "e")], "--target: invalid choice"),
    # rlmpc train
    ("train-garbage-toml", lambda f: ["train", str(f["root"] / "garbage.toml"), "--out", str(f["root"] / "t")],
     "garbage.toml: not a text file (not UTF-8)"),
    ("train-steps-abc-overridden", lambda f: ["train", str(f["root"] / "abc.toml"), "--steps", "5", "--out",
                                              str(f["root"] / "t")], "abc.toml: steps"),
    ("train-config-is-a-folder", lambda f: ["train", str(f["root"]), "--out", str(f["root"] / "t")],
     "cannot read it (Is a directory)"),
    ("train-config-missing", lambda f: ["train", str(f["root"] / "none.toml")], "none.toml: no such file"),
    ("train-faults-no-device", lambda f: ["train", EXAMPLES + "lti_qlearning.toml", "--out", str(f["root"] / "t"),
                                          "--faults", "drop=0.01"], "--faults: only with --device/--port"),
    ("train-faults-rate", lambda f: ["train", EXAMPLES + "lti_qlearning.toml", "--out", str(f["root"] / "t"),
                                     "--device", "host", "--faults", "drop=2"], "--faults: drop_rate: expected"),
    ("train-seed-negative", lambda f: ["train", EXAMPLES + "lti_qlearning.toml", "--out", str(f["root"] / "t"),
                                       "--seed", "-1"], "lti_qlearning.toml: seed: expected a value >= 0, got -1"),
    ("train-budget-not-bayes", lambda f: ["train", EXAMPLES + "lti_qlearning.toml", "--out", str(f["root"] / "t"),
                                          "--device", "host", "--budget", "5000"], "--budget: only with agent.type"),
    ("train-budget-no-device", lambda f: ["train", EXAMPLES + "lti_bayes.toml", "--out", str(f["root"] / "t"),
                                          "--budget", "5000"], "--budget: the worst cost per step is measured"),
    ("train-budget-negative", lambda f: ["train", EXAMPLES + "lti_bayes.toml", "--out", str(f["root"] / "t"),
                                         "--device", "host", "--budget", "-1"], "--budget: expected a positive"),
    # rlmpc flash, evaluate
    ("flash-probe-serial", lambda f: ["flash", str(f["bundle"]), "--board", "host", "--probe-serial", "1"],
     "--probe-serial: only with --probe"),
    ("evaluate-steps", lambda f: ["evaluate", str(f["theta"]), "--steps", "0", "--out", str(f["root"] / "ev")],
     "--steps: expected an integer in [1, 10000000]"),
    ("no-command", lambda f: ["frobnicate"], "invalid choice: 'frobnicate'"),
]


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "argv", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(files: Paths, name: str, argv: Callable[[Paths], list[str]],
                                         message: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in files["root"].iterdir())
    try:
        code = main(argv(files))
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2, (name, captured.out, captured.err)
    assert len(err) == 1 and message in err[0], (name, err)
    assert "Traceback" not in captured.err + captured.out
    assert sorted(p.name for p in files["root"].iterdir()) == before, "something was written"
