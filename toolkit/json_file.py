"""Reading a JSON file a user gave: every failure is one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path, what: str) -> Any:
    """The parsed content of ``path``; ``what`` names the file in messages (e.g. ``θ file``)."""
    src = Path(path)
    try:
        return json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{src}: no such {what}") from None
    except IsADirectoryError:
        raise ValueError(f"{src}: a folder; expected a {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{src}: cannot read the {what} ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{src}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
