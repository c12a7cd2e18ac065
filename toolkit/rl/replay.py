"""Replay buffer of past transitions (or any other items) for batched updates.

Items are stored as given (no copy).  For checkpoints, `ReplayBuffer.state_dict` encodes them as
JSON-serialisable values: numpy arrays become ``{"__ndarray__": nested list, "dtype": str, "shape":
list}`` and come back from `ReplayBuffer.load_state_dict` as arrays of that dtype and shape (bool,
integer or float64 in practice; items produced by float64 maths round-trip bit-for-bit); numpy
scalars become Python numbers; tuples become lists; dicts (string keys), lists, Python numbers,
strings, bools and None are kept.  Anything else raises ``ValueError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlmpc.toolkit.rl.checks import integer

__all__ = ["ReplayBuffer"]

_ARRAY_TAG = "__ndarray__"


def _encode(item: Any, path: str) -> Any:
    if isinstance(item, np.ndarray):
        if item.dtype.kind not in "biuf":
            raise ValueError(f"{path}: cannot serialise a numpy array of dtype {item.dtype}")
        return {_ARRAY_TAG: item.tolist(), "dtype": item.dtype.str, "shape": list(item.shape)}
    if isinstance(item, np.generic):
        return _encode(item.item(), path)
    if item is None or isinstance(item, bool | int | float | str):
        return item
    if isinstance(item, Mapping):
        out = {}
        for key, value in item.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: expected string keys, got {key!r}")
            out[key] = _encode(value, f"{path}.{key}")
        return out
    if isinstance(item, list | tuple):
        return [_encode(value, f"{path}[{i}]") for i, value in enumerate(item)]
    raise ValueError(f"{path}: cannot serialise an object of type {type(item).__name__}")


def _decode(item: Any) -> Any:
    if isinstance(item, Mapping):
        if _ARRAY_TAG in item:
            dtype = np.dtype(item.get("dtype", "float64"))
            return np.array(item[_ARRAY_TAG], dtype=dtype).reshape(item.get("shape", -1))
        return {key: _decode(value) for key, value in item.items()}
    if isinstance(item, list):
        return [_decode(value) for value in item]
    return item


class ReplayBuffer:
    """First-in-first-out buffer of at most ``capacity`` items.

    `sample` returns the ``include_latest`` most recent items (oldest first) followed by up to
    ``sample_size − include_latest`` items drawn uniformly without replacement from the older ones.
    """

    def __init__(self, capacity: int, sample_size: int, include_latest: int = 0) -> None:
        self.capacity = integer(capacity, "capacity", 1)
        self.sample_size = integer(sample_size, "sample_size", 1)
        self.include_latest = integer(include_latest, "include_latest", 0)
        if self.sample_size > self.capacity:
            raise ValueError(f"sample_size: expected at most capacity ({capacity}), got {sample_size}")
        if self.include_latest > self.sample_size:
            raise ValueError(
                f"include_latest: expected at most sample_size ({sample_size}), got {include_latest}"
            )
        self._items: deque[Any] = deque(maxlen=self.capacity)
        self.total_added = 0
        """Number of items ever appended (including those dropped since)."""

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: Any) -> None:
        """Add an item, dropping the oldest one if the buffer is full."""
        self._items.append(item)
        self.total_added += 1

    def clear(self) -> None:
        """Remove all items."""
        self._items.clear()

    def sample(self, rng: np.random.Generator) -> list[Any]:
        """The latest items plus a uniform sample of the older ones (fewer if there are not enough)."""
        items = list(self._items)
        n_latest = min(self.include_latest, len(items))
        older, latest = items[: len(items) - n_latest], items[len(items) - n_latest :]
        n_drawn = min(self.sample_size - n_latest, len(older))
        if n_drawn == 0:
            return latest
        if len(older) == 1:  # (the default buffer of one item: rng.choice(1, 1) is [0] and draws nothing)
            return latest + older
        drawn = rng.choice(len(older), size=n_drawn, replace=False)
        return latest + [older[i] for i in drawn]

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: the items (encoded, see the module docstring) and the counter."""
        return {
            "items": [_encode(item, f"replay item {i}") for i, item in enumerate(self._items)],
            "total_added": self.total_added,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the items (the newest ``capacity`` of them) and the counter."""
        items = state.get("items") if isinstance(state, Mapping) else None
        if not isinstance(items, list):
            raise ValueError(f"state_dict.items: expected a list, got {items!r}")
        self._items = deque((_decode(item) for item in items), maxlen=self.capacity)
        self.total_added = integer(state.get("total_added", len(items)), "state_dict.total_added", 0)
