#!/usr/bin/env python3
"""Cost of SET_THETA on a Cortex-M4F (QEMU mps2-an386, -icount shift=0) and the RAM it adds.

For each linear problem the float32 solver is generated twice: with θ compiled in (``--fixed-theta``,
constants in flash) and with runtime θ (the default: θ-dependent data in RAM, recomputed on the
device by ``rlmpc_set_theta``).  Printed side by side: the solver's static RAM and flash
(arm-none-eabi-size of the gc-linked solver with entry rlmpc_solve, as in the bundle manifest: the
flash of rlmpc_set_theta's code is not in it; the last flash column is the whole benchmark program
with it), and, measured in QEMU,
the instructions of one ``rlmpc_set_theta`` (a second θ: the model perturbed) with the
precomputation in software double precision (``-DRLMPC_PRECOMPUTE_DOUBLE``, as before issue #16) and
in the build's float32 (the default), next to those of one cold solve.

    .venv/bin/python bench/set_theta_cost.py [--out build/set_theta_cost]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from rlmpc.codegen.mcu.generate import generate
from rlmpc.codegen.mcu.qemu_bench import BENCH_DIR, Unit, build_firmware, c_float, run_qemu
from rlmpc.codegen.mcu.toolchain import cortex_m4_footprint
from rlmpc.toolkit.problem import ProblemFunctions
from rlmpc.toolkit.problems import lti_mpc, lti_tracking_mpc
from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

PROBLEMS = {"lti": lti_mpc, "lti_tracking": lti_tracking_mpc, "linear_cartpole": linear_cartpole_mpc}


def second_theta(fns: ProblemFunctions) -> np.ndarray:
    """The default θ with every value moved by 2 % towards the middle of its bounds (or scaled)."""
    th = fns.theta.default()
    lb, ub = fns.theta.lower(), fns.theta.upper()
    mid = np.where(np.isfinite(lb) & np.isfinite(ub), 0.5 * (lb + ub), 1.1 * th)
    return np.asarray(th + 0.02 * (mid - th), dtype=float)


def measure(name: str, out: Path) -> dict[str, float]:
    fns = PROBLEMS[name]().build()
    row: dict[str, float] = {}
    for mode, runtime in (("fixed", False), ("runtime", True)):
        gen = generate(fns, out / name / mode, precision="float32", runtime_theta=runtime)
        with tempfile.TemporaryDirectory() as tmp:
            fp = cortex_m4_footprint(gen, Path(tmp))
        row[f"ram_{mode}"], row[f"flash_{mode}"] = fp.ram, fp.flash
    gen = generate(fns, out / name / "runtime", precision="float32", runtime_theta=True)
    data = out / name / "bench"
    data.mkdir(parents=True, exist_ok=True)
    x0 = 0.5 * np.ones(fns.nx)
    (data / "theta_data.h").write_text(
        f"#define THETA_DATA {{{', '.join(c_float(v) for v in second_theta(fns))}}}\n"
        f"#define X0_DATA {{{', '.join(c_float(v) for v in x0)}}}\n")
    for key, extra in (("set_theta_double", ("-DRLMPC_PRECOMPUTE_DOUBLE",)), ("set_theta", ())):
        unit = Unit((BENCH_DIR / "theta_bench.c", *gen.sources), (data, *gen.include_dirs), (*gen.cflags, *extra))
        fw = build_firmware([unit], data / key, "theta_bench")
        code, text = run_qemu(fw.elf)
        words = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()}
        if code != 0 or words.get("set_theta", ["", "x"])[1] != "0":
            raise SystemExit(f"{name}: the benchmark failed (exit {code}):\n{text}")
        row[key] = int(words["set_theta"][0])
        row["solve"] = int(words["solve"][0])
    row["nz"], row["m"] = gen.qp.nz, gen.qp.m
    row["bench_flash"] = fw.text + fw.data  # the whole test program, rlmpc_set_theta's code included
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="build/set_theta_cost")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    args = parser.parse_args()
    print(f"{'problem':16} {'nz':>4} {'m':>4} {'RAM fixed':>10} {'RAM runtime':>12} {'+RAM':>8} "
          f"{'flash fixed':>12} {'flash runtime':>14} {'program+set_theta':>18} {'SET_THETA double':>17} "
          f"{'SET_THETA float':>16} {'double/float':>13} {'cold solve':>11} {'ratio':>7}")
    for name in args.problems:
        r = measure(name, Path(args.out))
        print(f"{name:16} {r['nz']:4.0f} {r['m']:4.0f} {r['ram_fixed']:10.0f} {r['ram_runtime']:12.0f} "
              f"{r['ram_runtime'] - r['ram_fixed']:8.0f} {r['flash_fixed']:12.0f} {r['flash_runtime']:14.0f} "
              f"{r['bench_flash']:18.0f} "
              f"{r['set_theta_double']:17.0f} {r['set_theta']:16.0f} {r['set_theta_double'] / r['set_theta']:13.1f} "
              f"{r['solve']:11.0f} {r['set_theta'] / r['solve']:7.1f}")


if __name__ == "__main__":
    main()
