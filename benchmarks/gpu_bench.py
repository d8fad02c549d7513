"""GPU timings of every op against the issue-5 targets: medians of CUDA-event timings
(facenet_ext.bench.timing.median_time, blocks of calls lasting about 1 ms each).

    python benchmarks/gpu_bench.py [--out DIR] [--sizes 1800,8192,32768]

Prints a markdown table (device name included) and writes DIR/gpu_bench.json. Also measures the two
ceilings METHOD.md asks for: device-to-device copy bandwidth and the time to write a B x B fp32 matrix
once, so each distance time can be read against its floor.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch

import facenet_ext as fx
from facenet_ext.bench.timing import median_time


def cuda_time(fn, reps: int = 50, warmup: int = 5) -> float:
    """Median milliseconds per call of fn() over ``reps`` timed blocks (host syncs inside fn are part of
    its cost)."""
    t = median_time(fn, "cuda", min_time_s=0, min_reps=reps, max_reps=reps, slow_reps=reps, warmup=warmup)
    return t.median_s * 1e3


def batch(B: int, D: int = 128, per_id: int = 40, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(B, D, device="cuda", generator=g), dim=1)
    labels = torch.arange(B, device="cuda") // per_id
    return emb, labels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu-bench-out")
    ap.add_argument("--sizes", default="1800,8192,32768")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dev = torch.cuda.get_device_name()
    rows: list[dict] = []

    def record(name, B, ms, **extra):
        rows.append({"op": name, "B": B, "ms": ms, **extra})
        print(f"{name:44s} B={B:6d} {ms * 1000:10.1f} us {extra if extra else ''}", flush=True)

    # Ceilings.
    big = torch.empty(2**28, device="cuda")  # 1 GiB
    dst = torch.empty_like(big)
    ms = cuda_time(partial(dst.copy_, big), reps=20)
    bw = 2 * big.numel() * 4 / (ms / 1e3) / 1e12
    record("ceiling: d2d copy 1 GiB", 0, ms, TBps=round(bw, 2))
    del big, dst

    ops = torch.ops.facenet_ext
    for B in sizes:
        emb, labels = batch(B)
        out = torch.empty(B, B, device="cuda")
        write_ms = cuda_time(partial(out.fill_, 1.0))
        record("floor: write B x B fp32 once (fill_)", B, write_ms)
        del out
        record("torch.mm(x, x.T) (cuBLAS fp32)", B, cuda_time(partial(torch.mm, emb, emb.T)))
        record("torch.cdist(x, x)", B, cuda_time(partial(torch.cdist, emb, emb)))
        pd_ms = cuda_time(partial(fx.pairwise_sq_dist, emb))
        record("fx.pairwise_sq_dist", B, pd_ms, vs_write=round(pd_ms / write_ms, 2))
        d = fx.pairwise_sq_dist(emb)
        record(
            "semihard mining only (from D)",
            B,
            cuda_time(partial(ops.semi_hard_from_sq_dist, d, labels, labels, True, None, True, False)),
        )
        record(
            "fx.semi_hard_triplets (incl. distances)",
            B,
            cuda_time(partial(fx.semi_hard_triplets, emb, labels)),
            triplets=int(fx.semi_hard_triplets(emb, labels)[0].numel()),
        )
        record("fx.batch_hard_triplets (incl. distances)", B, cuda_time(partial(fx.batch_hard_triplets, emb, labels)))
        if B <= 8192:
            e = emb.clone().requires_grad_()

            def fwd_bwd(e=e, labels=labels):
                fx.triplet_loss(e, labels, 0.2).backward()

            record("fx.triplet_loss fwd+bwd (semihard)", B, cuda_time(fwd_bwd))
        if B <= 1800:
            n = fx.all_semi_hard_triplets(emb, labels)[0].numel()
            record(
                "fx.all_semi_hard_triplets",
                B,
                cuda_time(partial(fx.all_semi_hard_triplets, emb, labels), reps=10),
                triplets=int(n),
            )
            try:
                from pytorch_metric_learning import losses, miners

                miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
                loss_fn = losses.TripletMarginLoss(margin=0.2)
                record("PML TripletMarginMiner(semihard)", B, cuda_time(partial(miner, emb, labels), reps=5, warmup=1))
                e2 = emb.clone().requires_grad_()

                def pml_fwd_bwd(loss_fn=loss_fn, miner=miner, e2=e2, labels=labels):
                    loss_fn(e2, labels, miner(e2, labels)).backward()

                record("PML semihard miner + TripletMarginLoss fwd+bwd", B, cuda_time(pml_fwd_bwd, reps=5, warmup=1))
            except ImportError as exc:
                print("pytorch-metric-learning not available:", exc)
        del emb, labels, d
        torch.cuda.empty_cache()

    # Where the time goes at FaceNet's batch size: kernel times vs host overhead.
    emb, labels = batch(1800)
    e = emb.clone().requires_grad_()
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    ) as prof:
        for _ in range(10):
            fx.triplet_loss(e, labels, 0.2).backward()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "profile_triplet_loss_1800.txt").write_text(table)

    payload = {
        "device": dev,
        "torch": torch.__version__,
        "build_info": fx.build_info(),
        "rows": rows,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (Path(args.out) / "gpu_bench.json").write_text(json.dumps(payload, indent=2, default=str))
    print(f"\n### {dev}, torch {torch.__version__}\n\n| op | B | time (us) | extra |\n|---|---:|---:|---|")
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in ("op", "B", "ms")}
        print(f"| {r['op']} | {r['B']} | {r['ms'] * 1000:.1f} | {extra or ''} |")


if __name__ == "__main__":
    main()
