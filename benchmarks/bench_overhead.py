"""Per-call cost at every batch size: our miner and loss against torch.cdist (the floor of any exact
miner) and pytorch-metric-learning's miner + loss, in one process, on the same inputs, with the profiler
events each call records. The rows of the "one native call per op" targets in BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_overhead.py [--threads 2] [--batches 64,256,1800] [--embeddings facenet]

Timing: facenet_ext.bench.timing.median_time (medians over 0.2 s of calls, with --threads threads), the
methods of one batch size interleaved over several rounds so that a load change hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import facenet_ext as fx
from facenet_ext.bench.timing import median_time
from facenet_ext.bench.workload import Workload


def problem(batch: int, embeddings: str = "random", dim: int = 128, per_identity: int = 40):
    """ "random": unit vectors with no identity structure (an untrained network; the targets' rows).
    "facenet": the benchmark workload's identities, each a cluster about its own centre (a network that
    has learned something), as in bench_miners.py. Labels 0..B/K-1 in blocks of K either way."""
    k = min(per_identity, max(2, batch // 8))
    if embeddings == "facenet":
        return Workload(batch=batch, per_id=k, seed=batch).make()
    g = torch.Generator().manual_seed(batch)
    emb = F.normalize(torch.randn(batch, dim, generator=g), dim=1)
    return emb, torch.arange(batch) // k


def methods(emb: torch.Tensor, labels: torch.Tensor) -> dict:
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner

    pml_miner, pml_loss = BatchHardMiner(), TripletMarginLoss(margin=0.2)
    leaf = emb.clone().requires_grad_()

    def fx_loss():
        fx.triplet_loss(leaf, labels).backward()

    def pml():
        pml_loss(leaf, labels, pml_miner(leaf, labels)).backward()

    return {
        "torch.cdist": lambda: torch.cdist(emb, emb),
        "fx.semi_hard_triplets": lambda: fx.semi_hard_triplets(emb, labels),
        "fx.triplet_loss fwd+bwd": fx_loss,
        "PML BatchHard + TripletMarginLoss fwd+bwd": pml,
    }


def events(fn) -> int:
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:  # prints two USDT lines on stderr
        fn()
    return len(prof.events())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,256,1800")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--embeddings", choices=("random", "facenet"), default="random", help="what the embeddings look like"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.embeddings} embeddings, "
        f"load average {os.getloadavg()}",
        file=sys.stderr,
    )
    print("| B | method | median | / torch.cdist | profiler events |")
    print("|---:|---|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        fns = methods(*problem(batch, args.embeddings))
        per_round = {name: [] for name in fns}
        for _ in range(args.rounds):  # interleaved
            for name, fn in fns.items():
                per_round[name].append(median_time(fn, min_time_s=0.2, max_reps=100_000).median_s)
        med = {name: statistics.median(v) for name, v in per_round.items()}
        for name, t in med.items():
            ev = events(fns[name]) if name.startswith("fx.") else ""
            print(f"| {batch} | {name} | {t * 1e3:.3f} ms | {t / med['torch.cdist']:.2f}x | {ev} |")
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
