"""Figures drawn for files, without pyplot.

``matplotlib.figure.Figure`` renders to PNG through its own Agg canvas, so plotting a run's
results neither switches matplotlib's global backend (which broke inline plots in notebooks
after ``Trainer.run()``) nor leaves figures registered with pyplot.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float],
             constrained_layout: bool = False, **kwargs: Any) -> tuple[Figure, Any]:
    """A new figure and its axes, like ``pyplot.subplots`` (``kwargs`` go to ``Figure.subplots``)."""
    fig = Figure(figsize=figsize, layout="constrained" if constrained_layout else None)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def figure(*, figsize: tuple[float, float]) -> Figure:
    """A new empty figure (for layouts built with ``add_subplot`` / ``add_gridspec``)."""
    return Figure(figsize=figsize)
