"""Artifacts of a HIL run: ``hil.json``, ``summary.md``, PNG plots, ``serial.log``, ``junit.xml``.

:func:`write_report` writes them all into one folder and returns their paths by kind.
"""

from __future__ import annotations

import json
import platform
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.codegen.protocol_spec import StatusFlag
from rlmpc.hil.runner import HilRun
from rlmpc.hil.verdict import Verdict

FILES = {"json": "hil.json", "markdown": "summary.md", "junit": "junit.xml", "serial_log": "serial.log",
         "states_png": "states.png", "actions_png": "actions.png", "action_error_png": "action_error.png",
         "device_cost_png": "device_cost.png"}


def _nanmax(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.max(finite)) if finite.size else None


def _finite(values: np.ndarray) -> list[Any]:
    return [None if (isinstance(v, float) and not np.isfinite(v)) else v for v in values.tolist()]


def metrics(run: HilRun) -> dict[str, Any]:
    ok = ~run.lost
    ran = run.steps > 0
    lat = run.latency[ok]
    link_time = float(np.sum(lat)) if lat.size else float("nan")
    return {
        "steps": run.steps,
        "steps_requested": run.steps_requested or run.steps,
        "aborted": run.aborted,
        "max_action_error": float(np.max(run.action_error[ok])) if ok.any() else None,
        "total_cost": run.total_cost,
        "ref_total_cost": run.ref_total_cost,
        "cost_ratio": run.total_cost / run.ref_total_cost if run.ref_total_cost else None,
        "reference_segment": run.segment,
        "late_steps": int(run.late.sum()) if run.conditions.get("period") is not None else None,
        "max_state_deviation": _nanmax(np.abs(run.states - run.ref_states)),
        "violation": float(np.sum(run.violation)),
        "ref_violation": float(np.sum(run.ref_violation)),
        "device_cost_unit": run.cost_unit,
        "device_cost_max": int(np.max(run.device_cost[ok])) if ok.any() else None,
        "device_cost_mean": float(np.mean(run.device_cost[ok])) if ok.any() else None,
        "iterations_max": int(np.max(run.iterations)) if ran else None,
        "qp_iterations_max": int(np.max(run.qp_iterations)) if ran else None,
        "latency_mean_ms": float(np.mean(lat) * 1e3) if lat.size else None,
        "latency_max_ms": float(np.max(lat) * 1e3) if lat.size else None,
        "link_steps_per_second": run.steps / link_time if lat.size and link_time > 0 else None,
        "loop_steps_per_second": run.steps_per_second,
        "lost_steps": int(np.sum(run.lost)),
        "wall_time_s": run.wall_time,
    }


def _finite_rows(values: np.ndarray) -> list[Any]:
    """Rows as lists, non-finite entries as null (valid JSON for a diverged plant)."""
    return [_finite(row) for row in values]


def to_json(run: HilRun, verdict: Verdict) -> dict[str, Any]:
    return {
        "format": "rlmpc-hil/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "board": run.board, "precision": run.precision, "seed": run.seed,
        "identity": run.identity, "link": run.link, "conditions": run.conditions,
        "steps": run.steps, "steps_requested": run.steps_requested or run.steps, "aborted": run.aborted,
        "interrupted": run.interrupted,
        **verdict.as_dict(),
        "metrics": metrics(run),
        "trace": {
            "states": _finite_rows(run.states), "actions": run.actions.tolist(), "params": run.params.tolist(),
            "actions_ref_same_state": run.actions_ref_same_state.tolist(),
            "ref_states": _finite_rows(run.ref_states), "ref_actions": _finite_rows(run.ref_actions),
            "stage_cost": _finite(run.stage_cost), "ref_stage_cost": _finite(run.ref_stage_cost),
            "violation": _finite(run.violation), "ref_violation": _finite(run.ref_violation),
            "flags": run.flags.tolist(), "solver_status": run.solver_status.tolist(),
            "iterations": run.iterations.tolist(), "qp_iterations": run.qp_iterations.tolist(),
            "device_cost": run.device_cost.tolist(), "latency_s": _finite(run.latency),
            "retries": run.retries.tolist(), "lost": run.lost.tolist(),
        },
    }


