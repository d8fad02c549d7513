"""Training throughput (images/s) of the reference trainer's step with our fused loss against
pytorch-metric-learning's miner + loss in the same loop.

    python benchmarks/bench_train_throughput.py [--data DIR] [--steps 10] [--threads 2] [-P 30 -K 10]

Same model (NN2, --width/--depth), same data, same P x K batches from one seeded sampler, same AdaGrad
step; only the loss line differs:
  fx semihard       fx.triplet_loss(emb, labels, mining="semihard")        (FaceNet eq. 4, one per positive pair)
  fx all_semihard   fx.triplet_loss(emb, labels, mining="all_semihard", squared=False, reduction="mean_active")
  PML all_semihard  TripletMarginLoss()(emb, labels, TripletMarginMiner(type_of_triplets="semihard")(emb, labels))
The last two select the same triplets and average the same terms. The timed region is the whole step
(forward, mining, loss, backward, optimiser); the loss alone is timed too, on the same embeddings.
Prints a markdown table; medians over --steps steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import facenet_ext as fx
from facenet_ext.bench.baselines import pml_semihard_miner, pml_triplet_loss
from facenet_ext.train.data.images import load_digits_set, load_image_folder, standardize
from facenet_ext.train.data.sampler import PKSampler
from facenet_ext.train.model import NN2


def loss_functions(margin: float) -> dict:
    miner, loss = pml_semihard_miner(margin), pml_triplet_loss(margin)
    return {
        "fx semihard": lambda e, y: fx.triplet_loss(e, y, margin, mining="semihard"),
        "fx all_semihard": lambda e, y: fx.triplet_loss(
            e, y, margin, mining="all_semihard", squared=False, reduction="mean_active"
        ),
        "PML all_semihard": lambda e, y: loss(e, y, miner(e, y)),
    }


def time_steps(name, loss_fn, data, sampler, args) -> dict:
    torch.manual_seed(0)
    model = NN2(data.images.shape[1], 128, args.width, args.depth)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    step_s, loss_s, images = [], [], []
    for i in range(args.steps + 1):
        idx = sampler.batch(gen)
        x, y = standardize(data.images[idx]), data.labels[idx]
        t0 = time.perf_counter()
        emb = model(x)
        t1 = time.perf_counter()
        loss = loss_fn(emb, y)
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        opt.step()
        t3 = time.perf_counter()
        if i:  # the first step warms up allocators and thread pools
            step_s.append(t3 - t0)
            loss_s.append(t2 - t1)
            images.append(idx.numel())
    step = statistics.median(step_s)
    return {
        "name": name,
        "step_ms": 1e3 * step,
        "loss_fwd_ms": 1e3 * statistics.median(loss_s),
        "images_per_s": statistics.median(images) / step,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="image folder (default: scikit-learn digits)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("-P", type=int, default=30)
    p.add_argument("-K", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--margin", type=float, default=0.2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits_set(args.image_size) if args.data is None else load_image_folder(args.data, args.image_size)
    sampler = PKSampler(data.labels, args.P, args.K)
    rows = [time_steps(name, fn, data, sampler, args) for name, fn in loss_functions(args.margin).items()]
    base = next(r for r in rows if r["name"] == "PML all_semihard")
    print(
        f"batch {sampler.batch_size} ({sampler.p} x {sampler.k}), {args.image_size}x{args.image_size}, NN2 width "
        f"{args.width} depth {args.depth}, "
        f"{args.threads} threads, median of {args.steps} steps, torch {torch.__version__}"
    )
    print("| loss | step (ms) | loss forward (ms) | images/s | step speed-up vs PML |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['name']} | {r['step_ms']:.1f} | {r['loss_fwd_ms']:.2f} | {r['images_per_s']:.0f} | "
            f"{base['step_ms'] / r['step_ms']:.2f}x |"
        )


if __name__ == "__main__":
    main()
