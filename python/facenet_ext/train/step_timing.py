"""Where a training step's time goes: data, network forward, mining, loss, backward, optimiser.

The loop calls :meth:`StepTimer.start` at the top of a step and :meth:`StepTimer.mark` at the end of
each phase, so the phases partition the step: their sum is the step's wall time by construction. On the
CPU every op runs synchronously, so a phase's time is the time of its own ops (on a GPU it would be the
time to queue them). The fused all-semi-hard loss never lists its triplets: its mining is counted in
"loss". A margin-softmax step (ArcFace, MagFace) has no mining; its head is its "loss".
"""

from __future__ import annotations

import time

PHASES = ("data", "forward", "mining", "loss", "backward", "optimizer")


class StepTimer:
    """Seconds per phase summed over steps; ``steps`` counted by :meth:`end_step`."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.steps = 0
        self._last = None

    def start(self) -> None:
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        """The time since the previous mark (or :meth:`start`) goes to ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now

    def end_step(self) -> None:
        self.steps += 1

    def to_dict(self) -> dict:
        """Mean ms per step and share of the step, per phase, and the mean step time."""
        total = sum(self.seconds.values())
        per_step = 1e3 / max(1, self.steps)
        return {
            "steps": self.steps,
            "step_ms": total * per_step,
            "phases": {
                k: {"ms": v * per_step, "percent": 100 * v / total if total else 0.0} for k, v in self.seconds.items()
            },
        }


def breakdown_table(d: dict) -> str:
    """The ``to_dict`` of a timer as a few lines of text."""
    lines = [f"time per training step (mean of {d['steps']} steps): {d['step_ms']:.1f} ms"]
    for name, v in d["phases"].items():
        lines.append(f"  {name:<10} {v['ms']:8.2f} ms  {v['percent']:5.1f} %")
    return "\n".join(lines)
