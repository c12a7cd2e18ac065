"""The acados C sources of a problem with θ baked in, without acados' build files.

The acados template generates, besides the solver's C code, a Makefile, a JSON
description and example programs that embed absolute paths of this machine
(the acados installation, the export folder, the Python headers).  Only the C
sources and headers are kept; they contain no paths, dates or host names.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rlmpc.toolkit.acados_build import generate_sources
from rlmpc.toolkit.options import SolverOptions
from rlmpc.toolkit.problem import ProblemFunctions


def solver_file_names(model_name: str) -> tuple[str, ...]:
    """The generated files a solver needs, relative to the export folder (folders end in '/')."""
    return (f"acados_solver_{model_name}.c", f"acados_solver_{model_name}.h",
            f"{model_name}_model/", f"{model_name}_cost/", f"{model_name}_constraints/")


def export_solver_sources(fns: ProblemFunctions, options: SolverOptions, model_name: str,
                          dest: Path) -> list[Path]:
    """Generate the acados OCP solver of ``fns`` and copy its C sources into ``dest``.

    Parameters
    ----------
    fns : ProblemFunctions
        The problem, normally with θ baked in (:func:`rlmpc.toolkit.problem.fix_theta`).
    options : SolverOptions
        Options compiled into the solver.
    model_name : str
        C prefix of the generated functions.
    dest : Path
        Folder that receives the sources (created).

    Returns
    -------
    list of Path
        The copied files, sorted.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rlmpc-acados-export-") as tmp:
        generated = Path(tmp) / "c_generated_code"
        generated.mkdir()
        generate_sources(fns, options, model_name, generated)
        for name in solver_file_names(model_name):
            src = generated / name
            if name.endswith("/"):
                if not src.is_dir():
                    continue  # e.g. no constraint functions
                for file in sorted(src.iterdir()):
                    if file.suffix in (".c", ".h"):
                        (dest / name).mkdir(exist_ok=True)
                        shutil.copyfile(file, dest / name / file.name)
            else:
                shutil.copyfile(src, dest / name)
    return sorted(p for p in dest.rglob("*") if p.is_file())
