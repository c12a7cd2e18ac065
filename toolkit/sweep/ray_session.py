"""Starting or joining Ray: a local instance on this machine by default (no set-up beyond ``make``),
or a cluster with ``--address auto|ray://HOST:PORT``.  The user's plugins and cache folder travel to
the workers through the runtime environment."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

FORWARDED_ENV = ("RLMPC_PLUGINS", "RLMPC_CACHE_DIR", "PYTHONPATH")


class RayUnavailableError(ValueError):
    """Ray is not installed (the ``scale`` extra) or the cluster cannot be reached."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("Ray is not installed: pip install 'rlmpc[scale]' (ray[tune]); "
                                  "make setup installs it") from None
    return ray


def start_ray(address: str | None, workers: int | None) -> Any:
    """``ray.init`` for a sweep or an evaluation; returns the ray module.

    Parameters
    ----------
    address
        ``None``: a new local Ray with ``workers`` CPUs (default: all cores); ``"auto"`` or
        ``"ray://HOST:PORT"``: join that cluster (``workers`` then caps the trials run at once).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback-only local instance
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own console tables: we print our lines
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "runtime_env": {"env_vars": env}, "configure_logging": False}
    try:
        if address is None:
            ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray" if address is None else f"the Ray cluster at {address}"
        raise RayUnavailableError(f"--address: cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return ray


def stop_ray() -> None:
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
