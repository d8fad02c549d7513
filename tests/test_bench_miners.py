"""pytest-benchmark versions of the key cases of ``bench_miners.py``, for tracking over time.

    .venv/bin/python -m pytest tests/test_bench_miners.py --benchmark-only --benchmark-columns=median,iqr,rounds

Not part of the default test run (conftest.py skips timing benchmarks without --benchmark-only). CPU,
2 threads, B = 1800, K = 40, D = 128; the slow baselines run a fixed few rounds.
"""

import pytest
import torch

from facenet_ext.bench.methods import BY_KEY
from facenet_ext.bench.workload import Workload

FAST = ["cdist", "fx.semihard", "fx.batch_hard", "fx.loss.semihard", "sort_searchsorted", "sort_searchsorted.loss"]
SLOW = ["pml.semihard", "pml.semihard.loss", "facenet_loop"]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch():
    return Workload(batch=1800).make()


@pytest.mark.parametrize("key", FAST)
def test_fast(benchmark, batch, key):
    benchmark.group = "B=1800"
    benchmark(BY_KEY[key].make(*batch))


@pytest.mark.parametrize("key", SLOW)
def test_slow(benchmark, batch, key):
    pytest.importorskip("pytorch_metric_learning")
    benchmark.group = "B=1800"
    benchmark.pedantic(BY_KEY[key].make(*batch), rounds=3, iterations=1, warmup_rounds=0)


def test_semi_hard_16384(benchmark):
    benchmark.group = "B=16384"
    benchmark.pedantic(BY_KEY["fx.semihard"].make(*Workload(batch=16384).make()), rounds=3, iterations=1)
