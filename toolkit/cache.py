"""Where rlmpc keeps what it builds for reuse (generated acados solvers, tool environments).

``$RLMPC_CACHE_DIR`` if set, else the user's cache folder (:func:`platformdirs.user_cache_dir`,
``~/.cache/rlmpc`` on Linux).  Never the installed package and never the current folder: a
command's own results go to its ``--out``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV = "RLMPC_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder (created on first use by whoever writes into it)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path(platformdirs.user_cache_dir("rlmpc"))
