"""Run inside build/tinympc-venv (PyPI tinympc 0.0.8): write TinyMPC's code generation for a
problem given as an .npz (A, B, Q, R, N, x_min, x_max, u_min, u_max, rho) into a folder.

Its codegen ends with a build step of a Python module that fetches pybind11 over the network;
offline that step fails after the C++ sources are written, which is all the benchmark needs.
"""

import subprocess
import sys

import numpy as np
import tinympc

data = np.load(sys.argv[1])
solver = tinympc.TinyMPC()
solver.setup(data["A"], data["B"], data["Q"], data["R"], int(data["N"]), rho=float(data["rho"]),
             x_min=data["x_min"], x_max=data["x_max"], u_min=data["u_min"], u_max=data["u_max"],
             max_iter=int(data["max_iter"]))
try:
    solver.codegen(sys.argv[2], verbose=False)
except subprocess.CalledProcessError as exc:
    print(f"tinympc: its module build step failed (exit {exc.returncode}); the C++ sources are written")
