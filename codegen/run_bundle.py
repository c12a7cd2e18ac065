"""Build a bundle for its target, run its test program and compare with the reference.

Natively for ``linux-x86_64`` (u0 must match the workstation's MPC bit for bit),
under ``qemu-aarch64`` for ``linux-aarch64`` (|Δu0| ≤ 1e-9).  Command line::

    python -m rlmpc.codegen.run_bundle BUNDLE [--build-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlmpc.codegen.build import BundleBuildError, build_bundle
from rlmpc.codegen.manifest import read_manifest
from rlmpc.codegen.toolchain import TOLERANCES, ToolchainError, toolchain
from rlmpc.toolkit.parameters import FloatArray

RUN_TIMEOUT_S = 300
_U0_LINE = re.compile(r"(?:^|\s)u0 (\d+) (-?\d+) (\d+)((?: \S+)+)\s*$")
_PREDICTION_LINE = re.compile(r"(?:^|\s)prediction (\d+)((?: \S+)+)\s*$")


class BundleRunError(RuntimeError):
    """The test program failed or printed something unexpected."""


@dataclass(frozen=True)
class TargetOutput:
    """What the test program printed, per vector."""

    status: np.ndarray  # (count,)
    iterations: np.ndarray  # (count,)
    u0: FloatArray  # (count, nu)
    prediction: FloatArray  # (count, (N+1) nx + N nu)


@dataclass(frozen=True)
class BundleReport:
    """Outcome of building and running a bundle's test program on its target."""

    target: str
    vectors: int
    max_abs_du0: float
    max_abs_dprediction: float
    status_mismatches: int
    iteration_mismatches: int
    tolerance: float
    build_seconds: float
    run_seconds: float
    executable: Path

    @property
    def passed(self) -> bool:
        return self.status_mismatches == 0 and self.max_abs_du0 <= self.tolerance

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict} {self.target}: {self.vectors} vectors, max |Δu0| = {self.max_abs_du0:.3g} "
                f"(tolerance {self.tolerance:g}), max |Δprediction| = {self.max_abs_dprediction:.3g}, "
                f"status mismatches {self.status_mismatches}, iteration mismatches "
                f"{self.iteration_mismatches}; build {self.build_seconds:.1f} s, "
                f"run {self.run_seconds:.1f} s")


def parse_output(text: str, count: int, nu: int, n_prediction: int) -> TargetOutput:
    """Read the test program's ``u0``/``prediction`` lines (other lines are acados' own)."""
    status = np.full(count, -1)
    iterations = np.full(count, -1)
    u0 = np.full((count, nu), np.nan)
    prediction = np.full((count, n_prediction), np.nan)
    for line in text.splitlines():
        if match := _U0_LINE.search(line):
            i = int(match.group(1))
            values = [float(v) for v in match.group(4).split()]
            if i >= count or len(values) != nu:
                raise BundleRunError(f"test program: unexpected line {line!r}")
            status[i], iterations[i], u0[i] = int(match.group(2)), int(match.group(3)), values
        elif match := _PREDICTION_LINE.search(line):
            i = int(match.group(1))
            values = [float(v) for v in match.group(2).split()]
            if i >= count or len(values) != n_prediction:
                raise BundleRunError(f"test program: unexpected line {line!r}")
            prediction[i] = values
    if f"done {count}" not in text or np.any(status < 0):
        raise BundleRunError(f"test program: incomplete output (last lines: {text[-300:]!r})")
    return TargetOutput(status, iterations, u0, prediction)


def run_bundle(bundle: str | Path, build_dir: str | Path | None = None) -> BundleReport:
    """Build the bundle for its target, run its test program, compare u0 with the reference."""
    root = Path(bundle).resolve()
    manifest = read_manifest(root)
    target = manifest["target"]
    start = time.perf_counter()
    executable = build_bundle(root, build_dir)
    build_seconds = time.perf_counter() - start

    reference = json.loads((root / manifest["test_vectors"]["json"]).read_text(encoding="utf-8"))
    vectors = reference["vectors"]
    nu = int(reference["nu"])
    n_prediction = (int(reference["N"]) + 1) * int(reference["nx"]) + int(reference["N"]) * nu
    cmd = toolchain(target).run_command(executable, manifest["test_vectors"]["text"], "--prediction")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)
    run_seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BundleRunError(f"{' '.join(cmd)} exited with {proc.returncode}: "
                             f"{(proc.stdout + proc.stderr)[-500:]}")
    got = parse_output(proc.stdout, len(vectors), nu, n_prediction)
    ref_u0 = np.array([v["u0"] for v in vectors], dtype=float)
    ref_pred = np.array([np.concatenate([np.ravel(v["x"]), np.ravel(v["u"])]) for v in vectors])
    ref_status = np.array([v["status"] for v in vectors])
    ref_iter = np.array([v["sqp_iter"] for v in vectors])
    return BundleReport(
        target=target, vectors=len(vectors),
        max_abs_du0=float(np.max(np.abs(got.u0 - ref_u0))),
        max_abs_dprediction=float(np.max(np.abs(got.prediction - ref_pred))),
        status_mismatches=int(np.sum(got.status != ref_status)),
        iteration_mismatches=int(np.sum(got.iterations != ref_iter)),
        tolerance=float(TOLERANCES[target]), build_seconds=build_seconds, run_seconds=run_seconds,
        executable=executable,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlmpc.codegen.run_bundle", description=__doc__)
    parser.add_argument("bundle", help="bundle folder written by export_bundle")
    parser.add_argument("--build-dir", default=None, help="objects and executable (default: BUNDLE/build)")
    args = parser.parse_args(argv)
    try:
        report = run_bundle(args.bundle, args.build_dir)
    except (ValueError, BundleBuildError, BundleRunError, ToolchainError) as exc:
        print(f"run_bundle: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
