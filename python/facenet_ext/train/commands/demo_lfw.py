"""The demo's LFW line: View 1 accuracy of the newest finished View 1 run under ``runs/`` or the demo's
folder, or of a short run made now in the demo's folder, when LFW is in the data folder
(:func:`facenet_ext.paths.shared_data_dir`: ``$FACENET_EXT_DATA``, else a ``shared/data`` folder in the
current directory or one of its parents); without LFW, a line saying it was skipped and where to put it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ... import paths
from .demo_notes import note
from .train import add_arguments, run

# A short View 1 run for the demo: the LFW recipe for 60 steps (about a minute on 2 cores, after the
# one-off image cache), so the line shows the pipeline, not the recipe's accuracy.
SHORT_RUN = ["--epochs", "1", "--steps-per-epoch", "60", "--no-progress"]


def latest_view1_run(*folders: Path) -> Path | None:
    """The newest ``FOLDER/*/metrics.json`` of a finished ``--protocol view1`` run, over ``folders``
    (default ``runs``)."""
    files = [f for folder in folders or (Path("runs"),) for f in folder.glob("*/metrics.json")]
    found = []
    for f in files:
        try:
            metrics = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("config", {}).get("protocol") == "view1" and "after" in metrics:
            found.append((f.stat().st_mtime, f))
    return max(found)[1] if found else None


# What the demo prints instead of the line when there is no LFW to evaluate on.
NO_LFW = (
    "LFW View 1: skipped, no lfw/ folder found (set $FACENET_EXT_DATA to a folder holding lfw/, or put a "
    "shared/data folder with lfw/ in the current folder or one above it)"
)


def format_line(metrics: dict, source: str) -> str:
    """The LFW line, with a note on its own line where a metric is below raw pixels (a short run)."""
    a, raw = metrics["after"], metrics["raw_pixels"]
    line = (
        f"LFW View 1 (1000 DevTest pairs, 10-fold): accuracy {a['accuracy_10fold']:.3f}, AUC {a['auc']:.3f}, "
        f"VAL@FAR=1e-3 {a['val_at_far_1e-3']:.3f} (raw pixels {raw['accuracy_10fold']:.3f} / {raw['auc']:.3f}; "
        f"{metrics['steps']} steps) - {source}"
    )
    below = note(metrics, f"LFW after {metrics['steps']} steps")
    return line if below is None else f"{line}\n{below}"


def lfw_line(out: Path, runs: Path = Path("runs")) -> str | None:
    """The line, or :data:`NO_LFW` without the data, or None when the short run failed (it printed why).
    It reuses the newest finished View 1 run under ``runs`` or ``out``; without one it trains a short one
    into ``out/lfw-view1``."""
    try:
        data = paths.shared_data_dir()
    except FileNotFoundError:
        return NO_LFW
    if data is None or not (data / "lfw").is_dir():
        return NO_LFW
    previous = latest_view1_run(runs, out)
    if previous is not None:
        return format_line(json.loads(previous.read_text()), f"from the last View 1 run, {previous.parent}")
    run_dir = out / "lfw-view1"
    print(
        f"LFW found at {data / 'lfw'}: a short View 1 run into {run_dir} (train --protocol view1 gives the full recipe)"
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    if run(
        parser.parse_args(
            ["--data", str(data / "lfw"), "--protocol", "view1", "--out", str(run_dir), "--overwrite", *SHORT_RUN]
        )
    ):
        return None
    return format_line(json.loads((run_dir / "metrics.json").read_text()), f"short run, {run_dir}")
