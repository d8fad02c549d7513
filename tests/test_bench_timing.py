"""bench.timing.median_time, the benchmarks' one timer: how many calls it makes and what it returns (never
how long anything takes)."""

import itertools

import pytest
import torch

from facenet_ext.bench.timing import median_time

from params import DEVICES


def counter():
    calls = itertools.count(1)
    return calls, lambda: next(calls)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("warmup", [0, 3])
def test_fixed_reps(device, warmup):
    calls, fn = counter()
    t = median_time(fn, device, min_time_s=0, min_reps=7, max_reps=7, warmup=warmup, flush_l2=True)
    assert len(t.samples) == 7
    # warm-ups, the first timed call, then the samples (CUDA with flush_l2: one call each); the last result
    assert t.result == warmup + 1 + 7
    assert next(calls) == t.result + 1
    assert t.min_s <= t.p25_s <= t.median_s <= t.p75_s


def test_slow_calls_keep_the_first_and_stop_at_slow_reps():
    t = median_time(counter()[1], "cpu", slow_s=0, slow_reps=2)
    assert len(t.samples) == 2 and t.result == 2
    t = median_time(counter()[1], "cpu", slow_s=0, slow_reps=1)
    assert len(t.samples) == 1 and t.result == 1 and t.median_s == t.p25_s == t.p75_s


@pytest.mark.parametrize("device", DEVICES)
def test_blocks_time_the_device_work(device):
    x = torch.randn(256, 256, device=device)
    t = median_time(lambda: x @ x, device, min_time_s=0.01, max_reps=20)
    assert 1 <= len(t.samples) <= 20 and all(s > 0 for s in t.samples)
    torch.testing.assert_close(t.result, x @ x)