def _conditions_text(c: dict[str, Any]) -> str:
    parts = []
    if any(c.get("measurement_noise") or []):
        parts.append(f"measurement noise σ = {c['measurement_noise']}")
    if any(c.get("input_disturbance") or []):
        parts.append(f"input disturbance σ = {c['input_disturbance']}")
    if c.get("period") is not None:
        parts.append(f"paced at {c['period']:g} s per step")
    text = ", ".join(parts) if parts else "ideal (no added noise, not paced)"
    plant = c.get("plant")
    if isinstance(plant, dict):
        params = ", ".join(f"{k} = {v}" for k, v in plant.get("params", {}).items())
        text += f"; plant {plant.get('name')}" + (f" ({params})" if params else "")
    return text


def to_markdown(run: HilRun, verdict: Verdict) -> str:
    m = metrics(run)

    def fmt(v: Any) -> str:
        return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    ended = "" if run.aborted is None else f" of {run.steps_requested} (ended early: {run.aborted})"
    lines = [f"# HIL run on `{run.board}`: **{verdict.label}**", "",
             f"{run.steps} closed-loop steps{ended}, seed {run.seed}, precision float{8 * run.precision}, "
             f"θ hash `{run.identity.get('theta_hash', '')}`.  The workstation reference closed loop "
             f"has the same disturbances and restarts from the device's state every {run.segment} steps.",
             f"Conditions: {_conditions_text(run.conditions)}.", ""]
    if verdict.reasons:
        lines += ["## Reasons", "", *[f"- {r}" for r in verdict.reasons], ""]
    lines += ["## Checks", "", "| threshold | what | result | value | limit |", "|---|---|---|---|---|"]
    lines += [f"| {c.name} | {c.subject} | {'pass' if c.passed else 'FAIL'} | {c.value:.4g} | {c.limit:.4g} |"
              for c in verdict.checks]
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in m.items()]
    lines += ["", "## Link", "", *[f"- {k}: {v}" for k, v in run.link.items() if k != "errors"]]
    if run.link.get("errors"):
        lines += ["- errors:", *[f"  - {e}" for e in run.link["errors"]]]
    lines += ["", "Plots: " + ", ".join(f"`{FILES[k]}`" for k in FILES if k.endswith("_png")) + "."]
    return "\n".join(lines) + "\n"


def to_junit(run: HilRun, verdict: Verdict) -> str:
    suite = ET.Element("testsuite", name=f"hil.{run.board}", tests=str(len(verdict.checks)),
                       failures=str(sum(not c.passed for c in verdict.checks)), errors="0",
                       time=f"{run.wall_time:.3f}")
    for i, c in enumerate(verdict.checks):
        case = ET.SubElement(suite, "testcase", classname=f"hil.{run.board}", name=f"{i:02d}_{c.name}")
        if not c.passed:
            ET.SubElement(case, "failure", message=c.message, type="threshold").text = c.message
        else:
            ET.SubElement(case, "system-out").text = c.message
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _mark_lost(ax: Any, run: HilRun, label: bool) -> None:
    """Shade the steps without a valid ACTION (the safe action was applied) and the FALLBACK ones."""
    fallback = ((run.flags & int(StatusFlag.FALLBACK)) != 0) & ~run.lost
    for mask, colour, name in ((run.lost, "red", "lost step (safe action)"),
                               (fallback, "orange", "device FALLBACK")):
        for i, k in enumerate(np.flatnonzero(mask)):
            ax.axvspan(k - 0.5, k + 0.5, color=colour, alpha=0.25, lw=0,
                       label=name if label and i == 0 else None)


