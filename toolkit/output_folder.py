"""Output folders of rlmpc's commands: never a folder of the user's own files.

A command writes into a folder that is new or empty, or that an rlmpc command wrote before: it
holds the marker file, or (written before the marker existed) nothing but names the command
writes.  Anything else is refused in one line before anything is written.  (Bundles have their
own, stricter rule: :mod:`rlmpc.codegen.bundle_folder`.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MARKER = ".rlmpc-output"
MARKER_TEXT = "an output folder of rlmpc "
SHOWN = 4


def claim_output_folder(folder: str | Path, command: str, own: Iterable[str]) -> Path:
    """``folder`` as the output folder of ``command`` (created, marked); ``own``: the names of the
    files and folders the command writes there."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: output folder: exists and is not a folder")
    if out.is_dir():
        names = sorted(p.name for p in out.iterdir())
        if MARKER in names:
            by = _marked_by(out / MARKER)
            if by != command:
                raise ValueError(f"{out}: output folder: written by rlmpc {by}, not {command}; "
                                 "choose another folder")
        elif names:
            owned = set(own)
            foreign = [n for n in names if n not in owned]
            if foreign:
                more = f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else ""
                raise ValueError(f"{out}: output folder: holds files rlmpc {command} did not write "
                                 f"({', '.join(foreign[:SHOWN])}{more}); choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKER
    if not marker.exists():
        marker.write_text(f"{MARKER_TEXT}{command}\n", encoding="utf-8")
    return out


def _marked_by(marker: Path) -> str:
    """The command a marker names (``?`` if unreadable)."""
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return "?"
    return text[len(MARKER_TEXT):] if text.startswith(MARKER_TEXT) else "?"
