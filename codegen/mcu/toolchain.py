"""Compile a generated solver: natively with its test harness, and for a Cortex-M4F (size)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rlmpc.codegen.toolchain import ToolchainError  # one error type for every toolchain failure

HARNESS = Path(__file__).parent / "c" / "host_harness.c"
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
HOST_FLAGS = ["-O2", *WARNINGS]
CORTEX_M4F = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb", "-O2",
              "-ffunction-sections", "-fdata-sections", "-fno-math-errno"]
ARM_GCC = "arm-none-eabi-gcc"
# symbols a bare-metal solver must not need
FORBIDDEN = ("malloc", "calloc", "realloc", "free", "printf", "fprintf", "sprintf", "puts",
             "putchar", "exit", "abort")


class SolverSources(Protocol):
    """What a generated solver folder offers to compile it."""

    @property
    def sources(self) -> list[Path]: ...

    @property
    def include_dirs(self) -> list[Path]: ...

    @property
    def cflags(self) -> list[str]: ...


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"{' '.join(cmd[:3])} … failed (exit {proc.returncode}):\n"
                             f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout


def _includes(gen: SolverSources) -> list[str]:
    return [f"-I{d}" for d in gen.include_dirs]


def build_host_harness(gen: SolverSources, exe: Path, rti: bool = False, cc: str = "gcc") -> Path:
    """The solver with the line harness :file:`c/host_harness.c` as a native program
    (``rti``: of an RTI solver, with its ``g`` command)."""
    exe.parent.mkdir(parents=True, exist_ok=True)
    define = ["-DRLMPC_HARNESS_RTI"] if rti else []
    _run([cc, *HOST_FLAGS, *gen.cflags, *define, *_includes(gen), *map(str, gen.sources), str(HARNESS),
          "-o", str(exe), "-lm"])
    return exe


def compile_objects(gen: SolverSources, out_dir: Path, cc: str, flags: list[str]) -> list[Path]:
    """One object per solver source."""
    out_dir.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in gen.sources:
        obj = out_dir / (src.stem + ".o")
        _run([cc, *flags, *WARNINGS, *gen.cflags, *_includes(gen), "-c", str(src), "-o", str(obj)])
        objs.append(obj)
    return objs


def undefined_symbols(objects: list[Path], nm: str = "nm") -> set[str]:
    """Symbols the objects need from elsewhere (libc, libm, libgcc), not from each other."""
    undefined = _run([nm, "-u", *map(str, objects)])
    defined = _run([nm, "--defined-only", *map(str, objects)])
    need = {ln.split()[-1] for ln in undefined.splitlines() if ln.strip().startswith("U ")}
    have = {ln.split()[-1] for ln in defined.splitlines() if len(ln.split()) == 3}
    return need - have


def forbidden_symbols(objects: list[Path], nm: str = "nm") -> set[str]:
    """Heap and stdio symbols among the undefined ones (must be empty)."""
    return undefined_symbols(objects, nm) & set(FORBIDDEN)


@dataclass(frozen=True)
class Footprint:
    """Sizes in bytes of the solver for a Cortex-M4F (``arm-none-eabi-size``)."""

    objects_text: int  # all solver objects, before the linker drops unused sections
    objects_data: int
    objects_bss: int
    linked_text: int  # linked with --gc-sections, entry rlmpc_solve (code + constants)
    linked_data: int
    linked_bss: int
    undefined: tuple[str, ...]

    @property
    def flash(self) -> int:
        return self.linked_text + self.linked_data

    @property
    def ram(self) -> int:
        return self.linked_data + self.linked_bss


def _sizes(files: list[Path]) -> tuple[int, int, int]:
    out = _run(["arm-none-eabi-size", *map(str, files)])
    total = [0, 0, 0]
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and all(re.fullmatch(r"\d+", p) for p in parts[:3]):
            for i in range(3):
                total[i] += int(parts[i])
    return total[0], total[1], total[2]


def arm_available() -> bool:
    return shutil.which(ARM_GCC) is not None and shutil.which("arm-none-eabi-size") is not None


def cortex_m4_footprint(gen: SolverSources, out_dir: Path) -> Footprint:
    """Compile for a Cortex-M4F (-O2, hard float) and measure objects and a gc-linked image."""
    objs = compile_objects(gen, out_dir, ARM_GCC, CORTEX_M4F)
    elf = out_dir / "rlmpc_solver.elf"
    _run([ARM_GCC, *CORTEX_M4F, "--specs=nano.specs", "--specs=nosys.specs", "-nostartfiles",
          "-Wl,--gc-sections", "-Wl,-e,rlmpc_solve", "-Wl,--undefined=rlmpc_solve",
          *map(str, objs), "-o", str(elf), "-lm"])
    ot, od, ob = _sizes(objs)
    lt, ld, lb = _sizes([elf])
    return Footprint(ot, od, ob, lt, ld, lb,
                     tuple(sorted(undefined_symbols(objs, "arm-none-eabi-nm"))))
