"""One BLAS thread for loops of small linear algebra (learning runs).

The learning loop's matrices are small (θ of tens, KKT systems of hundreds); a multithreaded
BLAS gains nothing on them and, on a busy machine, loses a lot: a 122×122 least-squares solve of
the DPG critic took 0.44–0.5 s instead of 1.5 ms with OpenBLAS's default threads on a loaded 2-core
machine (docs/benchmarks.md).  A thread count the user set in the environment is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread inside the block, unless the environment sets a thread count."""
    if any(name in os.environ for name in USER_SETTINGS):
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
