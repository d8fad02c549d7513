"""Time the public ops at FaceNet's batch size (B = 1800, D = 128, 45 identities x 40) and count, with
torch.profiler, the kernel launches and host syncs one call costs. Used by tools/gpu_smoke.sh.

    python tools/smoke_timing.py [--device cuda] [--reps 30] [--json out.json]

Prints one line per op: median wall time per call over --reps samples after 5 warm-ups
(facenet_ext.bench.timing.median_time: on a GPU, CUDA events around blocks of back-to-back calls, so host
overhead is included as a user sees it), launches and syncs per call.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

import facenet_ext as fx
from facenet_ext.bench.timing import median_time

LAUNCH = (
    "cudaLaunchKernel",
    "cuLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernelEx",
    "cudaLaunchCooperativeKernel",
)
# Runtime calls after which the host waits for the device. A D2H cudaMemcpyAsync into pageable memory
# (`.item()`, `.cpu()`, a size read) is followed by cudaStreamSynchronize, which is what we count.
SYNC = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def median_us(fn, device: str, reps: int, warmup: int = 5) -> float:
    t = median_time(fn, device, min_time_s=0, min_reps=reps, max_reps=reps, slow_reps=reps, warmup=warmup)
    return t.median_s * 1e6


def per_call_counts(fn, device: str, calls: int = 5) -> tuple[float, float]:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(calls):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    launches = sum(n in LAUNCH for n in names)
    syncs = sum(n in SYNC for n in names) - (1 if device == "cuda" else 0)  # our own final synchronize
    return launches / calls, syncs / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--B", type=int, default=1800)
    parser.add_argument("--json")
    args = parser.parse_args()
    dev, B = args.device, args.B
    gen = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(B, 128, generator=gen), dim=1).to(dev)
    labels = torch.arange(B // 40 + 1).repeat_interleave(40)[:B].to(dev)
    leaf = emb.clone().requires_grad_()

    def loss_fwd_bwd():
        leaf.grad = None
        fx.triplet_loss(leaf, labels, 0.2).backward()

    cases = {
        "pairwise_sq_dist": lambda: fx.pairwise_sq_dist(emb),
        "semi_hard_triplets": lambda: fx.semi_hard_triplets(emb, labels),
        "batch_hard_triplets": lambda: fx.batch_hard_triplets(emb, labels),
        "triplet_loss fwd+bwd": loss_fwd_bwd,
    }
    results = {}
    for name, fn in cases.items():
        us = median_us(fn, dev, args.reps)
        launches, syncs = per_call_counts(fn, dev)
        results[name] = {"median_us": us, "launches_per_call": launches, "syncs_per_call": syncs}
        print(f"{name} B={B} {dev}: median {us:.0f} us, {launches:g} launches, {syncs:g} syncs per call", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": dev, "B": B, "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
