"""Output folders of rlmpc's commands: never a folder of the user's own files.

A command writes into a folder that is new or empty, or that a *completed* run of the same
command wrote before (it holds the marker file saying so).  Anything else is refused in one line
before anything is written, the marker included.  The marker says ``running`` from the moment
a command claims a new or empty folder until :func:`complete_output_folder` marks it ``complete``
(after the last file, also after a partial report on Ctrl-C); a folder left ``running`` (a crash)
is reused only to resume (``resume=True``, e.g. ``rlmpc train --resume``), if it holds nothing
but the marker, or if it holds none of the command's ``progress`` files (a run that failed before
its first checkpoint left nothing to continue: its own exports are written again).  Bundles have their
own, stricter rule: :mod:`rlmpc.codegen.bundle_folder`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MARKER = ".rlmpc-output"
MARKER_TEXT = "an output folder of rlmpc "
RUNNING, COMPLETE = "running", "complete"
SHOWN = 4


def read_marker(folder: Path) -> tuple[str, str] | None:
    """``(command, state)`` of the marker in ``folder`` (None if there is none; ``("?", "?")`` if
    unreadable).  A one-line marker of an earlier version counts as complete."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        lines = marker.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "?", "?"
    if not lines or not lines[0].startswith(MARKER_TEXT):
        return "?", "?"
    state = lines[1].strip() if len(lines) > 1 else COMPLETE
    return lines[0][len(MARKER_TEXT):].strip(), state


def check_output_folder(folder: str | Path, command: str, own: Iterable[str] = (), *,
                        resume: bool = False, progress: Iterable[str] = ()) -> Path:
    """Refuse (one-line ValueError) a ``folder`` that ``command`` may not write into; nothing is
    written.  ``own`` is kept for the callers' documentation of what they write; ``progress``: the
    files of an unfinished run that ``--resume`` continues (none there: the folder is reusable)."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: output folder: exists and is not a folder")
    if not out.is_dir():
        return out
    names = sorted(p.name for p in out.iterdir())
    mark = read_marker(out)
    if mark is None:
        if names:
            more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
            raise ValueError(f"{out}: output folder: holds files rlmpc {command} did not write "
                             f"({', '.join(names[:SHOWN])}{more}) and no marker of a completed rlmpc "
                             f"{command} run; choose a new or empty folder")
        return out
    by, state = mark
    if by != command:
        raise ValueError(f"{out}: output folder: written by rlmpc {by}, not {command}; choose another folder")
    progress = tuple(progress)
    left = [name for name in progress if name in names]
    if state != COMPLETE and not resume and names != [MARKER] and (left or not progress):
        # (a run that wrote nothing yet, or nothing to continue from: reusable)
        how = f"continue it with --resume ({left[0]} is there), " if left else ""
        raise ValueError(f"{out}: output folder: an unfinished rlmpc {command} run (its marker says "
                         f"{state!r}); {how}remove the folder or choose another")
    return out


def claim_output_folder(folder: str | Path, command: str, own: Iterable[str] = (), *,
                        resume: bool = False, progress: Iterable[str] = ()) -> Path:
    """``folder`` as the output folder of ``command``: checked (:func:`check_output_folder`),
    created, marked ``running`` unless a completed run's marker is there."""
    out = check_output_folder(folder, command, own, resume=resume, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    if read_marker(out) is None:
        _write(out, command, RUNNING)
    return out


def complete_output_folder(folder: str | Path, command: str) -> None:
    """Mark ``folder`` as written by a completed run of ``command``."""
    _write(Path(folder), command, COMPLETE)


def _write(out: Path, command: str, state: str) -> None:
    (out / MARKER).write_text(f"{MARKER_TEXT}{command}\n{state}\n", encoding="utf-8")
