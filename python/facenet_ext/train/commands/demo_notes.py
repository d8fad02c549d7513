"""What the demo says about its own numbers. Its runs are pipeline checks (the quick recipe on the digits,
60 steps on LFW View 1), so a trained metric below raw pixels is expected there, not a failure; the demo
says so next to the number instead of leaving a new user to wonder. The trained recipes' results are in
RESULTS.md."""

from __future__ import annotations

KEYS = ("val_at_far_1e-3", "accuracy_10fold", "auc")


def below_raw_pixels(metrics: dict) -> list[str]:
    """The headline metrics of ``metrics.json`` where the trained model scores below raw pixels."""
    after, raw = metrics["after"], metrics["raw_pixels"]
    return [k for k in KEYS if after[k] < raw[k]]


def note(metrics: dict, what: str) -> str | None:
    """One line saying which metrics are below raw pixels and why that is expected, or None."""
    below = below_raw_pixels(metrics)
    if not below:
        return None
    return (
        f"note: {what}: {', '.join(below)} below raw pixels. This short run shows that the pipeline works, "
        "not what the recipe reaches (RESULTS.md has the trained results)"
    )