def plot(run: HilRun, out: Path, verdict: Verdict | None = None) -> dict[str, Path]:
    """The PNGs: states and actions (device solid, workstation reference dashed on top, input
    bounds, lost and fallback steps shaded), the action error against its threshold, the
    per-step device cost against the budget."""
    from rlmpc.toolkit import figures

    th = verdict.thresholds if verdict is not None else {}
    paths: dict[str, Path] = {}
    k = np.arange(run.steps + 1)
    nx = run.states.shape[1]
    ended = "" if run.aborted is None else f" (ended after {run.steps} of {run.steps_requested} steps)"
    with np.errstate(invalid="ignore"):
        violated = bool(np.nanmax(np.abs(np.concatenate([run.violation, run.ref_violation])), initial=0.0) > 0)
    rows = nx + int(violated)
    fig, axes = figures.subplots(rows, 1, figsize=(9.5, 2.2 * rows + 0.6), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:nx, 0]):
        ax.plot(k, run.states[:, i], "C0-", lw=2.2, label=f"device ({run.board})")
        ax.plot(k, run.ref_states[:, i], "k--", lw=1.2, label="workstation reference")
        _mark_lost(ax, run, i == 0)
        if i < run.params.shape[1]:  # run-time parameters (e.g. a reference), drawn where they apply
            n = run.params.shape[0]
            ax.step(k[:n], run.params[:, i], "C3-.", where="post", lw=1.2,
                    label="p sent with each STEP (p[i] on x[i])" if i == 0 else None)
        ax.set_ylabel(f"x[{i}]")
        ax.grid(alpha=0.3)
    if violated:  # the state constraints: how far each loop went past them (0: inside)
        ax = axes[nx, 0]
        ax.step(k[1:], run.violation, "C0-", where="pre", lw=2.2, label="device loop")
        ax.step(k[1:], run.ref_violation, "k--", where="pre", lw=1.2, label="reference loop")
        _mark_lost(ax, run, False)
        ax.set_ylabel("state-constraint\nviolation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[0, 0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"states: device loop vs workstation reference{ended}")
    paths["states_png"] = _save(fig, out / FILES["states_png"])

    ks = np.arange(run.steps)
    nu = run.actions.shape[1]
    fig, axes = figures.subplots(nu, 1, figsize=(9.5, 2.2 * nu + 0.8), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.step(ks, run.actions[:, i], "C1-", where="post", lw=2.2, label=f"device ({run.board})")
        ax.step(ks, run.ref_actions[:, i], "k--", where="post", lw=1.2, label="workstation reference")
        if run.input_bounds is not None:
            for j, b in enumerate((run.input_bounds[0][i], run.input_bounds[1][i])):
                if np.isfinite(b):
                    ax.axhline(b, color="purple", ls=":", lw=1.2, label="input bound" if j == 0 else None)
        _mark_lost(ax, run, i == 0)
        ax.set_ylabel(f"u[{i}]")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"actions applied to the plant{ended}")
    paths["actions_png"] = _save(fig, out / FILES["actions_png"])

    fig, ax = figures.subplots(figsize=(9.5, 3.0))
    err = np.where(run.lost, np.nan, run.action_error)
    ax.semilogy(ks, np.maximum(err, 1e-17), "C3.-", ms=3, label="device vs workstation, same state")
    tol = th.get("max_action_error")
    if tol is not None:
        ax.axhline(float(tol), color="k", ls="--", lw=1.2, label=f"threshold {float(tol):.3g}")
    _mark_lost(ax, run, True)
    ax.set_xlabel("step")
    ax.set_ylabel("max |u_dev − u_ref|")
    ax.set_title("action error on the same states")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    paths["action_error_png"] = _save(fig, out / FILES["action_error_png"])

    fig, ax = figures.subplots(figsize=(9.5, 3.0))
    ax.bar(ks, np.where(run.lost, 0, run.device_cost), color="C2", width=0.8, label="device cost per step")
    budget = th.get("cost_budget")
    if budget is not None:
        ax.axhline(float(budget), color="k", ls="--", lw=1.2, label=f"budget {float(budget):.4g}")
    _mark_lost(ax, run, True)
    ax.set_xlabel("step")
    ax.set_ylabel(run.cost_unit)
    if budget is None and run.steps:
        ax.set_ylim(0, max(float(np.max(run.device_cost)) * 1.15, 1.0))
    ax.set_title(f"per-step device cost ({run.cost_unit})")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    paths["device_cost_png"] = _save(fig, out / FILES["device_cost_png"])
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_serial_log(run: HilRun, path: Path) -> Path:
    path.write_text("".join(f"{t:.6f} {d} {b.hex()}\n" for t, d, b in run.serial_log), encoding="ascii")
    return path


def write_report(run: HilRun, verdict: Verdict, out_dir: str | Path, *,
                 plots: bool = True) -> dict[str, Path]:
    with np.errstate(all="ignore"):  # a diverged plant's inf and NaN are reported, not warned about
        return _write_report(run, verdict, Path(out_dir), plots)


def _write_report(run: HilRun, verdict: Verdict, out_dir: Path, plots: bool) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / FILES["json"], "markdown": out / FILES["markdown"], "junit": out / FILES["junit"]}
    paths["json"].write_text(json.dumps(to_json(run, verdict), indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(to_markdown(run, verdict), encoding="utf-8")
    paths["junit"].write_text(to_junit(run, verdict) + "\n", encoding="utf-8")
    paths["serial_log"] = write_serial_log(run, out / FILES["serial_log"])
    if plots:
        paths.update(plot(run, out, verdict))
    return paths


__all__ = ["FILES", "metrics", "plot", "to_json", "to_junit", "to_markdown", "write_report"]
