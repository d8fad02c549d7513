"""Our miners and loss against torch.cdist and the pure-PyTorch/Python miners, at
FaceNet's batch (B = 1800 = 45 identities x 40 images, D = 128, fp32) on 2 CPU threads; then B = 16384
mining, with time and peak memory. Prints a markdown table of medians and ratios.

    .venv/bin/python benchmarks/bench_miners.py

Same machinery as ``python -m facenet_ext bench`` (methods, timing, memory probe, budgets, agreement).
"""

from __future__ import annotations

import os
import sys

import torch

from facenet_ext.bench import agreement
from facenet_ext.bench.methods import BY_KEY
from facenet_ext.bench.report import fmt_bytes, fmt_ratio, fmt_time
from facenet_ext.bench.runner import Sweep, parse_args

THREADS = 2
GROUPS = {  # ours first, then what it is compared with
    "mining": ["fx.semihard", "cdist", "sort_searchsorted", "pml.semihard", "fx.all_semihard", "facenet_loop"],
    "loss fwd+bwd": ["fx.loss.semihard", "sort_searchsorted.loss", "pml.semihard.loss"],
}
LARGE = 16384


def _sweep(batch: int, methods: list[str]) -> dict[str, dict]:
    sweep = Sweep(parse_args(["--batch", str(batch), "--methods", ",".join(methods), "--time-budget", "120"]))
    try:
        for key in methods:
            sweep.records.append(sweep.step(BY_KEY[key], batch))
    finally:
        if sweep.probe is not None:
            sweep.probe.close()
    return {r["method"]: r for r in sweep.records if r["batch"] == batch and not r.get("calibration")}


def _row(rec: dict, ours: dict | None) -> str:
    m = BY_KEY[rec["method"]]
    if rec["status"] != "ok":
        return f"| {m.label} | {rec.get('reason', rec['status'])} | | | |"
    if ours is None:
        ratio = "(ours)"
    elif m.family == "floor":
        ratio = f"ours takes {ours['median_s'] / rec['median_s']:.2f}× its time"
    else:
        ratio = f"ours {fmt_ratio(rec['median_s'] / ours['median_s'])} faster"
    triplets = "—" if rec.get("triplets") is None else f"{rec['triplets']:,}"
    return f"| {m.label} | {fmt_time(rec['median_s'])} | {fmt_bytes(rec.get('peak_bytes'))} | {triplets} | {ratio} |"


def main() -> int:
    torch.set_num_threads(THREADS)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}", file=sys.stderr
    )
    for key in {k for keys in GROUPS.values() for k in keys} & set(agreement.CHECKS):
        a = agreement.check(key)
        print(f"agreement {key}: {a.verdict}: {a.detail}", file=sys.stderr)
        if not a.ok:
            return 1
    print("| case (B = 1800, K = 40, D = 128, fp32, 2 threads) | median | peak extra memory | triplets | ratio |")
    print("|---|---|---|---|---|")
    for group, keys in GROUPS.items():
        recs = _sweep(1800, keys)
        print(f"| **{group}** | | | | |")
        for i, key in enumerate(keys):
            print(_row(recs[key], None if i == 0 else recs[keys[0]]))
    large = _sweep(LARGE, ["fx.semihard"])["fx.semihard"]
    print(f"| **B = {LARGE}** | | | | |")
    print(_row(large, None))
    print(f"\nload average after: {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
