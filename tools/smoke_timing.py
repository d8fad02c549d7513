"""Time the public ops at FaceNet's batch size (B = 1800, D = 128, 45 identities x 40) and count the
kernel launches and host syncs one call costs. Used by tools/gpu_smoke.sh (stage timing).

    python tools/smoke_timing.py [--device cuda] [--reps 30] [--json out.json]

Prints one line per op: median wall time per call over --reps samples after 5 warm-ups
(facenet_ext.bench.timing.median_time: on a GPU, CUDA events around blocks of back-to-back calls, so host
overhead is included as a user sees it), launches and syncs per call from torch.profiler (the CUDA
runtime's launch calls; its synchronize calls and synchronous copies), and on a GPU the syncs
torch.cuda.set_sync_debug_mode reports (the ones torch's own code makes: .item(), nonzero, ...). The
issue's targets (semi_hard_triplets < 100 us, the loss forward and backward < 300 us, on an H100) are
printed beside their times: "met" or "MISSED" on an H100, "n/a" elsewhere. The last line, "summary: ...",
is the smoke's summary of this stage. Missing a target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import re
import warnings

import torch
import torch.nn.functional as F

import facenet_ext as fx
from facenet_ext.bench.timing import median_time

# CUDA runtime/driver calls, by name as the profiler records them (some with a version suffix, such as
# cudaLaunchKernelExC_v11060). A D2H cudaMemcpyAsync into pageable memory (`.item()`, `.cpu()`, a size
# read) is followed by cudaStreamSynchronize, which is what we count.
LAUNCH = re.compile(r"^cu(da)?Launch")
SYNC = re.compile(r"^cuda(StreamSynchronize|DeviceSynchronize|EventSynchronize|Memcpy)(_v\d+)?$")
# The targets of issue 24 (B = 1800, D = 128, on an H100), in microseconds.
TARGETS_US = {"semi_hard_triplets": 100, "triplet_loss fwd+bwd": 300}


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
    launches = sum(1 for n in names if LAUNCH.match(n))
    syncs = sum(1 for n in names if SYNC.match(n)) - (1 if device == "cuda" else 0)  # our own final synchronize
    return launches / calls, syncs / calls


def sync_debug_count(fn, device: str, calls: int = 5) -> float | None:
    """Syncs per call that torch.cuda.set_sync_debug_mode("warn") reports; None off CUDA."""
    if device != "cuda":
        return None
    before = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(calls):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode(before)
    torch.cuda.synchronize()
    return sum(1 for w in caught if "synchroniz" in str(w.message)) / calls


def target_note(name: str, us: float, device: str, device_name: str) -> str:
    if name not in TARGETS_US:
        return ""
    target = TARGETS_US[name]
    if device == "cuda" and "H100" in device_name:
        verdict = "met" if us < target else "MISSED"
    else:
        verdict = f"n/a on {device_name}"
    return f" (H100 target < {target} us: {verdict})"


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
    device_name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    results, parts = {}, []
    for name, fn in cases.items():
        us = median_us(fn, dev, args.reps)
        launches, syncs = per_call_counts(fn, dev)
        debug_syncs = sync_debug_count(fn, dev)
        note = target_note(name, us, dev, device_name)
        results[name] = {
            "median_us": us,
            "launches_per_call": launches,
            "syncs_per_call": syncs,
            "sync_debug_warnings_per_call": debug_syncs,
            "target_us": TARGETS_US.get(name),
        }
        debug = "" if debug_syncs is None else f" ({debug_syncs:g} by sync debug mode)"
        print(
            f"{name} B={B} {dev}: median {us:.0f} us{note}, {launches:g} launches, {syncs:g} syncs{debug} per call",
            flush=True,
        )
        parts.append(f"{name} {us:.0f} us{note}, {launches:g} launches, {syncs:g} syncs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"device": dev, "device_name": device_name, "B": B, "torch": torch.__version__, "results": results},
                f,
                indent=1,
            )
    print(f"summary: B={B} on {device_name}, per call: " + "; ".join(parts))


if __name__ == "__main__":
    main()
