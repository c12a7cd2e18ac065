"""Learning through the device: the controller on the target is the policy while θ is learned.

At every step the device computes the action at the plant's state (its ACTION drives the plant;
exploration is added on the workstation by the agent, and the applied action is what is recorded).
The workstation computes what the agent needs at the device's states with its own acados MPC at
the same θ (Q(s, a), V(s⁺), ∇θQ; for DPG ∇θπ and the critic), updates θ and pushes it to the device
with SET_THETA after every update.  Every step records the distance between the device's action and
the workstation's π_θ(s), the device's cost per step, its flags and fallbacks.

Faults: a lost or corrupted frame is retried by :class:`~rlmpc.hil.transport.Device`; a step still
unanswered after those retries is asked again (the simulated plant waits for it: no step is lost
while the link lives); a device that answers with another θ hash than the one pushed last (it reset
and came back with its exported θ) gets the current θ again before the step is used.  Nothing of
this touches θ or the replay buffer: the agent only ever sees the action the device finally
returned.  Every retry, handshake, re-push and injected fault is counted in :meth:`summary`.

Episodes: every episode starts with RESET (:meth:`episode_start`): the device's controller starts
cold at the plant's new initial state, as on a bench a new experiment restarts the controller.
Within an episode a real-time-iteration device keeps its warm start (last plan, working set) across
θ pushes: a new θ moves its solution a little, and the next iteration starts from the old one.  A
solver without a guess to keep (the dense and structured QP solvers) restarts at every θ, as before.

Checkpoints: :meth:`state_dict` (the θ hash on the device, the per-step record) rides in the
trainer's checkpoint; after ``--resume`` the device (restarted, or running another θ) is reset and
sent the checkpoint's θ before its first step.  Bit for bit with the uninterrupted run: (a) devices
that restart their solver at every θ, where θ is pushed before every step (``update_every = 1``);
(b) any device when the checkpoint falls on an episode boundary (``checkpoint_every`` a multiple of
the episode length: the next episode starts with RESET either way).  Not bit for bit: a checkpoint
within an episode of an RTI device (the resumed step starts cold, the uninterrupted one warm) and a
device that resets mid-run (it restarts cold): these match to the RTI's own accuracy.  A step whose
reply was lost is answered again from the device's memory (docs/protocol.md), so a retry does not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.protocol import hash_prefix, tagged_theta_hash, theta_tag
from rlmpc.codegen.protocol_spec import Capability, CostUnit, StatusFlag
from rlmpc.hil.device_panel import bundle_solver, plot_device_panel
from rlmpc.hil.faults import find_faulty
from rlmpc.hil.transport import Device, DeviceRefusalError, LinkDownError, Sent, TransportError
from rlmpc.toolkit.mpc import MpcSolution
from rlmpc.toolkit.parameters import FloatArray

DEVICE_FILES = ("device_steps.npz", "device.json", "device_panel.png")
STEP_ATTEMPTS = 5  # a step unanswered after the transport's retries is asked again this many times in all


@dataclass
class DeviceRecord:
    """Per step: ‖u_device − π_θ(s)‖∞ (NaN when the workstation's solve failed), the device's cost
    per step (its unit), flags, the round trip of the request that answered [s]; counters of θ pushes,
    re-pushes after a reset, and retries."""

    distance: list[float] = field(default_factory=list)
    cost: list[int] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    fallbacks: int = 0
    pushes: int = 0
    repushes: int = 0
    theta_hash: str = ""
    asked_again: int = 0  # steps asked again after the transport's retries were spent
    sent_ahead: int = 0  # STEP_THETA frames written before the workstation's solves (prefetch)
    resumed_from: str = ""  # with --resume: the device's θ hash in the checkpoint
    episode_resets: int = 0  # RESETs at episode starts (and after a resume)
    episode_starts: list[int] = field(default_factory=list)  # the device step each episode starts at


class DeviceInTheLoop:
    """The device as the agent's greedy policy (:attr:`MpcAgent.greedy_source`), kept at the θ of the
    workstation's solve (pushed whenever it differs: at the start, after every update, after a
    resume and after a device reset)."""

    def __init__(self, device: Device, problem_hash: str, ntheta: int) -> None:
        info = device.info()
        if not info.capabilities & Capability.SET_THETA:
            raise ValueError(f"the device ({info.board_name}) does not offer SET_THETA: its θ cannot change at "
                             "run time, so it cannot learn; export and build a bundle with run-time θ")
        if info.problem_hash != hash_prefix(problem_hash):
            raise ValueError(f"the device ({info.board_name}) runs another problem's controller "
                             f"(problem hash {info.problem_hash.hex()}…, the configuration's {problem_hash[:32]}…)")
        if info.ntheta != ntheta:
            raise ValueError(f"the device takes {info.ntheta} θ values, the problem has {ntheta}")
        self.device = device
        self.problem_hash = problem_hash
        self.record = DeviceRecord()
        # a new θ and the step in one frame (STEP_THETA); a firmware without it: SET_THETA+STEP pairs
        self.one_frame = bool(info.capabilities & Capability.STEP_THETA)
        self._theta: FloatArray | None = None
        self._theta_name = b""  # what the device's INFO names its θ by after the last push
        self._info_seen: Any = None  # the INFO of the handshake in force at the last push
        # a STEP_THETA written ahead (prefetch): θ, s, p, θ's hash and the frame
        self._pending: tuple[FloatArray, FloatArray, FloatArray, str, Sent] | None = None
        self._reset_due = False  # RESET before the next step (after a resume)
        self.bundle: Path | None = None  # the bundle the device runs, where known (its solver: device_panel.png)

    # --- θ ---------------------------------------------------------------------------------------
    def push(self, theta: FloatArray) -> None:
        """SET_THETA (whole or not at all on the device); a refusal ends the run with its reason."""
        theta = np.asarray(theta, dtype=float).copy()
        digest = theta_hash(theta)
        try:
            self.device.set_theta(hash_prefix(self.problem_hash), hash_prefix(digest), theta, refresh_info=False)
        except TransportError as exc:
            raise TransportError(f"pushing θ to the device: {exc}") from None
        self._theta, self.record.theta_hash, self._theta_name = theta, digest, hash_prefix(digest)
        self.record.pushes += 1

    def _reset_since_push(self) -> bool:
        """A new handshake (the transport shakes hands again after a reset) whose INFO names
        another θ than the one pushed last: the device runs its exported θ again."""
        info = self.device.info()
        return info is not self._info_seen and info.theta_hash != self._theta_name

    def _ensure_theta(self, theta: FloatArray) -> None:
        """The device acts with ``theta``: pushed when it is new or the device lost it in a reset."""
        if self._theta is None or not np.array_equal(theta, self._theta):
            self.push(theta)
        elif self._reset_since_push():
            self.record.repushes += 1
            self.push(theta)
        self._info_seen = self.device.info()

    # --- the policy ------------------------------------------------------------------------------
    def episode_start(self) -> None:
        """RESET (:attr:`MpcAgent.greedy_episode_start`): the episode's first step starts the device's
        controller cold, whatever the steps before it left (a frame written ahead is completed first)."""
        self.record.episode_starts.append(len(self.record.distance))
        self._restart()

    def _restart(self) -> None:
        """RESET (a frame written ahead is completed first)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._complete(pending)
        self.device.reset()
        self.record.episode_resets += 1
        self._reset_due = False

    def prefetch(self, s: FloatArray, theta: FloatArray, p: FloatArray) -> None:
        """Write the next step's STEP_THETA now (:attr:`MpcAgent.greedy_prefetch`: the agent knows s⁺ and θ
        before its own solves), so that the frame crosses the link while the workstation works; its
        reply is read by :meth:`action`.  Only where a new θ goes with the step in one frame."""
        if not self.one_frame or self._pending is not None or self._theta is None:
            return
        theta = np.asarray(theta, dtype=float).copy()
        if np.array_equal(theta, self._theta) or self._reset_since_push():
            return
        s, p = np.asarray(s, dtype=float).copy(), np.asarray(p, dtype=float).ravel().copy()
        digest = theta_hash(theta)
        sent = self.device.send_step_theta(theta_tag(digest), theta, s, p if p.size else ())
        self._pending = (theta, s, p, digest, sent)
        self.record.sent_ahead += 1

    def _take_pending(self, sol: MpcSolution) -> Sent | None:
        """The frame written ahead for this solution, or None; one written for another (s, θ, p) is
        completed and its answer dropped (the device ran that step: it now runs that θ)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        theta, s, p, _digest, sent = pending
        if np.array_equal(theta, sol.theta) and np.array_equal(s, sol.s) and np.array_equal(p, sol.p.ravel()):
            return sent
        self._complete(pending)
        return None

    def _complete(self, pending: tuple[FloatArray, FloatArray, FloatArray, str, Sent]) -> None:
        """Read the reply of a frame written ahead that is not used (the device ran that step: it now
        runs that θ)."""
        theta, s, p, digest, sent = pending
        try:
            self.device.step_theta(theta_tag(digest), theta, s, p, sent=sent)
        except DeviceRefusalError as exc:
            raise TransportError(f"pushing θ to the device: {exc}") from None
        self._theta, self.record.theta_hash = theta, digest
        self._theta_name = tagged_theta_hash(theta_tag(digest))
        self.record.pushes += 1

    def _push_and_step(self, sol: MpcSolution, sent: Sent | None = None) -> Any:
        """A new θ and the step in one frame (:meth:`Device.step_theta`), or, from a firmware without
        STEP_THETA, in one round trip (:meth:`Device.step_with_theta`: the action counts only if the
        device acknowledged θ in front of it)."""
        theta = np.asarray(sol.theta, dtype=float).copy()
        digest, previous, seen = theta_hash(theta), self._theta_name, self.device.info()
        p = sol.p if sol.p.size else ()
        try:
            if self.one_frame:
                name = tagged_theta_hash(theta_tag(digest))
                result = self.device.step_theta(theta_tag(digest), theta, sol.s, p, sent=sent)
            else:
                name = hash_prefix(digest)
                result = self.device.step_with_theta(hash_prefix(self.problem_hash), name, theta, sol.s, p)
        except DeviceRefusalError as exc:
            raise TransportError(f"pushing θ to the device: {exc}") from None
        except LinkDownError:
            raise
        except TransportError:  # unanswered after the retries: θ pushed again (if need be), the step asked again
            self.record.asked_again += 1
            self._theta = None
            self._ensure_theta(sol.theta)
            return self._ask(sol)
        info = self.device.info()
        if info is not seen and info.theta_hash not in (previous, name):
            self.record.repushes += 1  # it reset during the request (new handshake, its exported θ): sent again
        self._theta, self.record.theta_hash, self._theta_name = theta, digest, name
        self.record.pushes += 1
        self._info_seen = info
        return result

    def action(self, sol: MpcSolution) -> FloatArray:
        """The device's action at the state the workstation just solved for, with the same θ."""
        if self._reset_due:  # (after a resume: the step continues an episode)
            self._restart()
        sent = self._take_pending(sol)
        if sent is not None:
            result = self._push_and_step(sol, sent)
        elif self._theta is not None and not np.array_equal(sol.theta, self._theta) and not self._reset_since_push():
            result = self._push_and_step(sol)
        else:
            self._ensure_theta(sol.theta)
            result = self._ask(sol)
        if self._reset_since_push():  # it reset during the step: ask again with the current θ
            self._ensure_theta(sol.theta)
            result = self._ask(sol)
        u = np.asarray(result.u, dtype=float)
        self.record.distance.append(float(np.max(np.abs(u - sol.u0))) if sol.success else float("nan"))
        self.record.cost.append(int(result.cost))
        self.record.flags.append(int(result.flags))
        self.record.latency.append(float(result.latency))
        if result.flags & (StatusFlag.FALLBACK | StatusFlag.OVERRUN):
            self.record.fallbacks += 1
        return u

    def _ask(self, sol: MpcSolution) -> Any:
        """STEP at the solved state; a step lost after the transport's retries is asked again (with θ
        pushed again if the device reset meanwhile), up to :data:`STEP_ATTEMPTS` in all."""
        for attempt in range(STEP_ATTEMPTS):
            try:
                return self.device.step(sol.s, sol.p if sol.p.size else ())
            except (LinkDownError, DeviceRefusalError):
                raise
            except TransportError:
                if attempt + 1 == STEP_ATTEMPTS:
                    raise
                self.record.asked_again += 1
                self._ensure_theta(sol.theta)
        raise AssertionError("unreachable")

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds of the device: the θ hash it runs, its board and cost unit (a resume
        on another board is refused: :mod:`rlmpc.hil.train_checks`) and the record so far."""
        r, info = self.record, self.device.info()
        return {"theta_hash": r.theta_hash, "board": info.board_name,
                "cost_unit": CostUnit(info.cost_unit).name.lower(),
                "record": {k: (list(v) if isinstance(v, list) else v) for k, v in vars(r).items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the record of a checkpoint; the device gets the trainer's θ before its next step
        (whatever it runs now: a restarted emulator runs its exported θ)."""
        self.record = DeviceRecord(**state["record"])
        self.record.resumed_from = state["theta_hash"]
        self._theta = None  # pushed before the first step after the resume
        self._pending = None
        self._reset_due = True  # and the device reset first (cold, whether it kept running or restarted)

    # --- outputs ---------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        d = np.array(self.record.distance, dtype=float)
        c = np.array(self.record.cost, dtype=float)
        info = self.device.info()
        return {"board": info.board_name, "cost_unit": CostUnit(info.cost_unit).name.lower(), "steps": int(d.size),
                "distance_max": float(np.nanmax(d)) if np.isfinite(d).any() else float("nan"),
                "distance_median": float(np.nanmedian(d)) if np.isfinite(d).any() else float("nan"),
                "cost_max": float(c.max()) if c.size else float("nan"),
                "cost_median": float(np.median(c)) if c.size else float("nan"),
                "round_trip_median_ms": 1e3 * float(np.median(self.record.latency)) if self.record.latency
                else float("nan"),
                "fallbacks": self.record.fallbacks, "theta_pushes": self.record.pushes,
                "theta_repushes_after_reset": self.record.repushes, "theta_hash": self.record.theta_hash,
                "steps_asked_again": self.record.asked_again, "steps_sent_ahead": self.record.sent_ahead,
                "theta_frame": self._theta_frame(),
                "episode_resets": self.record.episode_resets,
                "link": self.device.stats.as_dict(),
                **self._extras()}

    def _theta_frame(self) -> str:
        """How θ went with the steps."""
        if not self.one_frame:
            return "SET_THETA+STEP"
        if self.device.theta_delta and self.device.info().capabilities & Capability.THETA_DELTA:
            return "STEP_THETA_DELTA (STEP_THETA where not shorter)"
        return "STEP_THETA"

    def _extras(self) -> dict[str, Any]:
        """The injected faults (``--faults``) and the resume, where there were any."""
        extra: dict[str, Any] = {}
        faulty = find_faulty(self.device.port)
        if faulty is not None:
            extra["faults"] = faulty.counts.as_dict()
        if self.record.resumed_from:
            extra["resumed_from_theta_hash"] = self.record.resumed_from
        return extra

    def save(self, out: Path) -> dict[str, Any]:
        """``device_steps.npz``, ``device.json`` and ``device_panel.png`` in ``out``; the solver is read
        from the bundle ``rlmpc train --device`` exported into ``out/device/bundle`` (with ``--port``
        set :attr:`bundle`)."""
        np.savez_compressed(out / "device_steps.npz", distance=np.array(self.record.distance),
                            cost=np.array(self.record.cost), flags=np.array(self.record.flags),
                            latency=np.array(self.record.latency),
                            episode_start=np.array(self.record.episode_starts, dtype=int))
        summary = self.summary()
        solver, converges = bundle_solver(self.bundle or out / "device" / "bundle")
        summary.update(solver=solver, solver_converges=converges)
        (out / "device.json").write_text(json.dumps(summary, indent=1, default=float) + "\n", encoding="utf-8")
        plot_device_panel(out / "device_panel.png", self.record.distance, self.record.cost, summary,
                          self.record.episode_starts)
        return summary
