"""ROC figures. Drawn on an Agg canvas without pyplot, so plotting never changes the caller's
matplotlib backend or global figure state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def plot_roc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike = "roc.png",
    *,
    far_marks: tuple[float, ...] = (1e-3, 1e-2),
) -> Path:
    """Write VAL against FAR (log axis) for each ``name -> (far, val)`` in ``curves`` to ``path`` (PNG),
    with dotted lines at ``far_marks``. Points at FAR = 0 have no place on a log axis: the axis starts at
    the smallest positive FAR. Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_roc: curves is empty")
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    smallest = 1.0
    for name, (far, val) in curves.items():
        far, val = np.asarray(far, dtype=np.float64), np.asarray(val, dtype=np.float64)
        if far.shape != val.shape or far.ndim != 1:
            raise ValueError(
                f"plot_roc: curve {name!r} needs 1-D far and val of one length, got {far.shape}, {val.shape}"
            )
        positive = far > 0
        if positive.any():
            smallest = min(smallest, float(far[positive].min()))
        ax.plot(far[positive], val[positive], drawstyle="steps-post", label=name)
    for x in far_marks:
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(min((smallest, *far_marks)) / 2, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("FAR (false accept rate)")
    ax.set_ylabel("VAL (validation rate)")
    ax.set_title("Verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
