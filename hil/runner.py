"""The HIL closed loop: plant on the workstation, controller on the device, reference alongside.

:func:`run_hil` resets the device and the plant (seeded), then per step sends the plant state,
receives the device's action and applies it to the plant.  On the same states it evaluates the
workstation policy at the same θ (→ max |u_dev − u_ref|), and afterwards runs the workstation
closed loop with the same disturbance sequence as the reference trajectory.  That reference is
restarted from the device loop's state every ``segment`` steps (a copy of the plant taken
during the device loop, so the same state *and* the same future disturbances): two correct
controllers that differ in the last float32 digit drift apart over hundreds of steps on a plant
riding a constraint, and a cost comparison of the two whole trajectories would then judge the
drift, not the device.  Everything is collected in a :class:`HilRun`.

A run ends early, with what it measured so far and the reason in :attr:`HilRun.aborted`, when
the link is gone (:class:`~rlmpc.hil.transport.LinkDownError`: closed port, exited emulator,
silence beyond the device's :class:`~rlmpc.hil.transport.LinkBudget`), after
``budget.max_consecutive_lost`` lost steps in a row, on a deterministic refusal of the device,
when the plant's state or cost is no longer finite, and on Ctrl-C (``interrupted``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rlmpc.codegen.manifest import theta_hash
from rlmpc.codegen.protocol import hash_prefix
from rlmpc.codegen.protocol_spec import CostUnit, Precision, StatusFlag
from rlmpc.hil.conditions import Conditions
from rlmpc.hil.transport import Device, DeviceRefusalError, LinkDownError, TransportError
from rlmpc.toolkit.rl.plant_io import plant_cost, plant_state

Policy = Callable[[np.ndarray], np.ndarray]
DEFAULT_SEGMENT = 20  # steps between restarts of the reference from the device's state (~ a horizon)


def as_policy(reference: Any) -> Policy:
    """A callable ``x -> u`` from a :class:`rlmpc.toolkit.mpc.MPC` (``.value(x).u0``) or a callable."""
    if hasattr(reference, "value"):
        return lambda x: np.asarray(reference.value(x).u0, dtype=float).ravel()
    if callable(reference):
        return lambda x: np.asarray(reference(x), dtype=float).ravel()
    raise TypeError("reference: expected an MPC (with .value(x).u0) or a callable x -> u")


@dataclass
class HilRun:
    """The record of one HIL run (arrays over steps; ``states`` has ``steps + 1`` rows)."""

    board: str
    precision: int
    cost_unit: str
    steps: int
    seed: int
    states: np.ndarray  # plant under the device
    actions: np.ndarray  # device u applied
    actions_ref_same_state: np.ndarray  # workstation policy on the device loop's states
    ref_states: np.ndarray  # workstation closed loop
    ref_actions: np.ndarray
    stage_cost: np.ndarray
    ref_stage_cost: np.ndarray
    violation: np.ndarray
    ref_violation: np.ndarray
    flags: np.ndarray
    solver_status: np.ndarray
    iterations: np.ndarray
    qp_iterations: np.ndarray
    device_cost: np.ndarray  # per step, in cost_unit (instructions, cycles, µs)
    latency: np.ndarray  # s; NaN for lost steps
    retries: np.ndarray
    lost: np.ndarray  # bool: no valid ACTION, the safe action was applied
    input_bounds: tuple[list[float], list[float]] | None
    link: dict[str, Any]
    identity: dict[str, Any]  # INFO fields and, with a manifest, whether the hashes match
    wall_time: float
    segment: int = 0  # the reference restarts from the device's state every `segment` steps
    late: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # paced steps over their tick
    conditions: dict[str, Any] = field(default_factory=dict)  # rlmpc.hil.conditions.Conditions.as_dict()
    params: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # p sent with each step (steps, np)
    serial_log: list[tuple[float, str, bytes]] = field(default_factory=list)
    steps_requested: int = 0  # the run was asked for this many steps; ``steps`` ran
    aborted: str | None = None  # why the run ended before ``steps_requested`` (None: it did not)
    interrupted: bool = False  # ended by Ctrl-C

    @property
    def action_error(self) -> np.ndarray:
        """|u_dev − u_ref| on the same states, per step (max over inputs)."""
        if not self.actions.size:
            return np.zeros(self.actions.shape[0])
        return np.max(np.abs(self.actions - self.actions_ref_same_state), axis=1)

    @property
    def total_cost(self) -> float:
        return float(np.sum(self.stage_cost))

    @property
    def ref_total_cost(self) -> float:
        return float(np.sum(self.ref_stage_cost))

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.wall_time if self.wall_time > 0 else float("nan")


def _identity(info: Any, manifest: dict[str, Any] | None) -> dict[str, Any]:
    ident: dict[str, Any] = {
        "board": info.board_name, "protocol_version": info.protocol_version,
        "firmware": f"{info.fw_major}.{info.fw_minor}.{info.fw_patch}",
        "precision": int(info.precision), "cost_unit": CostUnit(info.cost_unit).name.lower(),
        "nx": info.nx, "nu": info.nu, "np": info.np,
        "theta_hash": info.theta_hash.hex(), "problem_hash": info.problem_hash.hex(),
        "manifest_hash": info.manifest_hash.hex(),
    }
    if manifest is not None:
        # θ from its values (a hash field copied or edited in the manifest does not count)
        ident["theta_matches_manifest"] = (info.theta_hash == hash_prefix(theta_hash(manifest["theta"]["flat"]))
                                           and manifest["theta"]["hash"] == theta_hash(manifest["theta"]["flat"]))
        ident["problem_matches_manifest"] = info.problem_hash == hash_prefix(manifest["problem"]["hash"])
        ident["dims_match_manifest"] = (info.nx, info.nu) == (manifest["dims"]["nx"], manifest["dims"]["nu"])
    return ident


def _plant_p(info: Any) -> np.ndarray | None:
    """The parameters the plant asks the controller to use (``info["p"]``, e.g. a reference), if any."""
    if isinstance(info, dict) and info.get("p") is not None:
        return np.asarray(info["p"], dtype=float).ravel()
    return None


def _reset_plant(env: Any, seed: int, x0: npt.ArrayLike | None) -> np.ndarray:
    options = None if x0 is None else {"state": np.asarray(x0, dtype=float)}
    obs, info = env.reset(seed=seed, options=options)
    env._rlmpc_hil_p = _plant_p(info)
    return plant_state(obs, info)  # the MPC's state, as in training (GymPlant: not the observation)


def _plant_step(env: Any, u: np.ndarray,
                violation_of: Callable[[np.ndarray], float] | None = None) -> tuple[np.ndarray, float, float]:
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging plant is judged, not warned about
        obs, reward, _, _, info = env.step(u)
        x, cost = plant_state(obs, info), plant_cost(float(reward), info)
    env._rlmpc_hil_p = _plant_p(info)
    if "violation" in info:
        return x, cost, float(info["violation"])
    return x, cost, violation_of(x) if violation_of is not None else 0.0


def state_violation(reference: Any) -> Callable[[np.ndarray], float] | None:
    """The summed violation of the problem's state constraints at a state (for a plant that
    does not report ``info["violation"]``), from the reference MPC's problem; None if unknown."""
    fns = getattr(reference, "fns", None)
    rows = getattr(fns, "state_rows", None)
    if fns is None or rows is None or not rows.n:
        return None
    theta, p = np.asarray(reference.theta), np.asarray(reference.p)

    def violation(x: np.ndarray) -> float:
        h = np.asarray(fns.h_state(x, theta, p), dtype=float).ravel()
        return float(np.sum(np.maximum(rows.lb - h, 0.0) + np.maximum(h - rows.ub, 0.0)))

    return violation


