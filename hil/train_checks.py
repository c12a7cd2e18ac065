"""Checks of ``rlmpc train --device/--port/--program/--bundle/--resume`` made before anything is exported,
built, started or connected (one-line ValueError naming the option or file and what was expected).

* ``--program``: the firmware file for the board (not a folder, not missing, not for another board);
* ``--bundle`` (with ``--port``): a bundle folder with its manifest, of the configuration's problem;
* ``--resume``: the checkpoint is of this configuration (seed, episodes, …), of a run through a device
  if and only if ``--device``/``--port`` is given, and through the same board (a board's cost per step
  is in its own unit: mps2-an386 counts instructions, the host program microseconds); the same for a
  Bayesian study (``study.db``: its user attribute ``extra``).  A checkpoint of a run that ended has
  nothing to continue (:func:`resume_plan` says so, and nothing is started).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

LINK_HOOK = "device_link"
"""The checkpoint's entry naming how the device was reached: ``{"device": BOARD}`` or ``{"port": URL,
"bundle": DIR}`` (the ``device`` entry holds its board, cost unit and record)."""


def device_options(args: argparse.Namespace) -> list[str]:
    """The options that name the device of a run (``--device BOARD [--program P]`` or ``--port URL
    --bundle DIR [--baud N]``), to repeat in a resume hint; [] for a workstation run."""
    if args.target:
        return ["--device", args.target, *(["--program", str(args.program)] if args.program else [])]
    if args.port:
        return ["--port", args.port, "--bundle", str(args.bundle),
                *(["--baud", str(args.baud)] if args.baud is not None else [])]
    return []


def link_of(args: argparse.Namespace) -> dict[str, str]:
    """What :data:`LINK_HOOK` records of ``args``."""
    return {"device": args.target} if args.target else {"port": args.port, "bundle": str(args.bundle)}


def check_program_option(args: argparse.Namespace) -> None:
    """``--program``: a firmware file for ``--device``'s board."""
    if args.program is None:
        return
    if not args.target:
        raise ValueError("--program: only with --device (a program to start on an emulated board)")
    from rlmpc.codegen.program_check import check_program

    try:
        check_program(args.program, args.target)
    except ValueError as exc:
        raise ValueError(f"--program: {exc}") from None


def check_bundle_option(bundle: str | Path, problem_hash: str, problem: str, source: Path) -> None:
    """``--bundle``: a folder holding a bundle's manifest, exported for the configuration's problem."""
    path = Path(bundle)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "no such folder"
        raise ValueError(f"--bundle: {path}: {what}; expected the bundle the board was flashed with "
                         "(e.g. OUT/device/bundle of a --device run)")
    manifest = path / "manifest.json"
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--bundle: {manifest}: no such file; expected a bundle exported by rlmpc "
                         "(rlmpc export, or OUT/device/bundle of a --device run)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--bundle: {manifest}: not a readable manifest ({exc})") from None
    of = doc.get("problem") if isinstance(doc, dict) else None
    if not isinstance(of, dict) or not isinstance(of.get("hash"), str):
        raise ValueError(f"--bundle: {manifest}: problem.hash: missing; expected a bundle exported by rlmpc")
    if of["hash"] != problem_hash:
        raise ValueError(f"--bundle: {path} is a bundle of problem {of.get('name')!r} (hash {of['hash'][:12]}…), "
                         f"not of {source}'s {problem!r} (hash {problem_hash[:12]}…)")


def _device_of(payload: dict[str, Any], out: Path) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The checkpoint's device entry (board, cost unit; from OUT/device.json for a checkpoint written
    before they were recorded) and how it was reached ({} if not recorded)."""
    if "extra" in payload and payload["extra"] is None:  # (a Bayesian study written before it was recorded)
        return _saved_device(out, {} if (out / "device").is_dir() else None), {}
    extra = payload.get("extra") or {}
    device = extra.get("device")
    if device is not None and "board" not in device:
        device = _saved_device(out, device)
    return device, dict(extra.get(LINK_HOOK) or {})


def _saved_device(out: Path, device: dict[str, Any] | None) -> dict[str, Any] | None:
    """``device`` with OUT/device.json's board and cost unit (as it is if there is none)."""
    try:
        saved = json.loads((out / "device.json").read_text(encoding="utf-8"))
        return {**(device or {}), "board": saved["board"], "cost_unit": saved["cost_unit"]}
    except (OSError, ValueError, KeyError, TypeError):
        return device


def _how(device: dict[str, Any], link: dict[str, str]) -> str:
    if "device" in link:
        return f"--device {link['device']}"
    if "port" in link:
        return f"--port {shlex.quote(link['port'])} --bundle {shlex.quote(link['bundle'])}"
    board = device.get("board")
    return (f"--device {board}" if board else "--device BOARD") + " (or --port URL --bundle DIR)"


def resume_plan(trainer: Any, args: argparse.Namespace) -> tuple[dict[str, Any] | None, str | None]:
    """Check a ``--resume`` of ``trainer`` (a :class:`~rlmpc.toolkit.rl.training.Trainer` or a
    :class:`~rlmpc.toolkit.rl.bayes.BayesTuner`, whose study records the same entries) with the
    device options of ``args``: the checkpoint's device entry (None: a workstation run) and, if the run
    ended, a line saying there is nothing to do.  Raises a one-line ValueError for a resume that would
    not continue the run."""
    payload = trainer.read_checkpoint()  # (another configuration, seed, … refused here)
    path = trainer.checkpoint_path
    device, link = _device_of(payload, trainer.out)
    if trainer.finished(payload):
        return device, (f"{trainer.out} holds a run that ended (summary.json after its last checkpoint): "
                        f"nothing to resume; its result: {trainer.out / 'summary.json'}")
    on_device = bool(args.target or args.port)
    if device is not None and not on_device:
        board = device.get("board", "a device")
        raise ValueError(f"--resume: {path} is of a run through {board}; resume it through the device: "
                         f"add {_how(device, link)}")
    if device is None and on_device:
        raise ValueError(f"--resume: {path} is of a run on the workstation, not through a device; resume it "
                         f"without {' '.join(device_options(args)[:2])}")
    if device is not None and args.target and device.get("board") not in (None, args.target):
        raise ValueError(f"--resume: {path} is of a run through {device['board']} (cost per step in "
                         f"{device.get('cost_unit', 'its unit')}), not {args.target}; resume it with "
                         f"{_how(device, link)}")
    return device, None


def check_same_device(device: dict[str, Any] | None, info: Any, path: Path) -> None:
    """After connecting: the device of a resumed run is the checkpoint's board, with its cost unit."""
    if device is None or "board" not in device:
        return
    from rlmpc.codegen.protocol_spec import CostUnit

    board, unit = info.board_name, CostUnit(info.cost_unit).name.lower()
    if (board, unit) != (device["board"], device.get("cost_unit", unit)):
        raise ValueError(f"--resume: {path} is of a run through {device['board']} (cost per step in "
                         f"{device.get('cost_unit')}); the device is {board} (cost per step in {unit}); "
                         "resume it on the board it ran on")


__all__ = ["LINK_HOOK", "check_bundle_option", "check_program_option", "check_same_device",
           "device_options", "link_of", "resume_plan"]
