"""Mining a batch against a large reference set (a memory bank) on the CPU: B = 1800 anchors (45 identities
x 40, D = 128, fp32, unit vectors) against banks of 10k, 100k and 1M embeddings whose labels are drawn
from 5000 identities (so each anchor has about N/5000 positives in the bank). Time and peak memory of

* ``fx.semihard``        ``fx.semi_hard_triplets(emb, y, ref_emb=bank, ref_labels=bank_y)``: the whole
                         B x N matrix while B·N <= 2^28, streamed beyond (the automatic rule)
* ``fx.semihard.chunk``  the same with ``chunk_size=8192`` (always streamed)
* ``fx.batch_hard``      ``fx.batch_hard_triplets`` with the automatic rule
* ``naive.batch_hard``   ``torch.cdist(emb, bank) ** 2`` + label masks + max/min (B x N at once)
* ``naive.semihard``     cdist + mask + a per-row sort of the negatives + searchsorted (B x N at once)

The naive ones run only where their B x N working set fits (``--naive-limit-gb``, default 6).

Peak memory: ``tracemalloc`` does not see torch's allocations, so each measurement runs in its own
subprocess, which reads ``VmHWM`` (the peak resident set) from ``/proc/self/status``; the number reported
is that peak minus the resident set just before the first call (inputs already built), i.e. the extra
memory the method needed at its worst. Linux only.

    python benchmarks/bench_reference_set.py             # 10k, 100k, 1M (1M takes minutes on 2 cores)
    python benchmarks/bench_reference_set.py --quick     # B = 300 against 2k and 10k: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

import facenet_ext as fx
from facenet_ext.bench.memory import proc_status_bytes, reset_peak_rss
from facenet_ext.bench.timing import median_time

METHODS = ("fx.semihard", "fx.semihard.chunk", "fx.batch_hard", "naive.batch_hard", "naive.semihard")
IDENTITIES = 5000
CHUNK = 8192


def problem(batch: int, n_ref: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = -(-batch // 40)
    emb = torch.nn.functional.normalize(torch.randn(batch, 128, generator=g), dim=1)
    labels = torch.arange(ids).repeat_interleave(40)[:batch]
    bank = torch.nn.functional.normalize(torch.randn(n_ref, 128, generator=g), dim=1)
    bank_labels = torch.randint(0, IDENTITIES, (n_ref,), generator=g)
    return emb, labels, bank, bank_labels


def naive_batch_hard(emb, labels, bank, bank_labels):
    d = torch.cdist(emb, bank).square_()
    same = labels.unsqueeze(1) == bank_labels.unsqueeze(0)
    far_pos = d.masked_fill(~same, float("-inf")).argmax(1)
    near_neg = d.masked_fill_(same, float("inf")).argmin(1)
    keep = same.any(1) & ~same.all(1)
    return keep.nonzero().squeeze(1), far_pos[keep], near_neg[keep]


def naive_semi_hard(emb, labels, bank, bank_labels):
    """FaceNet's rule with the easiest-negative fallback, B x N at once: the negatives of each row sorted,
    each positive's first negative strictly farther found by searchsorted."""
    d = torch.cdist(emb, bank).square_()
    same = labels.unsqueeze(1) == bank_labels.unsqueeze(0)
    neg_sorted, order = d.masked_fill(same, float("inf")).sort(dim=1, stable=True)
    first_farther = torch.searchsorted(neg_sorted, d, right=True)  # for every column: the first farther negative
    a, p = same.nonzero(as_tuple=True)
    pos = first_farther[a, p]
    n_neg = (~same).sum(1)
    found = pos < n_neg[a]
    farthest = d.masked_fill_(same, float("-inf")).argmax(1)  # first of the farthest: the smallest index
    n = torch.where(found, order[a, pos.clamp_max(order.shape[1] - 1)], farthest[a])
    keep = n_neg[a] > 0
    return a[keep], p[keep], n[keep]


