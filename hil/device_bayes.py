"""Bayesian tuning of θ through the device (``rlmpc train CONFIG --device BOARD [--budget N]`` with
``agent.type = "bayes"``): each trial's θ is pushed with SET_THETA and scored by the greedy closed-loop
episodes of ``[evaluation]`` with the device computing every action; the device's worst cost per step
(its unit: instructions on the QEMU boards, cycles or µs on others) is the trial's ``worst_step``, and
with ``--budget`` a θ whose worst step exceeds it is infeasible (:class:`~rlmpc.toolkit.rl.bayes.BayesTuner`).

Every episode starts cold (RESET: no warm start carried from the previous episode or trial), with the
plant reset on the seeds of the workstation's greedy evaluation, so that a trial's score and worst step
depend on θ only.  A step unanswered after the transport's retries is asked again; a device that reset
gets the trial's θ again and the episode restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.protocol import hash_prefix
from rlmpc.codegen.protocol_spec import Capability, CostUnit, StatusFlag
from rlmpc.hil.faults import find_faulty
from rlmpc.hil.transport import Device, DeviceRefusalError, LinkDownError, TransportError
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.registry import make_env
from rlmpc.toolkit.rl import plant_io
from rlmpc.toolkit.rl.config import TrainConfig

EPISODE_ATTEMPTS = 3  # an episode is run again (θ pushed again) if the device resets during it


@dataclass(frozen=True)
class DeviceTrial:
    """One θ scored on the device: mean closed-loop cost over the episodes, the worst cost per step
    (device unit), the steps run and the steps the device answered with its fallback."""

    cost: float
    worst_step: int
    steps: int
    fallbacks: int


class DeviceScorer:
    """Scores θ by closed-loop episodes whose actions the device computes (see the module doc).
    ``score`` and ``worst_step`` of the same θ share one run (the last θ is remembered)."""

    def __init__(self, device: Device, fns: ProblemFunctions, config: TrainConfig) -> None:
        info = device.info()
        if not info.capabilities & Capability.SET_THETA:
            raise ValueError(f"the device ({info.board_name}) does not offer SET_THETA: its θ cannot change at "
                             "run time, so it cannot be tuned; export and build a bundle with run-time θ")
        if info.problem_hash != hash_prefix(fns.problem_hash):
            raise ValueError(f"the device ({info.board_name}) runs another problem's controller")
        self.device, self.fns, self.config = device, fns, config
        self.board = info.board_name
        self.cost_unit = CostUnit(info.cost_unit).name.lower()
        self.trials: list[DeviceTrial] = []
        self.pushes = self.repushes = self.asked_again = 0
        self._last: tuple[bytes, DeviceTrial] | None = None

    # --- the objective and the constraint of BayesTuner ---------------------------------------------
    def score(self, theta: FloatArray) -> float:
        return self.measure(theta).cost

    def worst_step(self, theta: FloatArray) -> float:
        return float(self.measure(theta).worst_step)

    def measure(self, theta: FloatArray, fresh: bool = False) -> DeviceTrial:
        """The trial of ``theta`` (remembered for the next call with the same θ unless ``fresh``)."""
        key = np.asarray(theta, dtype=float).tobytes()
        if not fresh and self._last is not None and self._last[0] == key:
            return self._last[1]
        trial = self._run(np.asarray(theta, dtype=float))
        self.trials.append(trial)
        self._last = (key, trial)
        return trial

    # --- the closed loop ------------------------------------------------------------------------------
    def _push(self, theta: FloatArray) -> str:
        digest = theta_hash(theta)
        self.device.set_theta(hash_prefix(self.fns.problem_hash), hash_prefix(digest), theta, refresh_info=False)
        self.pushes += 1
        return digest

    def _reset_seen(self, info: Any, digest: str) -> bool:
        now = self.device.info()
        return now is not info and now.theta_hash != hash_prefix(digest)

    def _run(self, theta: FloatArray) -> DeviceTrial:
        ev = self.config.evaluation
        digest = self._push(theta)
        totals, worst, steps, fallbacks = [], 0, 0, 0
        for e in range(ev.episodes):
            for _attempt in range(EPISODE_ATTEMPTS):
                info = self.device.info()
                result = self._episode(e, info, digest)
                if result is not None:
                    break
                self.repushes += 1  # the device reset during the episode: θ again, the episode again
                digest = self._push(theta)
            else:
                raise TransportError(f"evaluation episode {e}: the device reset {EPISODE_ATTEMPTS} times")
            total, w, n, fb = result
            totals.append(total)
            worst, steps, fallbacks = max(worst, w), steps + n, fallbacks + fb
        return DeviceTrial(float(np.mean(totals)), worst, steps, fallbacks)

    def _episode(self, e: int, info: Any, digest: str) -> tuple[float, int, int, int] | None:
        """One greedy episode from a cold start; None if the device reset meanwhile."""
        cfg, fns = self.config, self.fns
        self.device.reset()
        env = make_env(cfg.env.name, cfg.env.params)
        try:
            s = plant_io.reset(env, cfg.env.name, fns.nx, cfg.evaluation.seed + e)
            total, worst, fallbacks, n = 0.0, 0, 0, 0
            for t in range(cfg.evaluation.steps):
                r = self._step(s)
                if self._reset_seen(info, digest):
                    return None
                u = np.clip(np.asarray(r.u, dtype=float), fns.u_lb, fns.u_ub)
                worst = max(worst, int(r.cost))
                fallbacks += bool(r.flags & (StatusFlag.FALLBACK | StatusFlag.OVERRUN))
                s, cost, terminated = plant_io.step(env, cfg.env.name, fns.nx, u,
                                                    f"evaluation episode {e}, step {t} (through the device)")
                total, n = total + cost, n + 1
                if terminated:
                    break
            return total, worst, n, fallbacks
        finally:
            env.close()

    def _step(self, s: FloatArray) -> Any:
        for attempt in range(EPISODE_ATTEMPTS + 2):
            try:
                return self.device.step(s)
            except (LinkDownError, DeviceRefusalError):
                raise
            except TransportError:
                if attempt == EPISODE_ATTEMPTS + 1:
                    raise
                self.asked_again += 1
        raise AssertionError("unreachable")

    def summary(self) -> dict[str, Any]:
        return {"board": self.board, "cost_unit": self.cost_unit, "trials_run": len(self.trials),
                "theta_pushes": self.pushes, "theta_repushes_after_reset": self.repushes,
                "steps_asked_again": self.asked_again, "fallbacks": sum(t.fallbacks for t in self.trials),
                "link": self.device.stats.as_dict(), **self._faults()}

    def _faults(self) -> dict[str, Any]:
        faulty = find_faulty(self.device.port)
        return {} if faulty is None else {"faults": faulty.counts.as_dict()}


def tune_on_device(tuner: Any, args: Any, resumed: dict[str, Any] | None = None) -> dict[str, Any]:
    """``rlmpc train CONFIG --device BOARD|--port URL [--budget N]`` with ``agent.type = "bayes"``: the
    study of ``tuner`` (:class:`~rlmpc.toolkit.rl.bayes.BayesTuner`) scored through the device.
    Afterwards θ0 and the returned θ are run again on the device (``summary["device"]``: their cost,
    worst step and whether it meets the budget); ``device.json`` holds the same.  The study records the
    device (board, cost unit, how it was reached); ``resumed``: the study's device entry
    (:func:`rlmpc.hil.train_checks.resume_plan`; the connected device must be its board)."""
    import json
    from pathlib import Path

    from rlmpc.hil.cli import connected_device
    from rlmpc.hil.train_checks import LINK_HOOK, check_same_device, link_of
    from rlmpc.hil.train_device import export_problem
    from rlmpc.toolkit.output_folder import claim_output_folder
    from rlmpc.toolkit.rl.bayes import BAYES_OUTPUTS
    from rlmpc.toolkit.rl.training import TRAIN_PROGRESS

    out, budget = tuner.out, getattr(args, "budget", None)
    if not args.resume and tuner.checkpoint_path.exists():
        raise ValueError(f"{tuner.checkpoint_path} exists: pass --resume to continue that study, "
                         "or choose another output folder")
    claim_output_folder(out, "train", BAYES_OUTPUTS, resume=args.resume,  # before OUT/device is written
                        progress=TRAIN_PROGRESS)
    tuner.folder_claimed = True
    device_dir = out / "device"
    bundle = (export_problem(tuner.config, tuner.fns, tuner.theta0, args.target, device_dir) if args.target
              else Path(args.bundle))
    with connected_device(args, bundle, device_dir / "firmware") as device:
        if device.rtt is None:
            device.calibrate()
        if args.resume:
            check_same_device(resumed, device.info(), tuner.checkpoint_path)
        scorer = DeviceScorer(device, tuner.fns, tuner.config)
        tuner.checkpoint_extra = {"device": {"board": scorer.board, "cost_unit": scorer.cost_unit},
                                  LINK_HOOK: link_of(args)}
        if budget is not None and scorer.cost_unit == "none":
            raise ValueError(f"--budget: the device ({scorer.board}) reports no cost per step: nothing to "
                             "compare with a budget")
        tuner.score_fn, tuner.worst_step, tuner.budget, tuner.cost_unit = (scorer.score, scorer.worst_step,
                                                                           budget, scorer.cost_unit)
        summary: dict[str, Any] = tuner.run(resume=args.resume)
        theta0 = scorer.measure(np.asarray(tuner.theta0), fresh=True)
        final = scorer.measure(np.asarray(tuner.best_theta), fresh=True)
        device_summary = {**scorer.summary(), "budget": budget,
                          "theta0": _checked(theta0, budget), "returned_theta": _checked(final, budget),
                          "returned_theta_cost_as_in_its_trial": final.cost == summary["greedy_cost_final"]}
    (out / "device.json").write_text(json.dumps(device_summary, indent=1, default=float) + "\n", encoding="utf-8")
    summary["device"] = device_summary
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    return summary


def _checked(trial: DeviceTrial, budget: float | None) -> dict[str, Any]:
    """A θ run again on the device: its cost, worst step and whether it meets the budget."""
    return {"cost": trial.cost, "worst_step": trial.worst_step, "steps": trial.steps, "fallbacks": trial.fallbacks,
            "meets_budget": None if budget is None else bool(trial.worst_step <= budget)}


__all__ = ["DeviceScorer", "DeviceTrial", "tune_on_device"]
