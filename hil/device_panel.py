"""``device_panel.png``: the device while learning, per device step: ‖u_device − π_θ(s)‖∞ and its cost.

A device step is one request for an action: each episode's first state, then the next state of every
training step (so an episode of T training steps makes T + 1 device steps).  The 1e-4 line is the
agreement goal of the LTI acceptance: a device whose solver converges (condensed or structured QP of a
linear MPC) is held to it; a real-time iteration (one QP per step at the last plan) is not — it sits
~1e-2 from the converged π_θ by design while the plant moves — so the line is not drawn for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

AGREEMENT_GOAL = 1e-4


def solver_converges(manifest: dict[str, Any]) -> bool | None:
    """Whether the bundle's solver converges at every step (True), iterates once per step (False),
    or the manifest does not say (None)."""
    solver = manifest.get("solver") or {}
    kind = str(solver.get("kind", ""))
    if kind:  # a bare-metal bundle (rlmpc.codegen.mcu_export)
        if kind.startswith("real-time iteration") or "nonlinear" in kind or "ADMM" in kind:
            return False
        return kind.startswith(("condensed QP", "structured QP"))
    resolved = solver.get("nlp_solver_resolved")  # an acados bundle: SQP iterates to convergence
    if resolved == "SQP" or (resolved == "SQP_RTI" and solver.get("nlp_solver") == "auto"):  # auto: a QP
        return True
    return False if resolved == "SQP_RTI" else None


def bundle_solver(bundle: Path) -> tuple[str, bool | None]:
    """The solver of the bundle in ``bundle`` (its ``manifest.json``): a one-line name and
    :func:`solver_converges`; ("", None) where there is no readable manifest."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", None
    solver = manifest.get("solver") or {}
    name = str(solver.get("kind") or solver.get("nlp_solver_resolved") or "")
    return name, solver_converges(manifest)


def plot_device_panel(path: Path, distance: Any, cost: Any, summary: dict[str, Any],
                      episode_starts: list[int] | None = None) -> Path:
    """‖u_device − π_θ(s)‖∞ per device step (log) and the device's cost per step; legends outside
    the axes (they hide no data), episode starts marked, the 1e-4 goal only for converging solvers."""
    from rlmpc.toolkit import figures

    fig, (ax1, ax2) = figures.subplots(2, 1, figsize=(9.5, 5.4), sharex=True)
    d = np.asarray(distance, dtype=float)
    steps = np.arange(d.size)
    ax1.semilogy(steps, np.maximum(d, 1e-12), lw=0.7, color="tab:blue", label="|u_device − π_θ(s)|∞")
    converges = summary.get("solver_converges")
    if converges:
        ax1.axhline(AGREEMENT_GOAL, color="tab:red", ls="--", lw=1,
                    label="1e-4: agreement goal\n(converging solver)")
    elif converges is None:
        ax1.axhline(AGREEMENT_GOAL, color="tab:red", ls="--", lw=1,
                    label="1e-4: agreement goal of a\nconverging solver (dense/\nstructured QP); an RTI\n"
                          "device is not held to it")
    starts = [s for s in (episode_starts or []) if 0 < s < d.size]
    if 0 < len(starts) <= 100:
        for ax in (ax1, ax2):
            for s in starts:
                ax.axvline(s - 0.5, color="0.75", lw=0.5, zorder=0)
        ax1.plot([], [], color="0.75", lw=0.5, label="episode start")
    solver = str(summary.get("solver", "")).split(" (")[0] or "not known"
    note = ("" if converges is not False else
            ": no 1e-4 line (one QP per step, ~1e-2 from the converged π_θ by design)")
    ax1.set_title(f"learning through {summary['board']}: {summary['theta_pushes']} θ pushes, "
                  f"{summary['fallbacks']} fallbacks, {summary['link']['retries']} retries\n"
                  f"device solver: {solver}{note}", fontsize=9)
    ax1.set_ylabel("|u_device − π_θ(s)|∞\n(floor 1e-12)")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax1.grid(alpha=0.3)
    ax2.plot(steps, np.asarray(cost, dtype=float), lw=0.7, color="tab:green")
    ax2.set_ylabel(f"device cost per step\n({summary.get('cost_unit', 'no unit')})")
    episodes = len(episode_starts or [])
    counts = f"\n{d.size} device steps, {episodes} episode{'s' if episodes > 1 else ''}" if episodes else ""
    ax2.set_xlabel("device step (one per action asked for: each episode's first state, then one per training step)"
                   + counts, fontsize=8)
    ax2.grid(alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.8, top=0.89, bottom=0.13, hspace=0.12)
    fig.savefig(path, dpi=110)
    return path
