"""``rlmpc train CONFIG --device BOARD`` / ``--port URL``: a training run whose policy is the
controller on the target (:mod:`rlmpc.hil.device_training`).

With ``--device`` the configuration's MPC at its initial θ is exported (bare metal for the MCU
boards and ``host``, an acados bundle for ``linux-aarch64``) into ``OUT/device/bundle``, the
firmware is built into ``OUT/device/firmware`` and started like ``rlmpc hil`` starts it; with
``--port`` the board is already running (flashed with that bundle).  The run's usual outputs are
joined by ``device_steps.npz``, ``device.json`` and ``device_panel.png``.  ``--faults SPEC`` injects
link faults (:mod:`rlmpc.hil.faults`; ``reset=K`` restarts the emulated board after the K-th STEP);
the checkpoint holds the device's θ hash and ``--resume`` sends θ again before the next step.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlmpc.hil.device_training import DeviceInTheLoop


def export_for_device(trainer: Any, board: str, folder: Path) -> Path:
    """The bundle of the configuration's MPC at θ0 for ``board`` (replaced if it is ours and unchanged)."""
    return export_problem(trainer.config, trainer.mpc.fns, trainer.theta0, board, folder)


def export_problem(cfg: Any, fns: Any, theta: Any, board: str, folder: Path) -> Path:
    """The bundle of the MPC of ``cfg`` (a :class:`TrainConfig`) at ``theta`` for ``board``."""
    from rlmpc.codegen.bundle import export_bundle
    from rlmpc.codegen.mcu_export import export_mcu
    from rlmpc.toolkit.theta_file import save_theta, theta_document

    folder.mkdir(parents=True, exist_ok=True)
    theta0 = folder / "theta0.json"
    save_theta(theta0, theta_document(cfg.mpc.problem, cfg.mpc.params, fns, theta,
                                      plant={"name": cfg.env.name, "params": cfg.env.params}))
    if board == "linux-aarch64":
        return Path(export_bundle(theta0, "linux-aarch64", folder / "bundle"))
    return Path(export_mcu(theta0, folder / "bundle"))


def run_on_device(trainer: Any, args: argparse.Namespace, resumed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with the device as the policy; the summary gains ``device``.  ``resumed``: the checkpoint's
    device entry (:func:`rlmpc.hil.train_checks.resume_plan`; the connected device must be its board)."""
    from rlmpc.hil.cli import connected_device
    from rlmpc.hil.train_checks import LINK_HOOK, check_same_device, link_of
    from rlmpc.toolkit.output_folder import claim_output_folder
    from rlmpc.toolkit.rl.training import TRAIN_OUTPUTS, TRAIN_PROGRESS

    out = trainer.out
    if not args.resume and trainer.checkpoint_path.exists():
        raise ValueError(f"{trainer.checkpoint_path} exists: pass --resume to continue that run, "
                         "or choose another output folder")
    claim_output_folder(out, "train", TRAIN_OUTPUTS, resume=args.resume,  # before OUT/device is written
                        progress=TRAIN_PROGRESS)
    trainer.folder_claimed = True
    device_dir = out / "device"
    bundle = export_for_device(trainer, args.target, device_dir) if args.target else Path(args.bundle)
    with connected_device(args, bundle, device_dir / "firmware") as device:
        if device.rtt is None:
            device.calibrate()  # reply deadlines from the measured round trip (a lost frame costs ms, not 2 s)
        loop = DeviceInTheLoop(device, trainer.mpc.fns.problem_hash, trainer.mpc.fns.theta.size)
        loop.bundle = bundle  # (its solver decides the panel's agreement line; with --port: --bundle)
        if args.resume:
            check_same_device(resumed, device.info(), trainer.checkpoint_path)
        trainer.agent.greedy_source = loop.action
        trainer.agent.greedy_prefetch = loop.prefetch
        trainer.agent.greedy_episode_start = loop.episode_start
        trainer.checkpoint_hooks["device"] = (loop.state_dict, loop.load_state_dict)
        link = link_of(args)
        trainer.checkpoint_hooks[LINK_HOOK] = (lambda: link, lambda _: None)
        try:
            summary = trainer.run(resume=args.resume)
        finally:
            trainer.agent.greedy_source = trainer.agent.greedy_prefetch = trainer.agent.greedy_episode_start = None
            if loop.record.distance:
                loop.save(out)
        summary["device"] = loop.summary()
    return summary
