"""A pytorch-metric-learning (PML) training step against the same step through facenet_ext, side by side
in one process on the same inputs: the loss's forward and backward from given embeddings (the network
is left out; it is the same in both), at 1 thread by default.

Workload: ``facenet_ext.bench.workload.Workload`` (K = 40 images per identity, D = 128, fp32, unit
vectors with overlapping same/different distance distributions). Variants, each timed as
``loss(emb.requires_grad_()).backward()``:

* ``pml``              PML ``TripletMarginMiner(0.2, "semihard")`` + PML ``TripletMarginLoss(0.2)``
* ``ours+pml_loss``    ``facenet_ext.pml.TripletMarginMiner`` (same arguments) + PML's loss
* ``ours``             both from ``facenet_ext.pml`` (the import swap)
* ``fused``            ``fx.triplet_loss(F.normalize(emb), y, 0.2, mining="all_semihard",
                       reduction="mean_active")``: the same loss, never listing the triplets
* ``pml.all``          PML's ``TripletMarginLoss(0.2)`` without a miner (every triplet)
* ``ours.all``         ``facenet_ext.pml.TripletMarginLoss(0.2)`` without a miner (the fused window loss)

PML lists every candidate triplet (B·39·(B-40) of them, through a B x B x B mask), which does not fit in
memory at B = 4096 (650M triplets); those cells are skipped and say so. Each of our variants is checked
against PML's loss where PML runs (relative difference printed). The machine is shared: the script prints
the load average before and after, and the numbers are indicative.

    .venv/bin/python benchmarks/bench_pml_loop.py                      # B = 256, 1024, 4096; 1 thread
    .venv/bin/python benchmarks/bench_pml_loop.py --batch 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

import facenet_ext as fx
from facenet_ext import pml
from facenet_ext.bench.timing import median_time
from facenet_ext.bench.workload import Workload

MARGIN = 0.2
# PML's candidate triplets are listed as three int64 tensors plus two float distances each (~40 bytes);
# above this many candidates a PML cell is skipped instead of exhausting memory.
PML_MAX_CANDIDATES = 200_000_000


def variants() -> dict:
    pml_miner, pml_loss = pml_miners.TripletMarginMiner(MARGIN, "semihard"), pml_losses.TripletMarginLoss(MARGIN)
    our_miner, our_loss = pml.TripletMarginMiner(MARGIN, "semihard"), pml.TripletMarginLoss(MARGIN)
    return {
        "pml": (True, lambda x, y: pml_loss(x, y, pml_miner(x, y))),
        "ours+pml_loss": (False, lambda x, y: pml_loss(x, y, our_miner(x, y))),
        "ours": (False, lambda x, y: our_loss(x, y, our_miner(x, y))),
        "fused": (
            False,
            lambda x, y: fx.triplet_loss(F.normalize(x), y, MARGIN, mining="all_semihard", reduction="mean_active"),
        ),
        "pml.all": (True, lambda x, y: pml_loss(x, y)),
        "ours.all": (False, lambda x, y: our_loss(x, y)),
    }


def step(fn, emb, labels):
    x = emb.detach().clone().requires_grad_()
    loss = fn(x, labels)
    loss.backward()
    return loss.detach()


def run(batches: list[int]) -> list[dict]:
    rows = []
    for b in batches:
        work = Workload(batch=b)
        emb, labels = work.make()
        candidates = work.pair_counts()[1]
        reference = {}
        for name, (is_pml, fn) in variants().items():
            row = {"batch": b, "variant": name, "candidates": candidates}
            if is_pml and candidates > PML_MAX_CANDIDATES:
                row["skipped"] = f"PML lists all {candidates / 1e6:.0f}M candidate triplets: does not fit in memory"
            else:
                t = median_time(partial(step, fn, emb, labels), min_time_s=2.0, slow_s=1.0, slow_reps=3)
                row.update(median_s=t.median_s, samples=t.samples, loss=float(t.result))
                base = "pml" if name in ("ours+pml_loss", "ours", "fused") else "pml.all"
                if is_pml:
                    reference[name] = row
                elif base in reference:
                    ref = reference[base]
                    row["speedup"] = ref["median_s"] / t.median_s
                    row["rel_loss_diff"] = abs(row["loss"] - ref["loss"]) / abs(ref["loss"])
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "samples"}), flush=True)
    return rows


def table(rows: list[dict], batches: list[int]) -> str:
    names = list(dict.fromkeys(r["variant"] for r in rows))
    cell = {(r["variant"], r["batch"]): r for r in rows}
    out = ["| variant | " + " | ".join(f"B = {b}" for b in batches) + " |", "|---" * (len(batches) + 1) + "|"]
    for name in names:
        cells = []
        for b in batches:
            r = cell[(name, b)]
            if "skipped" in r:
                cells.append("not run (B³ listing)")
                continue
            text = f"{r['median_s'] * 1e3:.1f} ms"
            if "speedup" in r:
                text += f" ({r['speedup']:.1f}×)"
            cells.append(text)
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", default="256,1024,4096", help="comma-separated batch sizes (default 256,1024,4096)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=None, help="also write the rows, with every sample, to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = sorted(int(v) for v in args.batch.split(","))
    load_before = os.getloadavg()
    rows = run(batches)
    load_after = os.getloadavg()
    print()
    print(f"threads {args.threads}, torch {torch.__version__}, load average before {load_before}, after {load_after}")
    print(table(rows, batches))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"threads": args.threads, "load": [load_before, load_after], "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