def run_one(method: str, batch: int, n_ref: int, repeats: int) -> dict:
    emb, labels, bank, bank_labels = problem(batch, n_ref)
    fx.semi_hard_triplets(emb[:50], labels[:50])  # thread pools and the library loaded before the baseline
    fn = {
        "fx.semihard": lambda: fx.semi_hard_triplets(emb, labels, ref_emb=bank, ref_labels=bank_labels),
        "fx.semihard.chunk": lambda: fx.semi_hard_triplets(
            emb, labels, ref_emb=bank, ref_labels=bank_labels, chunk_size=CHUNK
        ),
        "fx.batch_hard": lambda: fx.batch_hard_triplets(emb, labels, ref_emb=bank, ref_labels=bank_labels),
        "naive.batch_hard": lambda: naive_batch_hard(emb, labels, bank, bank_labels),
        "naive.semihard": lambda: naive_semi_hard(emb, labels, bank, bank_labels),
    }[method]
    base = reset_peak_rss()  # VmHWM from here on: not the start-up peak of the imports
    # Calls of a second or more are timed `repeats` times in all; faster ones after one warm-up call.
    t = median_time(fn, min_time_s=0, min_reps=repeats, max_reps=repeats, slow_reps=repeats)
    t.result = None  # dropped: the agreement call below must not run beside an earlier output
    out = fn() if method.startswith("naive") and n_ref <= 20000 else None
    agree = None
    if out is not None:  # small sizes: share of triplets equal to ours (cdist and our GEMM round near-ties apart)
        ours = (fx.semi_hard_triplets if "semihard" in method else fx.batch_hard_triplets)(
            emb, labels, ref_emb=bank, ref_labels=bank_labels
        )
        theirs, ours = sorted(zip(*(t.tolist() for t in out))), list(zip(*(t.tolist() for t in ours)))
        agree = sum(x == y for x, y in zip(theirs, ours)) / max(len(ours), 1) if len(theirs) == len(ours) else 0.0
    return {
        "method": method,
        "batch": batch,
        "n_ref": n_ref,
        "median_s": t.median_s,
        "times_s": t.samples,
        "peak_extra_bytes": proc_status_bytes("VmHWM") - base,
        "agrees_with_fx": agree,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="B = 300 against 2k and 10k")
    ap.add_argument("--sizes", default=None, help="comma-separated reference-set sizes")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-limit-gb", type=float, default=6.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None, help="write the raw records here")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "BATCH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        method, batch, n_ref = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(run_one(method, batch, n_ref, 3 if n_ref <= 100_000 else 1)))
        return 0
    batch = args.batch or (300 if args.quick else 1800)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([2000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    )
    print(
        f"torch {torch.__version__}, {args.threads} threads, B = {batch}, D = 128, fp32, {IDENTITIES} identities "
        f"in the bank; load average {os.getloadavg()}",
        file=sys.stderr,
    )
    records = []
    print("| N | method | time | peak extra memory | same triplets as fx |\n|---|---|---|---|---|")
    for n_ref in sizes:
        for method in args.methods.split(","):
            if (
                method.startswith("naive")
                and batch * n_ref * (25 if "semihard" in method else 5) > args.naive_limit_gb * 2**30
            ):
                print(
                    f"| {n_ref:,} | {method} | skipped: B x N working set over {args.naive_limit_gb} GB | | |",
                    flush=True,
                )
                continue
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--child", method, str(batch), str(n_ref)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"| {n_ref:,} | {method} | failed: {res.stderr.strip().splitlines()[-1:]} | | |", flush=True)
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            records.append(r)
            agree = "" if r["agrees_with_fx"] is None else f"{100 * r['agrees_with_fx']:.2f}%"
            print(
                f"| {n_ref:,} | {method} | {r['median_s']:.3f} s | {r['peak_extra_bytes'] / 2**20:,.0f} MiB | "
                f"{agree} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
