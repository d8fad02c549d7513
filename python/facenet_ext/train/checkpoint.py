"""Checkpoints: written atomically, read as data.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over the old
one, so an interrupted run (Ctrl-C, a killed job, a full disk) always leaves the last good checkpoint in
place. It is read with ``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT = "facenet_ext.train/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, of another format or of another config."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unpickling failure means the file is unusable)
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} has format {found!r}, expected {FORMAT!r}")
    return state


def check_same_config(saved: dict, current: dict, ignore: tuple[str, ...] = ()) -> None:
    """Resuming with a config that changes what is trained would not continue the same run."""
    diff = {
        k: (saved.get(k), current.get(k))
        for k in sorted(set(saved) | set(current))
        if k not in ignore and saved.get(k) != current.get(k)
    }
    if diff:
        lines = "\n  ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"the checkpoint was written with another config; resume with the same settings:\n  {lines}"
        )
