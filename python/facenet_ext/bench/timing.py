"""Median wall time of one call: warm up, synchronise, repeat, keep every sample.

CPU: ``time.perf_counter`` around each call. CUDA: CUDA events around blocks of calls (so launch gaps count
but the host's clock resolution does not), one synchronisation per block. Calls slower than
``slow_s`` are repeated only a few times and their first call is kept as a sample: one-off start-up
costs are negligible next to a second of work, and a benchmark must not spend minutes on one baseline.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    median_s: float
    min_s: float
    p25_s: float
    p75_s: float
    samples: list[float]
    result: object  # what the last call returned (the triplet count)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_block(fn: Callable[[], object], inner: int, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            out = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / inner, out
    t0 = time.perf_counter()
    for _ in range(inner):
        out = fn()
    return (time.perf_counter() - t0) / inner, out


def median_time(
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    *,
    min_time_s: float = 1.0,
    min_reps: int = 5,
    max_reps: int = 200,
    slow_s: float = 1.0,
    slow_reps: int = 3,
) -> Timing:
    """Median seconds per call of ``fn``. The first call warms up (allocator, thread pool, lazy init);
    then blocks of calls until ``min_time_s`` has been spent, at least ``min_reps`` blocks."""
    device = torch.device(device)
    _sync(device)
    first, out = _time_block(fn, 1, device)
    if first >= slow_s:
        samples = [first]
        for _ in range(slow_reps - 1):
            t, out = _time_block(fn, 1, device)
            samples.append(t)
    else:
        # CUDA: enough calls per block that one block lasts ~1 ms; CPU: one call per sample.
        inner = max(1, int(1e-3 / max(first, 1e-7))) if device.type == "cuda" else 1
        reps = int(min(max_reps, max(min_reps, min_time_s / max(first * inner, 1e-7))))
        samples = []
        for _ in range(reps):
            t, out = _time_block(fn, inner, device)
            samples.append(t)
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), min(samples), q[0], q[2], samples, out)
