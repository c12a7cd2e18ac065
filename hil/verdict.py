"""PASS/FAIL of a :class:`rlmpc.hil.runner.HilRun` against thresholds, with one reason per failed check.

Defaults (:class:`Thresholds`): max |u_dev − u_ref| ≤ 1e-3 for a float32 device (1e-6 for
float64); closed-loop cost within 1 % of the workstation reference; inputs inside the bundle's
bounds up to ``constraint_tol``, and the summed state-constraint violation no larger than the
reference's by more than ``constraint_tol`` plus ``violation_rel_tol`` (1 %) of the reference's
(two closed loops on a noisy plant that rides a soft bound drift apart from float32-level
differences: an absolute margin alone fails correct devices over a few hundred steps);
per-step device cost (instructions / cycles / µs) ≤ ``cost_budget`` if set;
no lost step (``max_lost_steps``); no fallback action unless allowed; the device's θ and
problem hashes equal the manifest's when a manifest was given.

Nothing passes by accident: a run that ended early (lost link, refusal, diverging plant,
Ctrl-C) fails ``completed``; a run that lost its link (ended early, or more lost steps than
``max_lost_steps``) fails the cost and state-constraint checks as "not judged"; otherwise they
use only the reference segments in which every step had a valid ACTION (a lost step applies the
safe action to the plant, and the comparison would judge the fallback, not the device); a
check with nothing to compare, or a non-finite value, fails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.codegen.protocol_spec import Precision, StatusFlag
from rlmpc.hil.runner import HilRun
from rlmpc.toolkit.json_file import read_json

ACTION_TOL_DEFAULT = {int(Precision.F32): 1e-3, int(Precision.F64): 1e-6}


@dataclass(frozen=True)
class Thresholds:
    max_action_error: float | None = None  # None: by precision (ACTION_TOL_DEFAULT)
    cost_rel_tol: float = 0.01
    constraint_tol: float = 1e-5
    violation_rel_tol: float = 0.01
    cost_budget: float | None = None  # per step, in the device's cost unit
    max_lost_steps: int = 0
    max_late_steps: int | None = None  # real-time pacing: steps over their tick (None: not judged)
    allow_fallback: bool = False
    check_identity: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        if not isinstance(data, dict):
            raise ValueError(f"thresholds: expected an object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"thresholds: unknown keys {unknown}; expected some of {sorted(known)}")
        for key, value in data.items():
            optional = "None" in str(known[key].type)
            if value is None and optional:
                continue
            if known[key].type in (bool, "bool"):
                if not isinstance(value, bool):
                    raise ValueError(f"thresholds: {key}: expected true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"thresholds: {key}: expected a non-negative number"
                                 f"{' or null' if optional else ''}, got {value!r}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> Thresholds:
        """From a JSON file (an object, optionally under the key ``"thresholds"``)."""
        src = Path(path)
        data = read_json(src, "thresholds file")
        try:
            return cls.from_dict(data.get("thresholds", data) if isinstance(data, dict) else data)
        except ValueError as exc:
            raise ValueError(f"{src}: {exc}") from None


@dataclass(frozen=True)
class Check:
    name: str  # the threshold's name
    passed: bool
    value: float
    limit: float
    message: str
    subject: str = ""  # what is measured (two checks share constraint_tol)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    checks: list[Check]
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [c.message for c in self.checks if not c.passed]

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.label, "reasons": self.reasons, "thresholds": self.thresholds,
                "checks": [asdict(c) for c in self.checks]}


def _check(name: str, value: float, limit: float, what: str, unit: str = "") -> Check:
    ok = bool(value <= limit) and not math.isnan(value)
    rel = "≤" if ok else ">"
    return Check(name, ok, float(value), float(limit),
                 f"{name}: {what} = {value:.3g}{unit} {rel} {limit:.3g}{unit}", what)


def comparable_steps(run: HilRun) -> np.ndarray:
    """The steps whose cost and constraints may be compared with the reference: those of
    reference segments (``run.segment`` steps from the device's state) without a lost step."""
    n = run.lost.size
    seg = run.segment if run.segment > 0 else max(n, 1)
    ids = np.arange(n) // seg
    bad = np.unique(ids[run.lost])
    return ~np.isin(ids, bad)


def evaluate(run: HilRun, thresholds: Thresholds | None = None) -> Verdict:
    th = thresholds or Thresholds()
    checks: list[Check] = []
    ok_steps = ~run.lost

    tol = th.max_action_error
    if tol is None:
        tol = ACTION_TOL_DEFAULT.get(run.precision, 1e-3)
    err = float(np.max(run.action_error[ok_steps])) if ok_steps.any() else float("nan")
    checks.append(_check("max_action_error", err, tol, "max |u_dev - u_ref| on the same states"))

    if run.aborted is not None:
        checks.append(Check("completed", False, float(run.steps), float(run.steps_requested),
                            f"completed: the run ended after {run.steps} of {run.steps_requested} steps: "
                            f"{run.aborted}", "steps run"))

    n_lost = int(np.sum(run.lost))
    unjudged = None  # a run that lost its link: its cost and constraints say nothing about the device
    if run.aborted is not None and not run.interrupted:
        unjudged = f"the run ended early ({run.steps} of {run.steps_requested} steps)"
    elif n_lost > th.max_lost_steps:
        unjudged = f"{n_lost} steps without a valid ACTION (the plant got the safe action)"
    compared = comparable_steps(run)
    skipped = f"; {int(np.sum(~compared))} steps in segments with a lost step left out" if (~compared).any() else ""
    with np.errstate(over="ignore", invalid="ignore"):
        total, ref = float(np.sum(run.stage_cost[compared])), float(np.sum(run.ref_stage_cost[compared]))
        rel = abs(total - ref) / max(abs(ref), 1e-12) if compared.any() else float("nan")
        if not (np.isfinite(total) and np.isfinite(ref)):
            rel = float("nan")
    if unjudged is not None:
        checks.append(Check("cost_rel_tol", False, rel, th.cost_rel_tol,
                            f"cost_rel_tol: not judged: {unjudged}", "closed-loop cost vs reference"))
    else:
        checks.append(_check("cost_rel_tol", rel, th.cost_rel_tol,
                             f"closed-loop cost {total:.6g} vs reference {ref:.6g}{skipped}, relative difference"))

    if run.input_bounds is not None:
        lb, ub = (np.asarray(b, dtype=float) for b in run.input_bounds)
        dev = run.actions[ok_steps]
        over = float(np.max(np.maximum(lb - dev, 0.0) + np.maximum(dev - ub, 0.0))) if dev.size else float("nan")
        checks.append(_check("constraint_tol", over, th.constraint_tol, "input bound violation"))
    with np.errstate(over="ignore", invalid="ignore"):
        ref_violation = float(np.sum(run.ref_violation[compared])) if compared.any() else float("nan")
        excess = float(np.sum(run.violation[compared])) - ref_violation
    if unjudged is not None:
        checks.append(Check("constraint_tol", False, excess, th.constraint_tol,
                            f"constraint_tol: state constraints not judged: {unjudged}",
                            "state-constraint violation beyond the reference's"))
    else:
        checks.append(_check("constraint_tol", excess,
                             th.constraint_tol + th.violation_rel_tol * ref_violation,
                             f"state-constraint violation beyond the reference's ({ref_violation:.3g})"))

    if th.cost_budget is not None:
        peak = float(np.max(run.device_cost[ok_steps])) if ok_steps.any() else float("nan")
        checks.append(_check("cost_budget", peak, th.cost_budget, "max per-step device cost",
                             f" {run.cost_unit}"))
    overruns = int(np.sum((run.flags & int(StatusFlag.OVERRUN)) != 0))
    checks.append(_check("cost_budget" if th.cost_budget is not None else "overrun", overruns, 0,
                         "steps flagged OVERRUN by the firmware"))

    lost = int(np.sum(run.lost))
    checks.append(_check("max_lost_steps", lost, th.max_lost_steps,
                         f"steps without a valid ACTION (link: {run.link.get('retries', 0)} retries, "
                         f"{run.link.get('resyncs', 0)} resyncs)"))

    if th.max_late_steps is not None and run.late.size:
        checks.append(_check("max_late_steps", int(np.sum(run.late)), th.max_late_steps,
                             "paced steps that missed their tick"))

    if not th.allow_fallback:
        fb = int(np.sum(((run.flags & int(StatusFlag.FALLBACK)) != 0) & ok_steps))
        bad = int(np.sum(((run.flags & int(StatusFlag.SOLVER_OK)) == 0) & ok_steps))
        checks.append(_check("allow_fallback", fb + bad, 0,
                             "device steps with FALLBACK or without SOLVER_OK"))

    if th.check_identity:
        mism = [k for k in ("theta_matches_manifest", "problem_matches_manifest", "dims_match_manifest")
                if run.identity.get(k) is False]
        checks.append(Check("check_identity", not mism, float(len(mism)), 0.0,
                            "check_identity: device and manifest agree" if not mism
                            else f"check_identity: device differs from the manifest: {', '.join(mism)}",
                            "device identity vs. the manifest"))

    return Verdict(all(c.passed for c in checks), checks, {**asdict(th), "max_action_error": tol})


__all__ = ["ACTION_TOL_DEFAULT", "Check", "Thresholds", "Verdict", "comparable_steps", "evaluate"]
