"""Median wall time of one call: warm up, synchronise, repeat, keep every sample. The one timer of the
benchmarks (the sweep here, ``benchmarks/*.py``, ``tools/smoke_timing.py``).

CPU: ``time.perf_counter`` around each call. CUDA: CUDA events around blocks of calls (so launch gaps count
but the host's clock resolution does not), every block queued before one synchronisation. Calls slower
than ``slow_s`` are repeated only a few times and their first call is kept as a sample: one-off start-up
costs are negligible next to a second of work, and a benchmark must not spend minutes on one baseline.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

FLUSH_BYTES = 256 * 2**20  # more than any GPU's L2 cache


@dataclass
class Timing:
    median_s: float
    min_s: float
    p25_s: float
    p75_s: float
    samples: list[float]
    result: object  # what the last call returned (the triplet count)


def _calls(fn: Callable[[], object], n: int) -> object:
    """``n`` calls; each result is dropped before the next call, as by a caller that uses and drops it (so
    no call runs with an earlier one's output still held), and the last returned."""
    for _ in range(n - 1):
        fn()
    return fn()


def _samples(
    fn: Callable[[], object], device: torch.device, inner: int, reps: int, flush: torch.Tensor | None
) -> tuple[list[float], object]:
    """``reps`` samples of seconds per call, each the mean over a block of ``inner`` calls."""
    out = None
    if device.type != "cuda":
        times = []
        for _ in range(reps):
            out = None
            t0 = time.perf_counter()
            out = _calls(fn, inner)
            times.append((time.perf_counter() - t0) / inner)
        return times, out
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for start, end in events:
        out = None
        if flush is not None:
            flush.zero_()  # outside the events; the next launch overlaps it, so host overhead hides too
        start.record()
        out = _calls(fn, inner)
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1e3 / inner for start, end in events], out


def median_time(
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    *,
    min_time_s: float = 1.0,
    min_reps: int = 5,
    max_reps: int = 200,
    slow_s: float = 1.0,
    slow_reps: int = 3,
    warmup: int = 0,
    flush_l2: bool = False,
) -> Timing:
    """Median seconds per call of ``fn``. ``warmup`` untimed calls, then the first timed call, which also
    warms up (allocator, thread pool, lazy init); then blocks of calls until ``min_time_s`` has been
    spent, at least ``min_reps`` and at most ``max_reps`` blocks (``min_reps = max_reps``: exactly that
    many). ``flush_l2`` (CUDA only): one call per block, each after overwriting a buffer larger than the
    L2 cache, so every call starts cold, as it would in a network between other layers."""
    device = torch.device(device)
    flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device=device) if flush_l2 and device.type == "cuda" else None
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    (first,), out = _samples(fn, device, 1, 1, flush)
    if first >= slow_s:
        samples = [first]
        if slow_reps > 1:
            del out
            more, out = _samples(fn, device, 1, slow_reps - 1, flush)
            samples += more
    else:
        # CUDA: enough calls per block that one block lasts ~1 ms; CPU (or a flushed cache): one per sample.
        inner = max(1, int(1e-3 / max(first, 1e-7))) if device.type == "cuda" and flush is None else 1
        reps = int(min(max_reps, max(min_reps, min_time_s / max(first * inner, 1e-7))))
        del out
        samples, out = _samples(fn, device, inner, reps, flush)
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), min(samples), q[0], q[2], samples, out)
