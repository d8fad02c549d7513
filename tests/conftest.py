"""Shared test setup: fresh random inputs every run (with the seed printed so a failure can be replayed),
and one hypothesis profile sized for the 2-core CI machine."""

import os
import random

import pytest
import torch
from hypothesis import HealthCheck, settings

# deadline=None: the first call of an op pays for thread-pool start-up, which is not what we test.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def fresh_seed(request):
    """A new torch seed per test and per run; FACENET_EXT_TEST_SEED=<n> replays the one a failure printed."""
    seed = int(os.environ.get("FACENET_EXT_TEST_SEED", random.randrange(2**31)))
    torch.manual_seed(seed)
    print(f"{request.node.nodeid}: FACENET_EXT_TEST_SEED={seed}")
    return seed


@pytest.fixture(scope="session")
def shared_data():
    """The real-face data folder (FACENET_EXT_DATA or ../shared/data); tests that need it skip without it."""
    from pathlib import Path

    from facenet_ext.paths import shared_data_dir

    path = shared_data_dir(Path(__file__).resolve().parents[1])
    if path is None:
        pytest.skip("real-face data not found: set FACENET_EXT_DATA or put a shared/data folder beside the checkout")
    return path


def pytest_collection_modifyitems(config, items):
    """Timing benchmarks (tests that take pytest-benchmark's ``benchmark`` fixture, as in
    test_bench_miners.py) take minutes and measure rather than check: the default run skips them, and
    ``--benchmark-only`` runs them alone."""
    if config.getoption("benchmark_only", default=False):
        return
    skip = pytest.mark.skip(reason="timing benchmark: run it with --benchmark-only (needs pytest-benchmark)")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
