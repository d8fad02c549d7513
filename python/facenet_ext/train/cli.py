"""``python -m facenet_ext train``: arguments map one to one onto TrainConfig fields."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from .config import LOSSES, MINING, OPTIMIZERS, TrainConfig

# --quick: a run that finishes in about a minute on 2 CPU cores, for demos and smoke tests.
QUICK = {"epochs": 10, "steps_per_epoch": 6}


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", default=None, help="image folder ROOT/<identity>/<image> (PGM/PNG/JPEG); default: scikit-learn's bundled digits")
    p.add_argument("--out", default=None, help="run folder (default runs/<timestamp>); with --resume, the run to continue")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt, bit for bit")
    p.add_argument("--quick", action="store_true", help=f"a short run for demos and smoke tests: {QUICK}")
    p.add_argument("--image-size", type=int, default=None, help="square input side (default 64 for folders, 32 for digits)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help="1 or 3 (default: 1 if all images are grayscale)")
    p.add_argument("--holdout", type=float, default=d.holdout, help="fraction of identities held out, last in natural order (ORL: 0.25 = s31-s40)")
    p.add_argument("--width", type=float, default=d.width, help="NN2 channel multiplier")
    p.add_argument("--depth", type=int, choices=(1, 2, 3), default=d.depth, help="Inception stages kept (3x, 4x, 5x)")
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim)
    p.add_argument("--identities-per-batch", "-P", type=int, default=d.identities_per_batch)
    p.add_argument("--images-per-identity", "-K", type=int, default=d.images_per_identity)
    p.add_argument("--epochs", type=int, default=None, help=f"default {d.epochs} ({QUICK['epochs']} with --quick)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the training images")
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--mining", choices=MINING, default=d.mining)
    p.add_argument("--margin", type=float, default=d.margin)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--augment", action="store_true", help="random horizontal flips and shifts of up to 4 pixels")
    p.add_argument("--degrade", type=float, default=d.degrade, metavar="FRACTION",
                   help="blur, noise or occlude this fraction of each batch (low-quality faces for MagFace to learn from)")
    p.add_argument("--memory-bank", type=int, default=d.memory_bank, metavar="N",
                   help="triplet loss: also mine against the last N training embeddings (cross-batch memory, XBM)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Every TrainConfig field from the argument of the same name; --quick fills epochs and steps."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.quick:
        values = {**values, **{k: values[k] or v for k, v in QUICK.items()}}
    values["epochs"] = values["epochs"] or TrainConfig.epochs
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import CheckpointError
    from .loop import train

    if args.resume and args.out is None:
        print("facenet-ext train: --resume needs --out RUN (the run folder to continue)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = config_from_args(args)
        result = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    except (CheckpointError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"facenet-ext train: {exc}", file=sys.stderr)
        return 2
    if result.interrupted:
        print(result.summary)
        print(f"resume with: python -m facenet_ext train --resume --out {result.out} (and the same settings)")
        return 130
    print(result.summary)
    print(f"run folder: {result.out} (checkpoint.pt, metrics.json, train.png)")
    return 0