def run_hil(device: Device, plant_env: Any, reference_mpc: Any, steps: int, seed: int = 0, *,
            x0: npt.ArrayLike | None = None, manifest: dict[str, Any] | None = None,
            safe_action: Sequence[float] | None = None, segment: int | None = DEFAULT_SEGMENT,
            conditions: Conditions | None = None, params: npt.ArrayLike | None = None,
            progress: Callable[[int], None] | None = None) -> HilRun:
    """Run ``steps`` closed-loop steps of ``plant_env`` under ``device`` (see the module doc).

    ``reference_mpc``: a :class:`rlmpc.toolkit.mpc.MPC` at the bundle's θ or a callable ``x -> u``.
    ``manifest``: the bundle's ``manifest.json`` (identity checks, input bounds, safe action).
    ``safe_action``: applied for a lost step (default: zero clipped to the input bounds).
    ``segment``: restart the reference from the device's state (and plant copy) every this many
    steps; ``None``: one reference closed loop from the initial state.
    ``conditions``: measurement noise, input disturbances and real-time pacing
    (:class:`rlmpc.hil.conditions.Conditions`); the reference loop gets the same realisations.
    ``params``: the run-time parameters p of each step, shape (steps, np) (e.g. a reference
    schedule); without it, the plant's ``info["p"]`` if it gives one.  They are sent with each
    STEP and the reference MPC (``reference_mpc.p``) uses the same p at the same step.
    The run may end early (see the module doc): ``HilRun.steps`` is then the number of steps run.
    """
    if steps < 1:
        raise ValueError("steps: expected >= 1")
    if segment is not None and segment < 1:
        raise ValueError("segment: expected >= 1 or None")
    seg = steps if segment is None else min(segment, steps)
    schedule = None if params is None else np.atleast_2d(np.asarray(params, dtype=float))
    if schedule is not None and schedule.shape[0] < steps:
        raise ValueError(f"params: expected at least {steps} rows (one per step), got {schedule.shape[0]}")
    policy = _with_params(as_policy(reference_mpc), reference_mpc)
    violation_of = state_violation(reference_mpc)
    info = device.info()
    if manifest is not None and (info.nx, info.nu) != (manifest["dims"]["nx"], manifest["dims"]["nu"]):
        raise TransportError(f"the device runs a controller with nx = {info.nx}, nu = {info.nu}; the "
                             f"bundle's problem has nx = {manifest['dims']['nx']}, nu = "
                             f"{manifest['dims']['nu']}: flash the firmware of this bundle")
    nu = info.nu
    bounds = None
    if manifest is not None and "input_bounds" in manifest:
        bounds = (list(manifest["input_bounds"]["lb"]), list(manifest["input_bounds"]["ub"]))
    if safe_action is None:
        safe = np.zeros(nu) if bounds is None else np.clip(np.zeros(nu), bounds[0], bounds[1])
    else:
        safe = np.asarray(safe_action, dtype=float).ravel()
    device.reset()
    if hasattr(reference_mpc, "reset"):  # (a real-time-iteration reference restarts like the device)
        reference_mpc.reset()
    if device.rtt is None:
        device.calibrate()  # reply deadlines from the measured round trip
    stats0 = device.stats.as_dict()
    cond = conditions or Conditions()

    # device loop
    x = _reset_plant(plant_env, seed, x0)
    nx = x.size
    noise, dist = cond.draw(seed, steps, nx, nu)
    late = np.zeros(steps, dtype=bool)
    states = np.zeros((steps + 1, nx))
    states[0] = x
    actions, u_same = np.zeros((steps, nu)), np.zeros((steps, nu))
    cost, viol = np.zeros(steps), np.zeros(steps)
    flags, status, iters, qp_iters, dev_cost, retries = (np.zeros(steps, dtype=np.int64) for _ in range(6))
    latency = np.full(steps, np.nan)
    lost = np.zeros(steps, dtype=bool)
    sent_p: list[np.ndarray] = []
    snapshots: dict[int, Any] = {}
    t_start = time.perf_counter()
    aborted: str | None = None
    interrupted = False
    run_steps = steps
    consecutive_lost = completed = 0
    for k in range(steps):
        try:
            if k % seg == 0 and k > 0:
                snapshots[k] = copy.deepcopy(plant_env)  # state and disturbance generator
            retries_before = device.stats.retries
            y = x + noise[k]  # what the controller measures
            pk = schedule[k] if schedule is not None else getattr(plant_env, "_rlmpc_hil_p", None)
            try:
                r = device.step(y, () if pk is None else pk)
                u = np.asarray(r.u, dtype=float)
                flags[k], status[k] = r.flags, r.solver_status
                iters[k], qp_iters[k] = r.iterations, r.qp_iterations
                dev_cost[k], latency[k] = r.cost, r.latency
                consecutive_lost = 0
            except (LinkDownError, DeviceRefusalError) as exc:
                aborted, run_steps = f"step {k}: {exc}".replace(f"step {k}: STEP {k}: ", f"step {k}: "), k
                break
            except TransportError:
                lost[k] = True
                u = safe.copy()
                flags[k] = int(StatusFlag.FALLBACK)
                consecutive_lost += 1
            sent_p.append(np.zeros(0) if pk is None else pk)
            retries[k] = device.stats.retries - retries_before
            actions[k] = u
            u_same[k] = policy(y, pk)
            x, cost[k], viol[k] = _plant_step(plant_env, u + dist[k], violation_of)
            states[k + 1] = x
            completed = k + 1
            if not (np.all(np.isfinite(x)) and np.isfinite(cost[k])):
                aborted, run_steps = (f"step {k}: the plant's state or cost is no longer finite (x = "
                                      f"{np.array2string(x, precision=3)}, stage cost {cost[k]:.3g}); "
                                      "the run ends here"), k + 1
                break
            if consecutive_lost >= device.budget.max_consecutive_lost:
                aborted, run_steps = (f"step {k}: {consecutive_lost} steps in a row without a valid ACTION "
                                      f"(budget {device.budget.max_consecutive_lost}, --max-lost); the link is lost: "
                                      f"{device.stats.errors[-1] if device.stats.errors else ''}"), k + 1
                break
            if cond.period is not None:  # real-time pacing: the next step starts on its tick
                wait = t_start + (k + 1) * cond.period - time.perf_counter()
                late[k] = wait < 0
                if wait > 0:
                    time.sleep(wait)
            if progress is not None:
                progress(k)
        except KeyboardInterrupt:  # Ctrl-C: keep the steps completed, the caller writes the report
            aborted, run_steps, interrupted = f"interrupted (Ctrl-C) after {completed} steps", completed, True
            break
    wall = time.perf_counter() - t_start
    if run_steps < steps:
        n = run_steps
        states, late = states[:n + 1], late[:n]
        actions, u_same, cost, viol, lost, latency = (a[:n] for a in (actions, u_same, cost, viol, lost, latency))
        flags, status, iters, qp_iters, dev_cost, retries = (a[:n] for a in (flags, status, iters, qp_iters,
                                                                              dev_cost, retries))
        snapshots = {k: v for k, v in snapshots.items() if k < n}
        steps_requested, steps = steps, n
    else:
        steps_requested = steps

    # workstation reference loop, same x0 and seed (same disturbances), restarted per segment
    xr = _reset_plant(plant_env, seed, x0)
    if hasattr(reference_mpc, "reset"):
        reference_mpc.reset()
    env = plant_env
    ref_states = np.zeros((steps + 1, nx))
    ref_states[0] = xr
    ref_actions = np.zeros((steps, nu))
    ref_cost, ref_viol = np.zeros(steps), np.zeros(steps)
    for k in range(steps):
        if k in snapshots:
            env, xr = snapshots.pop(k), states[k].copy()
        if not np.all(np.isfinite(xr)):  # the reference diverged too: nothing left to compare
            ref_states[k:], ref_actions[k:], ref_cost[k:], ref_viol[k:] = np.nan, np.nan, np.inf, np.inf
            break
        ref_actions[k] = policy(xr + noise[k], sent_p[k] if sent_p[k].size else None)
        xr, ref_cost[k], ref_viol[k] = _plant_step(env, ref_actions[k] + dist[k], violation_of)
        ref_states[k + 1] = xr

    stats1 = device.stats.as_dict()
    link = {key: stats1[key] - stats0[key] for key in ("requests", "retries", "resyncs", "lost_steps")}
    link["errors"] = stats1["errors"][len(stats0["errors"]):]
    port = device.port
    log = list(getattr(port, "log", []))
    link["bytes_tx"] = sum(len(b) for _, d, b in log if d == "tx")
    link["bytes_rx"] = sum(len(b) for _, d, b in log if d == "rx")
    return HilRun(
        board=info.board_name, precision=int(info.precision),
        cost_unit=CostUnit(info.cost_unit).name.lower(), steps=steps, seed=seed,
        states=states, actions=actions, actions_ref_same_state=u_same,
        ref_states=ref_states, ref_actions=ref_actions, stage_cost=cost, ref_stage_cost=ref_cost,
        violation=viol, ref_violation=ref_viol, flags=flags, solver_status=status,
        iterations=iters, qp_iterations=qp_iters, device_cost=dev_cost, latency=latency,
        retries=retries, lost=lost, input_bounds=bounds, link=link,
        identity=_identity(info, manifest), wall_time=wall, segment=seg, late=late,
        conditions=cond.as_dict(nx, nu), serial_log=log, steps_requested=steps_requested,
        aborted=aborted, interrupted=interrupted,
        params=np.array(sent_p[:steps]) if sent_p and sent_p[0].size else np.zeros((steps, 0)))


def _with_params(policy: Policy, reference: Any) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """``policy(x, p)``: sets ``reference.p`` first when p is given (an MPC with parameters)."""
    def run(x: np.ndarray, p: np.ndarray | None) -> np.ndarray:
        if p is not None and p.size:
            if not hasattr(reference, "p"):
                raise ValueError("params: the reference policy takes no parameters p")
            reference.p = p
        return policy(x)
    return run


__all__ = ["HilRun", "Precision", "as_policy", "run_hil"]
