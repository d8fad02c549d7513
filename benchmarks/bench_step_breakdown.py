"""Where a real training step's time goes, with our miner and with pytorch-metric-learning's (PML) swapped
in at the same batch: data, network forward, mining, loss, backward, optimiser, in ms and % of the step.

    python benchmarks/bench_step_breakdown.py [--data DATA/lfw] [--batch 128,512,1024] [--steps 10] [--threads 1]

The step is the trainer's own (``facenet_ext.train``): the LFW recipe's network (NN2 width 0.25, depth 2,
64x64 grayscale crops of 72x72 images), its augmentation (rotation, zoom, crop, flip), Adam with weight
decay, P x K batches with K = 4. With ``--data`` an LFW folder the images are View 1's DevTrain people
from the decoded-image cache (built on first use); without it, random 72x72 images with P x K labels
(the mining's cost depends on the batch's size and distances, not on what the images show). The phases
are timed with the trainer's :class:`~facenet_ext.train.step_timing.StepTimer`, so they sum to the step.
Only the mining line differs between variants:

  fx semihard         fx.semi_hard_triplets, then fx.triplet_loss over its triplets (FaceNet eq. 4; the trainer's)
  fx all_semihard     fx.all_semi_hard_triplets(margin, squared=False), then fx.triplet_loss over them
  PML semihard        PML TripletMarginMiner(margin, "semihard"), then fx.triplet_loss over its triplets:
                      the same triplets as fx all_semihard (PML's "semihard" is our all-semi-hard rule)
  fx all_semihard fused  fx.triplet_loss(mining="all_semihard"): never lists the triplets (mining in "loss")

Prints one markdown table per batch size: mean over ``--steps`` steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import os

import torch

import facenet_ext as fx
from facenet_ext.bench.baselines import pml_semihard_miner
from facenet_ext.train.config import TrainConfig
from facenet_ext.train.data.sampler import PKSampler
from facenet_ext.train.loop import build_model, make_optimizer, network_input
from facenet_ext.train.recipes import LFW, TRIPLET_LFW
from facenet_ext.train.step_timing import PHASES, StepTimer

MARGIN = 0.2


def miners() -> dict:
    """name -> (mine(emb, labels) -> triplets or None for the fused loss, squared distances in the loss)."""
    pml_miner = pml_semihard_miner(MARGIN)
    return {
        "fx semihard": (lambda e, y: fx.semi_hard_triplets(e, y), True),
        "fx all_semihard": (lambda e, y: fx.all_semi_hard_triplets(e, y, MARGIN, squared=False), False),
        "PML semihard": (lambda e, y: pml_miner(e, y), False),
        "fx all_semihard fused": (None, False),
    }


def recipe_config(p: int, k: int) -> TrainConfig:
    settings = {**LFW, **TRIPLET_LFW, "identities_per_batch": p, "images_per_identity": k}
    settings.pop("protocol")
    return TrainConfig(**settings)


def images_and_labels(data: str | None, cfg: TrainConfig, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    if data is None:
        g = torch.Generator().manual_seed(0)
        n = 4 * batch
        return torch.randint(0, 256, (n, 1, cfg.image_size, cfg.image_size), generator=g, dtype=torch.uint8), (
            torch.arange(n) // cfg.images_per_identity
        )
    from facenet_ext.train.data.face_cache import Preprocess
    from facenet_ext.train.lfw.data import load_protocol

    prep = Preprocess(cfg.image_size, cfg.channels, cfg.crop_box)
    train_set = load_protocol(os.path.abspath(data), "view1", None, prep, progress=False, seed=0).train_set
    return train_set.images, train_set.labels


def time_variant(name: str, mine, squared: bool, images, labels, cfg: TrainConfig, steps: int) -> dict:
    torch.manual_seed(0)
    net = build_model(cfg, images.shape[1])
    opt = make_optimizer(cfg, net.parameters())
    sampler = PKSampler(labels, cfg.identities_per_batch, cfg.images_per_identity)
    gen = torch.Generator().manual_seed(0)
    timer, triplets = StepTimer(), 0
    for i in range(steps + 1):
        if i == 1:  # the first step warms up allocators and thread pools
            timer, triplets = StepTimer(), 0
        timer.start()
        idx = sampler.batch(gen)
        x, y = network_input(cfg, images[idx], gen), labels[idx]
        timer.mark("data")
        emb = net(x)
        timer.mark("forward")
        if mine is None:
            loss = fx.triplet_loss(emb, y, MARGIN, mining="all_semihard", squared=squared)
        else:
            a, p, n = mine(emb.detach(), y)
            triplets += a.numel()
            timer.mark("mining")
            loss = fx.triplet_loss(emb, None, MARGIN, mining=(a, p, n), squared=squared)
        timer.mark("loss")
        loss.backward()
        timer.mark("backward")
        opt.step()
        opt.zero_grad(set_to_none=True)
        timer.mark("optimizer")
        timer.end_step()
    return {"name": name, "batch": int(idx.numel()), "triplets": triplets / steps, **timer.to_dict()}


def table(rows: list[dict]) -> str:
    head = "| variant | step ms | " + " | ".join(f"{p} ms (%)" for p in PHASES) + " | triplets/step |"
    lines = [head, "|---|" + "---:|" * (len(PHASES) + 2)]
    for r in rows:
        cells = " | ".join(f"{r['phases'][p]['ms']:.1f} ({r['phases'][p]['percent']:.1f})" for p in PHASES)
        lines.append(f"| {r['name']} | {r['step_ms']:.1f} | {cells} | {r['triplets']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="LFW folder (View 1's DevTrain images); default random images")
    p.add_argument("--batch", default="128,512,1024", help="comma-separated batch sizes (P x 4)")
    p.add_argument("--steps", type=int, default=10, help="steps timed per variant, after one warm-up step")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(miners()), help="comma-separated subset of the variants")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    chosen = {k: v for k, v in miners().items() if k in args.variants.split(",")}
    unknown = set(args.variants.split(",")) - set(miners())
    if unknown:
        p.error(f"unknown variant(s) {sorted(unknown)}; choose from {', '.join(miners())}")
    images = labels = None
    for batch in (int(b) for b in args.batch.split(",")):
        if batch % 4 or batch < 8:
            p.error(f"--batch: each size must be a multiple of 4 (K = 4) and >= 8, got {batch}")
        cfg = recipe_config(batch // 4, 4)
        if images is None or args.data is None:
            images, labels = images_and_labels(args.data, cfg, batch)
        rows = [time_variant(name, m, sq, images, labels, cfg, args.steps) for name, (m, sq) in chosen.items()]
        print(
            f"\nbatch {rows[0]['batch']} ({batch // 4} x 4), NN2 width {cfg.width} depth {cfg.depth}, "
            f"{cfg.input_size}x{cfg.input_size}, {args.threads} thread(s), mean of {args.steps} steps, "
            f"load {os.getloadavg()[0]:.1f}, torch {torch.__version__}"
        )
        print(table(rows), flush=True)


if __name__ == "__main__":
    main()
