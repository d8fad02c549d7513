"""The CUDA emulator of the tests (tests/emulated/cuda_emu.h) checked on its own small kernels
(tests/emulated/selftest.cpp): warp calls and cub stand-ins compute what CUDA's do, every schedule gives
the same answer to a correct kernel, and each diagnostic fires on the fault it names."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest
import torch

import cuda_emulator as emu

pytestmark = pytest.mark.skipif(emu.skip_reason() is not None, reason=str(emu.skip_reason()))
THREADS = 64


def selftest(name: str, *args) -> None:
    lib = emu.library()
    if getattr(lib, name)(*args) != 0:
        raise emu.EmulatorError(lib.emu_selftest_error().decode())


def ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


@pytest.fixture(params=["forward", "reverse", "shuffled"])
def schedule(request):
    emu.set_schedule(request.param, seed=1234)
    yield request.param
    emu.set_schedule("forward")


def test_warp_calls(schedule):
    v = torch.randint(-1000, 1000, (THREADS,), dtype=torch.int32)
    out = torch.full((THREADS, 6), -1, dtype=torch.int32)
    selftest("emu_selftest_warp_calls", ptr(v), ptr(out))
    for t in range(THREADS):
        base, lane = t - t % 32, t % 32
        warp = v[base : base + 32].tolist()
        ballot = sum(1 << k for k in range(32) if warp[k] & 1)
        half = 0x0000FFFF if lane < 16 else 0xFFFF0000
        want = [
            warp[3],
            warp[lane - 1] if lane >= 1 else warp[lane],  # out-of-range lanes keep their own value
            warp[lane + 1] if lane <= 30 else warp[lane],
            warp[lane ^ 5],
            ctypes.c_int32(ballot).value,
            ctypes.c_int32(half).value,
        ]
        assert out[t].tolist() == want, t


def test_cub_stand_ins(schedule):
    v = torch.randint(-50, 50, (THREADS,), dtype=torch.int64)
    out = torch.zeros(THREADS, 3, dtype=torch.int64)
    selftest("emu_selftest_cub", ptr(v), ptr(out))
    assert out[0, 0] == v.sum()
    assert (out[1:, 0] == 0x7F7F7F7F7F7F7F7F).all()  # cub leaves the reduction undefined outside thread 0
    assert torch.equal(out[:, 1], v.cumsum(0))
    assert torch.equal(out[:, 2], v.cumsum(0) - v)


def test_the_schedule_exposes_a_missing_barrier():
    v = torch.arange(THREADS, dtype=torch.int32) * 10 + 3
    neighbour = torch.roll(v, -1)
    results = {}
    for mode in ("forward", "reverse", "shuffled"):
        emu.set_schedule(mode, seed=99)
        try:
            for barrier in (1, 0):
                out = torch.zeros(THREADS, dtype=torch.int32)
                selftest("emu_selftest_neighbour", ctypes.c_int(barrier), ptr(v), ptr(out))
                results[mode, barrier] = out
        finally:
            emu.set_schedule("forward")
        assert torch.equal(results[mode, 1], neighbour)
    # Without the barrier, some schedule reads a neighbour's slot before it was written.
    assert any(not torch.equal(results[mode, 0], neighbour) for mode in ("forward", "reverse", "shuffled"))


@pytest.mark.parametrize(
    "which,message",
    [
        (0, "deadlock"),
        (1, "meet at different warp calls"),
        (2, "which has exited"),
        (3, "never reached by 1 thread"),
        (4, "instantiated for 64 threads runs in a block of 128"),
        (5, "CUDA_KERNEL_ASSERT"),
    ],
    ids=["deadlock", "divergent-sites", "exited-lane", "barrier-after-exit", "cub-block-size", "assert"],
)
def test_diagnostics(which, message):
    with pytest.raises(emu.EmulatorError, match=message):
        selftest("emu_selftest_fault", ctypes.c_int(which))
    # The emulator is usable again after a failed launch.
    ones, out = torch.ones(THREADS, dtype=torch.int64), torch.zeros(THREADS, 3, dtype=torch.int64)
    selftest("emu_selftest_cub", ptr(ones), ptr(out))
    assert out[0, 0] == THREADS


def test_dynamic_shared_memory_is_sized_as_launched():
    selftest("emu_selftest_dynamic_smem", ctypes.c_int64(48), ctypes.c_int64(47))


@pytest.mark.skipif(not emu.SANITIZE, reason="needs the ASan build (tools/emulated_sanitized.sh)")
def test_dynamic_shared_memory_overflow_is_caught_by_asan():
    """One byte past the launch's dynamic shared memory aborts under ASan (run in a child process)."""
    code = (
        "import ctypes, sys; sys.path.insert(0, 'tests'); import cuda_emulator as e; "
        "e.library().emu_selftest_dynamic_smem(ctypes.c_int64(48), ctypes.c_int64(48))"
    )
    root = emu.ROOT
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode != 0
    assert "heap-buffer-overflow" in proc.stderr
