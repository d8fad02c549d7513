"""L2 pooling benchmark: fx.l2_pool2d against F.pad + F.lp_pool2d and against the reference
formula (F.pad + square + avg_pool2d * k^2 + sqrt) evaluated in float32, on FaceNet NN2-sized inputs.

    python benchmarks/bench_l2_pool.py [--device cpu|cuda] [--threads 2]

Prints one markdown table of median times and speed-ups (baseline time / fx time), timed by
facenet_ext.bench.timing.median_time. CPU: --threads threads. CUDA: CUDA events around each call with the
L2 cache flushed in between; forward time is also set against its memory-bandwidth floor, (bytes read +
bytes written) / the device-to-device copy bandwidth measured in the same run. The memory each
forward+backward allocates besides its input and grad_out is listed too (CUDA: peak; CPU: sum).
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F

import facenet_ext as fx
from facenet_ext.bench.timing import median_time

# (name, input shape, kernel, stride, padding): the 3x3 pooling of NN2's inception (3a) and a strided one.
CASES = [
    ("N=32 C=192 28x28, 3x3/s1/p1", (32, 192, 28, 28), 3, 1, 1),
    ("N=32 C=64 56x56, 3x3/s2/p1", (32, 64, 56, 56), 3, 2, 1),
]


def implementations(k: int, s: int, p: int) -> dict:
    return {
        "fx.l2_pool2d": lambda x: fx.l2_pool2d(x, k, s, p),
        "F.pad + F.lp_pool2d": lambda x: F.lp_pool2d(F.pad(x, (p, p, p, p)), 2, k, s),
        "formula (pad, square, avg_pool2d, sqrt)": lambda x: (
            F.avg_pool2d(F.pad(x, (p, p, p, p)).square(), k, s) * (k * k)
        ).sqrt(),
    }


def forward_backward(fn, x, g):
    return torch.autograd.grad(fn(x), x, g)


# ---------------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------------
def median_ms(device: torch.device, fn, *args) -> float:
    """Median milliseconds of fn(*args). CUDA: 100 single calls, each on a cold L2 cache, which is what the
    bandwidth floor assumes (the input would otherwise stay cached between calls)."""
    if device.type == "cuda":
        t = median_time(lambda: fn(*args), device, min_time_s=0, min_reps=100, max_reps=100, warmup=10, flush_l2=True)
    else:
        t = median_time(lambda: fn(*args), device)
    return t.median_s * 1e3


def copy_bandwidth(device: torch.device) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read and written."""
    src = torch.empty(1024 * 2**20, dtype=torch.int8, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() / (median_ms(device, dst.copy_, src) * 1e-3)


def allocated_mb(fn, x, g) -> float:
    """Memory fn(x, g) allocates besides x and g. CUDA: the peak above what was allocated before; CPU: the
    sum of every allocation the profiler records (the CPU allocator keeps no peak)."""
    if x.is_cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(x, g)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x, g)
    return sum(max(e.self_cpu_memory_usage, 0) for e in prof.key_averages()) / 2**20


# ---------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("bench_l2_pool: --device cuda but no CUDA device is available")
        bandwidth = copy_bandwidth(device)
        where = f"{torch.cuda.get_device_name()}, copy bandwidth {bandwidth / 1e12:.2f} TB/s (read + write)"
    else:
        torch.set_num_threads(args.threads)
        where = f"CPU, {args.threads} threads"
    print(f"# l2_pool2d, float32, {where}; torch {torch.__version__}\n")

    header = ["case", "implementation", "forward ms", "fwd+bwd ms", "fx speed-up fwd", "fx speed-up fwd+bwd"]
    header += ["fwd+bwd MB allocated"]
    if device.type == "cuda":
        header += ["fwd / bandwidth floor"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    needed_mb = []
    for name, shape, k, s, p in CASES:
        x = torch.randn(shape, device=device)
        xg = x.clone().requires_grad_()
        g = torch.randn_like(fx.l2_pool2d(x, k, s, p))
        moved = (x.numel() + g.numel()) * x.element_size()  # forward: read x once, write y once
        needed_mb.append(moved / 2**20)
        results = {}
        for impl, fn in implementations(k, s, p).items():
            torch.testing.assert_close(fn(x), fx.l2_pool2d(x, k, s, p), rtol=1e-4, atol=1e-5)
            fwd = median_ms(device, fn, x)  # x does not require grad: inference
            fb = median_ms(device, forward_backward, fn, xg, g)
            results[impl] = (fwd, fb)
            row = [name, impl, f"{fwd:.3f}", f"{fb:.3f}"]
            ours_fwd, ours_fb = results["fx.l2_pool2d"]
            row += [f"{fwd / ours_fwd:.2f}x", f"{fb / ours_fb:.2f}x"]
            row += [f"{allocated_mb(partial(forward_backward, fn), xg, g):.1f}"]
            if device.type == "cuda":
                floor_ms = moved / bandwidth * 1e3
                row += [f"{fwd / floor_ms:.2f} (floor {floor_ms:.3f} ms)" if impl == "fx.l2_pool2d" else ""]
            print("| " + " | ".join(row) + " |", flush=True)
    print(
        "\nspeed-up = implementation's median time / fx.l2_pool2d's median time (same inputs, same run). "
        f"MB allocated ({'peak' if device.type == 'cuda' else 'sum of all allocations'}) counts the output and "
        "the input gradient, which alone take " + " and ".join(f"{mb:.1f}" for mb in needed_mb) + " MB."
    )


if __name__ == "__main__":
    main()
