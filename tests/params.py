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


_CUDA_SKIP = _cuda_skip_reason()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(_CUDA_SKIP is not None, reason=str(_CUDA_SKIP))]
    ),
]

FULL = (torch.float32, torch.float64)
HALF = (torch.float16, torch.bfloat16)
ALL_FLOATS = FULL + HALF


def devices():
    """@devices(): the test takes a `device` argument, once per backend; CUDA skips cleanly without a GPU."""
    return pytest.mark.parametrize("device", DEVICES)


def dtypes(*types: torch.dtype):
    """@dtypes(torch.float32, ...): the test takes a `dtype` argument, named by its short name in test ids."""
    return pytest.mark.parametrize("dtype", types, ids=[str(t).removeprefix("torch.") for t in types])
