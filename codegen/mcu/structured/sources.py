"""What the two structured solvers (interior point, ADMM) share to be compiled: one folder of C
sources and the flags of their precision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StructuredFolder:
    """A generated structured solver folder (``directory``), its precision and fallback gain ``K``;
    subclasses name their sources."""

    directory: Path
    precision: str
    K: np.ndarray

    @property
    def include_dirs(self) -> list[Path]:
        return [self.directory]

    @property
    def cflags(self) -> list[str]:
        return ["-fsingle-precision-constant"] if self.precision == "float32" else []
