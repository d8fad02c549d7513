"""``python -m facenet_ext train``: arguments map one to one onto TrainConfig fields.

A setting comes from, in order: the command line; the preset of ``--quick`` (the bundled-digits demo)
or of ``--protocol view1|view2`` (the LFW recipe, :data:`facenet_ext.train.recipes.LFW`, with
:data:`~facenet_ext.train.recipes.MAGFACE_LFW` over it for ``--loss magface``); TrainConfig's default. Unset arguments are absent from the namespace (``argparse.SUPPRESS``), so "given" and "left
at its default" are never confused.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .config import LOSSES, MINING, MODELS, OPTIMIZERS, PROTOCOLS, SAMPLERS, SCHEDULES, TrainConfig
from .lfw_protocol import is_lfw_root
from .recipes import LFW, MAGFACE_LFW, QUICK

S = argparse.SUPPRESS


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()

    def opt(*names, help: str = "", **kw) -> None:
        field = names[0].lstrip("-").replace("-", "_") if names[0].startswith("--") else names[1].lstrip("-").replace("-", "_")
        default = getattr(d, field, None)
        p.add_argument(*names, default=S, help=f"{help} (default {default})".strip(), **kw)

    p.add_argument("--data", default=S, help="image folder ROOT/<identity>/<image>, or an LFW folder (pairs.txt, people.txt, "
                                             "images/); default: scikit-learn's bundled digits")
    p.add_argument("--out", default=None, help="run folder (default runs/<timestamp>); with --resume, the run to continue")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt, bit for bit")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out (its checkpoint, metrics and eval files) "
                                                            "instead of refusing")
    p.add_argument("--quick", action="store_true", help=f"the bundled-digits demo preset: {QUICK}")
    p.add_argument("--protocol", choices=PROTOCOLS, default=S,
                   help=f"LFW: train on View 1's peopleDevTrain and test on its 1000 pairsDevTest pairs (view1), or on "
                        f"View 2 fold --fold; sets the LFW recipe {LFW}")
    opt("--fold", type=int, help="View 2 fold to test (0..9); its people are left out of training")
    opt("--image-size", type=int, help="stored square side (64 for folders, 32 for digits when unset)")
    opt("--channels", type=int, choices=(1, 3), help="1 or 3 (unset: 1 if all images are grayscale)")
    opt("--crop-box", type=int, help="side of the centred square cut from each source image before resizing, in source pixels "
                                     "(unset: the largest centred square)")
    opt("--input-size", type=int, help="network input side: random crops with --augment, the centre crop in evaluation "
                                       "(unset: the image size)")
    opt("--holdout", type=float, help="fraction of identities held out, last in natural order (ORL: 0.25 = s31-s40)")
    opt("--model", choices=MODELS, help="nn2 (NN2-style Inception) or small (3 conv layers, for tiny images)")
    opt("--width", type=float, help="channel multiplier")
    opt("--depth", type=int, choices=(1, 2, 3), help="NN2 Inception stages kept (3x, 4x, 5x)")
    opt("--embedding-dim", type=int)
    opt("--identities-per-batch", "-P", type=int)
    opt("--images-per-identity", "-K", type=int)
    opt("--sampler", choices=SAMPLERS, help="pk: P identities x K images; uniform: P*K random images (margin-softmax heads)")
    opt("--singletons", type=int, help="single-image people added to every P x K batch as negatives")
    opt("--epochs", type=int, help=f"number of epochs, >= 1 ({QUICK['epochs']} with --quick)")
    opt("--steps-per-epoch", type=int, help="steps per epoch (unset: one pass over the training images)")
    opt("--loss", choices=LOSSES)
    opt("--mining", choices=MINING)
    opt("--margin", type=float, help="triplet margin")
    opt("--head-scale", type=float, help="ArcFace/MagFace logit scale (unset: the loss's 64)")
    opt("--head-margin", type=float, help="ArcFace angular margin (unset: the loss's 0.5)")
    opt("--mag-l-a", type=float, help="MagFace: lower end of the magnitude clamp l_a (unset: the loss's 10)")
    opt("--mag-u-a", type=float, help="MagFace: upper end of the magnitude clamp u_a (unset: the loss's 110)")
    opt("--mag-l-m", type=float, help="MagFace: margin at l_a (unset: the loss's 0.45)")
    opt("--mag-u-m", type=float, help="MagFace: margin at u_a (unset: the loss's 0.8)")
    opt("--mag-lambda-g", type=float, help="MagFace: weight of the magnitude regulariser (unset: the loss's 35)")
    opt("--min-class-images", type=int, help="ArcFace/MagFace: a training person is a class when it has this many images")
    opt("--people-fraction", type=float, help="train on this seeded random share of the training people")
    opt("--optimizer", choices=OPTIMIZERS)
    opt("--lr", type=float)
    opt("--weight-decay", type=float)
    opt("--schedule", choices=SCHEDULES, help="constant lr, or cosine decay to 0 over the run")
    opt("--augment", action=argparse.BooleanOptionalAction,
        help="random crops of --input-size and flips (without --input-size: flips and shifts of up to 4 pixels)")
    opt("--new-identities", metavar="T1,T2", help="train on each training identity transformed (mirror, rot90, rot270) as new "
                                                "identities, where that makes another class (digits)")
    opt("--hflip", action=argparse.BooleanOptionalAction, help="--augment mirrors images (--no-hflip for digits)")
    opt("--flip-eval", action=argparse.BooleanOptionalAction, help="evaluate each image's embedding averaged with its mirror image's")
    opt("--degrade", type=float, metavar="FRACTION",
        help="blur, noise or occlude this fraction of each batch (low-quality faces for MagFace to learn from)")
    opt("--degrade-kinds", help="the degradations of --degrade: 'all' or a comma list of blur,noise,occlusion,lowres,jpeg")
    opt("--memory-bank", type=int, metavar="N", help="triplet loss: also mine against the last N training embeddings (XBM)")
    opt("--seed", type=int)
    p.add_argument("--cache", default=None, metavar="DIR", help="decoded-image cache for LFW (default $FACENET_EXT_CACHE or "
                                                              "~/.cache/facenet_ext; never inside the data folder)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for training batches (decoding the "
                                                          "cache always uses 2)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Command line, then the --quick or --protocol preset, then TrainConfig's defaults (module doc).
    The data path is stored absolute, so a checkpoint can be evaluated from any directory."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    preset = {}
    if getattr(args, "quick", False):
        preset = QUICK
    if given.get("protocol") is None and given.get("data") is not None and is_lfw_root(given["data"]):
        given["protocol"] = "view1"  # an LFW folder trains on its development view unless told otherwise
    if given.get("protocol") is not None:
        preset = {**LFW, "protocol": given["protocol"]}
        if given.get("loss") == "magface":  # the MagFace recipe replaces the ArcFace head's settings
            preset = {**preset, **MAGFACE_LFW}
    values = {**preset, **given}
    if values.get("data") is not None:
        values["data"] = str(Path(values["data"]).expanduser().resolve())
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import CheckpointError
    from .loop import train

    if args.resume and args.out is None:
        print("facenet-ext train: --resume needs --out RUN (the run folder to continue)", file=sys.stderr)
        return 2
    if args.resume and args.overwrite:
        print("facenet-ext train: --resume continues a run and --overwrite replaces it; give one", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = config_from_args(args)
        result = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       cache_dir=args.cache, workers=args.workers)
    except (CheckpointError, FileNotFoundError, NotADirectoryError, FileExistsError, ValueError) as exc:
        print(f"facenet-ext train: {exc}", file=sys.stderr)
        return 2
    if result.interrupted:
        print(result.summary)
        print(f"resume with: python -m facenet_ext train --resume --out {result.out} (and the same settings)")
        return 130
    print(result.summary)
    print(f"run folder: {result.out} (checkpoint.pt, metrics.json, train.png)")
    return 0
