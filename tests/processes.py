"""Helpers of the tests that start firmware processes (emulators, host programs)."""

from __future__ import annotations


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (so a stopped emulator counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
