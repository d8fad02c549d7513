"""Parametrisation over devices and dtypes from one place: adding a device or dtype is one line here."""

import pytest
import torch

import facenet_ext as fx


def _cuda_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    if not fx.build_info()["cuda_kernels"]:
        return "facenet_ext was built without CUDA kernels"
    return None


# None when the CUDA tests can run; otherwise why not. A GPU alone is not enough: a CPU-only build of
# the extension on a GPU machine must skip the CUDA tests, not fail them.
CUDA_SKIP_REASON = _cuda_skip_reason()
CUDA_MARKS = [pytest.mark.cuda, pytest.mark.skipif(CUDA_SKIP_REASON is not None, reason=str(CUDA_SKIP_REASON))]

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=CUDA_MARKS)]

FULL = (torch.float32, torch.float64)
HALF = (torch.float16, torch.bfloat16)
ALL_FLOATS = FULL + HALF


def devices():
    """@devices(): the test takes a `device` argument, once per backend; CUDA skips cleanly without a GPU."""
    return pytest.mark.parametrize("device", DEVICES)


def requires_cuda(test):
    """@requires_cuda: a CUDA-only test (CPU vs GPU parity); skips unless a GPU and CUDA kernels are both
    present. For a whole module: `pytestmark = CUDA_MARKS`."""
    for mark in CUDA_MARKS:
        test = mark(test)
    return test


def dtypes(*types: torch.dtype):
    """@dtypes(torch.float32, ...): the test takes a `dtype` argument, named by its short name in test ids."""
    return pytest.mark.parametrize("dtype", types, ids=[str(t).removeprefix("torch.") for t in types])
