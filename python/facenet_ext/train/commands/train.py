"""``python -m facenet_ext train``: arguments map one to one onto TrainConfig fields.

A setting comes from, in order: the command line; the preset of ``--quick`` (the bundled-digits demo)
or of ``--protocol view1|view2`` (the LFW recipe, :data:`facenet_ext.train.recipes.LFW`, with
:data:`~facenet_ext.train.recipes.MAGFACE_LFW` over it for ``--loss magface``); TrainConfig's default.
Unset arguments are absent from the namespace (``argparse.SUPPRESS``), so "given" and "left at its
default" are never confused. The help states every default and preset as read from TrainConfig and
``recipes``, so it cannot drift from what a run does.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ...losses import ArcFaceLoss, MagFaceLoss
from ...paths import IMAGE_SUFFIXES
from ..checkpoint import CheckpointError
from ..config import LOSSES, MINING, MODELS, OPTIMIZERS, PROTOCOLS, SAMPLERS, SCHEDULES, TrainConfig
from ..data.degrade import DEGRADATIONS
from ..loop import train
from ..recipes import LFW, MAGFACE_LFW, QUICK, TRIPLET_LFW

S = argparse.SUPPRESS


def shown(value) -> str:
    """A default as the help prints it: ``on``/``off`` for a switch, ``none`` for an empty list."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value == "" else str(value)


def as_flags(preset: dict) -> str:
    """A preset as the options that would set it, e.g. ``--loss arcface --augment``; a setting the preset
    leaves unset (None) reads ``(no --flag)``."""
    flags = []
    for field, value in preset.items():
        flag = "--" + field.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags.append(f"(no {flag})" if value is None else f"{flag} {value}")
    return " ".join(flags)


