"""TinyMPC (PyPI ``tinympc`` 0.0.8, code generation, float build) on QEMU mps2-an386: issue 15's
outside reference.  Installed in its own venv (``build/tinympc-venv``), never a dependency.

Its known traps, handled here: the generated ``tinytype`` is double (switched to float: double
is soft-float on a Cortex-M4F); ``<iostream>``/``std::cout`` pull ~180 KB (removed); the codegen
ends with a build step that fetches pybind11 (fails offline after the sources are written);
its data are Eigen dynamic matrices built by static constructors on the heap (the adapter runs
``__libc_init_array`` and brings a static ``_sbrk`` arena; a copy of the board's link script
keeps ``.init_array``); and its setup adds ρ to Q and R twice, so the QP it converges to is
not the one passed in (not compensated: Q - ρ I would be indefinite here).  TinyMPC has no
soft constraints: the soft position box becomes a hard one, and its terminal cost is its own
infinite-horizon LQR matrix.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rlmpc.codegen.mcu.qemu_bench import (
    BENCH_DIR,
    BOARD_DIR,
    BOARD_SOURCES,
    CORTEX_M_DIR,
    LINK_FLAGS,
    BenchPlan,
    Firmware,
    bench_config_header,
    bench_data_header,
    elf_sizes,
)
from rlmpc.codegen.mcu.toolchain import CORTEX_M4F

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = ROOT / "build" / "tinympc-venv"
WORKER = Path(__file__).with_name("_tinympc_worker.py")
ADAPTER = Path(__file__).with_name("_tinympc_adapter.cpp")
CXX = "arm-none-eabi-g++"
CXX_FLAGS = ("--specs=nano.specs", "-std=c++17", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
             "-fno-use-cxa-atexit",
             "-DNDEBUG", "-w")
INIT_ARRAY = """    .init_array : ALIGN(4)
    {
        __init_array_start = .;
        KEEP(*(SORT(.init_array.*)))
        KEEP(*(.init_array))
        __init_array_end = .;
        __preinit_array_start = .;
        __preinit_array_end = .;
    } > FLASH

    .data : ALIGN(4)"""


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tinympc==0.0.8"], check=True)
    return python


def generate(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, N: int, bounds: dict[str, np.ndarray],
             out: Path, python: Path, rho: float = 1.0, max_iter: int = 100) -> Path:
    """TinyMPC's generated sources for the problem, patched for a bare-metal float build."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "problem.npz"
    arrays: dict[str, Any] = {"A": A, "B": B, "Q": Q, "R": R, "N": N, "rho": rho, "max_iter": max_iter, **bounds}
    np.savez(data, **arrays)
    gen = out / "gen"
    subprocess.run([str(python), str(WORKER), str(data), str(gen)], check=True, capture_output=True, text=True)
    for types in (gen / "tinympc" / "types.hpp", gen / "include" / "tinympc" / "types.hpp"):
        types.write_text(types.read_text().replace("typedef double tinytype;", "typedef float tinytype;"))
    for name in ("admm.cpp", "rho_benchmark.cpp"):
        src = gen / "tinympc" / name
        text = src.read_text().replace("#include <iostream>", "")
        src.write_text(re.sub(r"std::cout <<[^;]*;", "/* (std::cout removed) */", text))
    return gen


def build(gen: Path, plan: BenchPlan, out: Path, heap_bytes: int) -> Firmware:
    """The benchmark program: harness and board in C, TinyMPC and the adapter in C++ (its heap
    arena of ``heap_bytes`` counts in the RAM)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_config.h").write_text(bench_config_header(plan))
    (out / "bench_data.h").write_text(bench_data_header(plan))
    link = out / "link.ld"
    shutil.copy(BOARD_DIR / "link.ld", link)
    link.write_text(link.read_text().replace("    .data : ALIGN(4)", INIT_ARRAY, 1))
    inc = [f"-I{d}" for d in (out, BENCH_DIR, BOARD_DIR, BOARD_DIR.parent, CORTEX_M_DIR)]
    objs = []
    for src in (*BOARD_SOURCES, BENCH_DIR / "solver_bench.c"):
        obj = out / f"{src.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *CORTEX_M4F, "-std=c99", *inc, "-c", str(src), "-o", str(obj)],
                       check=True)
        objs.append(str(obj))
    cinc = [f"-I{gen / 'include'}", f"-I{gen / 'include' / 'Eigen'}", f"-I{gen}", f"-I{BENCH_DIR}"]
    for src in (gen / "tinympc" / "admm.cpp", gen / "tinympc" / "rho_benchmark.cpp", gen / "src" / "tiny_data.cpp",
                ADAPTER):
        obj = out / f"{src.stem}.o"
        subprocess.run([CXX, *CORTEX_M4F, *CXX_FLAGS, f"-DTINY_HEAP_BYTES={heap_bytes}", *cinc, "-c", str(src),
                        "-o", str(obj)], check=True)
        objs.append(str(obj))
    elf = out / "bench.elf"
    subprocess.run([CXX, *CORTEX_M4F, *LINK_FLAGS, "-T", str(link), *objs, "-o", str(elf), "-lm"], check=True)
    return Firmware(elf, *elf_sizes(elf))
