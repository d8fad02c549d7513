"""The demo's LFW line: View 1 accuracy of the newest View 1 run under ``runs/``, or of a short run
made now, when the real face data is present (``FACENET_EXT_DATA`` or ``../shared/data``)."""
from __future__ import annotations

import json
from pathlib import Path

# A short View 1 run for the demo: the LFW recipe for 60 steps (about a minute on 2 cores, after the
# one-off image cache), so the line shows the pipeline, not the recipe's accuracy.
SHORT_RUN = ["--epochs", "1", "--steps-per-epoch", "60", "--no-progress"]


def latest_view1_run(runs: Path = Path("runs")) -> Path | None:
    """The newest ``runs/*/metrics.json`` of a finished ``--protocol view1`` run."""
    found = []
    for f in runs.glob("*/metrics.json"):
        try:
            metrics = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("config", {}).get("protocol") == "view1" and "after" in metrics:
            found.append((f.stat().st_mtime, f))
    return max(found)[1] if found else None


def format_line(metrics: dict, source: str) -> str:
    a, raw = metrics["after"], metrics["raw_pixels"]
    return (f"LFW View 1 (1000 DevTest pairs, 10-fold): accuracy {a['accuracy_10fold']:.3f}, AUC {a['auc']:.3f}, "
            f"VAL@FAR=1e-3 {a['val_at_far_1e-3']:.3f} (raw pixels {raw['accuracy_10fold']:.3f} / {raw['auc']:.3f}; "
            f"{metrics['steps']} steps) - {source}")


def lfw_line(runs: Path = Path("runs")) -> str | None:
    """The line, or None without the data (the demo then says nothing about LFW)."""
    from ..paths import shared_data_dir

    try:
        data = shared_data_dir()
    except FileNotFoundError:
        return None
    if data is None or not (data / "lfw").is_dir():
        return None
    previous = latest_view1_run(runs)
    if previous is not None:
        return format_line(json.loads(previous.read_text()), f"from the last View 1 run, {previous.parent}")
    from .cli import add_arguments, run
    import argparse

    out = runs / "demo-lfw-view1"
    print(f"LFW found at {data / 'lfw'}: a short View 1 run into {out} (train --protocol view1 gives the full recipe)")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    if run(parser.parse_args(["--data", str(data / "lfw"), "--protocol", "view1", "--out", str(out), "--overwrite", *SHORT_RUN])):
        return None
    return format_line(json.loads((out / "metrics.json").read_text()), f"short run, {out}")