def loss_default(loss: type, name: str):
    """The default of a loss head's constructor argument (what an unset ``--head-*``/``--mag-*`` gives)."""
    return inspect.signature(loss).parameters[name].default


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train``'s options: the data, the run folder, the presets and the split, then
    :func:`add_training_options`."""
    p.add_argument(
        "--data",
        default=S,
        help=f"image folder ROOT/<identity>/<image> (files ending in {', '.join(IMAGE_SUFFIXES)}; "
        "grayscale or RGB), or an LFW folder (pairs.txt, people.txt, person folders under "
        "images/); default: scikit-learn's bundled digits",
    )
    p.add_argument(
        "--out", default=None, help="run folder (default runs/<timestamp>); with --resume, the run to continue"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint.pt, bit for bit"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (its checkpoint, metrics and eval files) instead of refusing",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the bundled-digits demo preset (what `demo` trains, under a minute): a small net learns "
        "digits 0-6 and their mirrored and quarter-turned versions and is evaluated on the unseen "
        f"digits 7-9; as if given {as_flags(QUICK)} (options given override it)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=S,
        help="LFW's protocol (the default for an LFW --data folder is view1): view1 trains on View 1's "
        "peopleDevTrain people and tests on its 1000 pairsDevTest pairs; view2 trains on the other "
        "nine sets of people.txt and tests on the 600 pairs of fold --fold. Sets the LFW recipe, as "
        f"if given {as_flags({k: v for k, v in LFW.items() if k != 'protocol'})}; with --loss magface "
        f"also {as_flags({k: v for k, v in MAGFACE_LFW.items() if k != 'loss'})}; with --loss triplet also "
        f"{as_flags({k: v for k, v in TRIPLET_LFW.items() if k != 'loss'})} (options given override it)",
    )
    p.add_argument(
        "--fold",
        type=int,
        default=S,
        help="View 2 fold to test (0..9; required by --protocol view2, not allowed otherwise); its people "
        "are left out of training",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=S,
        help="fraction of the identities held out for evaluation, the last in natural order (ORL: 0.25 = "
        "s31-s40); at least 2 are held out and at least 2 must remain to train on; not used with "
        f"--protocol, whose split is LFW's (default {TrainConfig().holdout})",
    )
    add_training_options(p)


# lfw-view2 always reads LFW: these options' unset defaults are LFW's alone (see data.face_cache.Preprocess).
LFW_UNSET_HELP = {
    "--image-size": "stored square side (default: 64)",
    "--channels": "1 or 3 (default: 1)",
    "--crop-box": "side of the centred square cut from each source image before resizing, in source pixels "
    "(default: the largest centred square)",
}


def add_training_options(p: argparse.ArgumentParser, lfw_only: bool = False) -> None:
    """The settings of a run (every TrainConfig field but data, protocol, fold and holdout) and how it runs
    (cache, workers, threads, progress): ``train``'s and ``lfw-view2``'s options alike. Each help ends with
    the field's default from TrainConfig; a field whose default is None says in its help what unset means
    (``lfw_only``: for LFW alone, as ``lfw-view2`` reads nothing else)."""
    d = TrainConfig()

    def opt(*names: str, help: str, **kw) -> None:
        flag = next(n for n in names if n.startswith("--"))
        default = getattr(d, flag[2:].replace("-", "_"))
        if lfw_only and flag in LFW_UNSET_HELP:
            help = LFW_UNSET_HELP[flag]
        p.add_argument(*names, default=S, help=help if default is None else f"{help} (default {shown(default)})", **kw)

    opt("--image-size", type=int, help="stored square side (default: 64 for an image folder, 32 for the digits)")
    opt(
        "--channels",
        type=int,
        choices=(1, 3),
        help="1 or 3 (default: 1 for LFW; for an image folder 1 if every image is grayscale, else 3)",
    )
    opt(
        "--crop-box",
        type=int,
        help="LFW: side of the centred square cut from each source image before resizing, in source pixels "
        "(default: the largest centred square; an image folder always uses that)",
    )
    opt(
        "--input-size",
        type=int,
        help="network input side: random crops with --augment, the centre crop in evaluation (default: the image size)",
    )
    opt("--model", choices=MODELS, help="nn2 (NN2-style Inception) or small (3 conv layers, for tiny images)")
    opt("--width", type=float, help="channel multiplier of the network")
    opt("--depth", type=int, choices=(1, 2, 3), help="NN2 Inception stages kept (3x, 4x, 5x)")
    opt("--dropout", type=float, help="NN2: dropout on the pooled features before the embedding layer, in training")
    opt("--embedding-dim", type=int, help="embedding width")
    opt("--identities-per-batch", "-P", type=int, help="P, identities per batch (--sampler uniform: P*K images)")
    opt(
        "--images-per-identity",
        "-K",
        type=int,
        help="K, images per identity in a batch (--sampler uniform: P*K images)",
    )
    opt(
        "--sampler",
        choices=SAMPLERS,
        help="pk: P identities x K images; uniform: P*K random images (margin-softmax heads)",
    )
    opt(
        "--singletons",
        type=int,
        help="single-image people added to every P x K batch as negatives (with --loss arcface|magface: "
        "single-image people become classes)",
    )
    opt("--epochs", type=int, help=f"number of epochs, >= 1 ({QUICK['epochs']} with --quick)")
    opt("--steps-per-epoch", type=int, help="steps per epoch, >= 1 (default: one pass over the training images)")
    opt(
        "--loss",
        choices=LOSSES,
        help="triplet (FaceNet's, with online mining), or a margin-softmax head over the training identities "
        "(arcface, magface); under torchrun only triplet, without --memory-bank, is supported",
    )
    opt(
        "--mining",
        choices=MINING,
        help="the triplet loss's miner: semihard (FaceNet's), batch_hard, or all_semihard (every triplet within "
        "the margin)",
    )
    opt(
        "--margin",
        type=float,
        help="triplet margin, > 0; semihard and batch_hard mining select without it (it enters only the loss), "
        "all_semihard selects the triplets within it",
    )
    opt(
        "--head-scale",
        type=float,
        help=f"ArcFace/MagFace logit scale (default: the loss's own, ArcFace {loss_default(ArcFaceLoss, 'scale')}, "
        f"MagFace {loss_default(MagFaceLoss, 'scale')})",
    )
    opt(
        "--head-margin",
        type=float,
        help=f"ArcFace angular margin (default: the loss's {loss_default(ArcFaceLoss, 'margin')})",
    )
    for name, what in (
        ("l_a", "lower end of the magnitude clamp l_a"),
        ("u_a", "upper end of the magnitude clamp u_a"),
        ("l_m", "margin at l_a"),
        ("u_m", "margin at u_a"),
        ("lambda_g", "weight of the magnitude regulariser"),
    ):
        opt(
            f"--mag-{name.replace('_', '-')}",
            type=float,
            help=f"MagFace: {what} (default: the loss's {loss_default(MagFaceLoss, name)})",
        )
    opt(
        "--min-class-images",
        type=int,
        help="ArcFace/MagFace: a training person is a class when it has at least this many images",
    )
    opt("--people-fraction", type=float, help="train on this seeded random share of the training people")
    opt("--optimizer", choices=OPTIMIZERS, help="adagrad (FaceNet's), adam, or sgd (with momentum 0.9)")
    opt("--lr", type=float, help="learning rate, in (0, 10); with --schedule cosine, the rate at the first step")
    opt("--weight-decay", type=float, help="the optimiser's L2 weight decay, >= 0")
    opt("--schedule", choices=SCHEDULES, help="constant lr, or cosine decay to 0 over the run")
    opt(
        "--augment",
        action=argparse.BooleanOptionalAction,
        help="random crops of --input-size and flips (without --input-size: flips and shifts of up to 4 pixels)",
    )
    opt("--rotate", type=float, metavar="DEGREES", help="--augment also rotates by up to this many degrees either way")
    opt("--scale", type=float, metavar="FRACTION", help="--augment also zooms by a factor in 1 +- FRACTION")
    opt(
        "--new-identities",
        metavar="T1,T2",
        help="train on each training identity transformed (mirror, rot90, rot270) as new identities, where that "
        "makes another class (digits)",
    )
    opt("--hflip", action=argparse.BooleanOptionalAction, help="--augment mirrors images (--no-hflip for digits)")
    opt(
        "--flip-eval",
        action=argparse.BooleanOptionalAction,
        help="evaluate each image's embedding averaged with its mirror image's",
    )
    opt(
        "--degrade",
        type=float,
        metavar="FRACTION",
        help="degrade this fraction of each batch with --degrade-kinds (low-quality faces for MagFace to learn from)",
    )
    opt("--degrade-kinds", help=f"the degradations of --degrade: 'all' or a comma list of {','.join(DEGRADATIONS)}")
    opt(
        "--memory-bank",
        type=int,
        metavar="N",
        help="triplet loss: also mine against the last N training embeddings (XBM; not under torchrun)",
    )
    opt(
        "--arcface-fraction",
        type=float,
        metavar="FRACTION",
        help="--loss triplet: the first FRACTION of the steps train an ArcFace head (--head-scale, --head-margin) "
        "on uniform batches of P*K images, the rest fine-tune with triplets on P x K batches; in [0, 1)",
    )
    opt(
        "--seed",
        type=int,
        help="seed of every random draw of the run: the same command with the same --threads repeats a run; "
        "another thread count sums in another order and changes the last digits",
    )
    p.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="decoded-image cache for LFW (default $FACENET_EXT_CACHE, else $XDG_CACHE_HOME/facenet_ext, "
        "else ~/.cache/facenet_ext; never inside the data folder)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader worker processes for training batches (decoding the LFW cache always uses at "
        "least 2) (default 0)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Command line, then the --quick or --protocol preset, then TrainConfig's defaults (module doc).
    The data path is stored absolute, so a checkpoint can be evaluated from any directory."""
    # imported on use: it loads scikit-learn (about 4 s), which --help does not need
    from ..lfw.protocol import is_lfw_root

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
        if given.get("loss") == "triplet":  # P x K batches for the triplet loss
            preset = {**preset, **TRIPLET_LFW}
    values = {**preset, **given}
    if values.get("data") is not None:
        values["data"] = str(Path(values["data"]).expanduser().resolve())
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
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
        result = train(
            cfg,
            args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            cache_dir=args.cache,
            workers=args.workers,
        )
    except (CheckpointError, FileNotFoundError, NotADirectoryError, FileExistsError, ValueError) as exc:
        print(f"facenet-ext train: {exc}", file=sys.stderr)
        return 2
    if not result.main:  # torchrun: rank 0 alone reports
        return 128 + result.stop_signal if result.interrupted else 0
    if result.interrupted:
        print(result.summary)
        print(f"resume with: python -m facenet_ext train --resume --out {result.out} (and the same settings)")
        return 128 + result.stop_signal  # the shell's convention: 130 after Ctrl-C, 143 after SIGTERM
    print(result.summary)
    print(f"run folder: {result.out} (checkpoint.pt, metrics.json, train.png)")
    return 0
