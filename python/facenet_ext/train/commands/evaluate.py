"""``python -m facenet_ext eval``: embed an image folder with a trained checkpoint and evaluate it.

Verification on all pairs of the chosen identities (or on a ``pairs.txt`` in LFW's format), VAL at
FAR = 1e-3 and 1e-2, 10-fold accuracy, ROC/AUC/EER, rank-1 identification and clustering, each next to
the raw-pixel baseline, and the error-versus-reject curve of the feature magnitude as quality score
(MagFace's; meaningful for ``--loss magface`` models); writes the files of ``OUTPUT_FILES``.
``--write-pairs`` writes an LFW-style 10-fold pair list for the folder instead.

Here: the command's options and its run; the evaluation itself is
:func:`facenet_ext.train.checkpoint_eval.evaluate_checkpoint`.
"""

from __future__ import annotations

import argparse
import sys

from ..checkpoint import CheckpointError

SPLITS = ("all", "heldout", "train")
# What an evaluation writes into its --out folder, and what each file holds (the help lists them).
OUTPUT_FILES = {
    "eval.json": "the metrics of the model and of raw pixels, the error-versus-reject curve, and the model's ROC "
    "when it ran on a pair list",
    "roc.png": "the ROC of the model and of raw pixels",
    "erc.png": "the error-versus-reject curve with the feature magnitude as quality score",
    "embeddings.npz": "the normalised embeddings, feature magnitudes, labels, identities and image paths",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", help="RUN/checkpoint.pt written by `facenet_ext train` (required unless --write-pairs)"
    )
    p.add_argument(
        "--data",
        default=None,
        help="image folder ROOT/<identity>/<image> (the image files train reads) or an LFW folder "
        "(default: the checkpoint's training data)",
    )
    p.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="identities to evaluate: the checkpoint's held-out ones, its training ones, or all "
        "(default: heldout when --data is the training data and no --pairs is given, else all)",
    )
    p.add_argument(
        "--pairs",
        default=None,
        help="evaluate on these pairs (LFW pairs.txt format) instead of all pairs (default: all pairs of "
        "the chosen identities; an LFW protocol run: its own test pairs)",
    )
    p.add_argument(
        "--out", default=None, help=f"output folder for {', '.join(OUTPUT_FILES)} (default: the checkpoint's folder)"
    )
    p.add_argument(
        "--write-pairs",
        default=None,
        metavar="FILE",
        help="write an LFW-style 10-fold pairs file for --data and exit (nothing else is written)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the 10-fold split, the sampled different-identity pairs, the identification gallery "
        "and --write-pairs' pairs (default 0)",
    )
    p.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="decoded-image cache for LFW runs and --crop-box (default $FACENET_EXT_CACHE, else "
        "$XDG_CACHE_HOME/facenet_ext, else ~/.cache/facenet_ext)",
    )
    p.add_argument(
        "--crop-box",
        type=int,
        default=None,
        metavar="PIXELS",
        help="another --data folder: cut this centred square from each image before resizing (frame its "
        "faces as the training crop framed LFW's) (default: the largest centred square; an LFW "
        "folder: the run's crop box)",
    )
    p.epilog = "Files written into --out: " + "; ".join(f"{name}: {what}" for name, what in OUTPUT_FILES.items()) + "."


def run(args: argparse.Namespace) -> int:
    # imported on use: the evaluation loads scikit-learn (about 4 s), which --help does not need
    from ..checkpoint_eval import evaluate_checkpoint

    try:
        if args.write_pairs:
            return _write_pairs(args)
        if not args.checkpoint:
            raise ValueError("--checkpoint is required (or --write-pairs)")
        result = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            split=args.split,
            pairs_file=args.pairs,
            out=args.out,
            seed=args.seed,
            cache_dir=args.cache,
            crop_box=args.crop_box,
        )
    except (CheckpointError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"facenet-ext eval: {exc}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"results in {result['out']}: {', '.join(OUTPUT_FILES)}")
    return 0


def _write_pairs(args: argparse.Namespace) -> int:
    # imported on use: facenet_ext.eval loads scikit-learn (about 4 s), which --help does not need
    from ...eval import list_image_folder, make_pairs, write_pairs

    if not args.data:
        raise ValueError("--write-pairs needs --data (the folder to draw pairs from)")
    pairs = make_pairs(list_image_folder(args.data), seed=args.seed)
    write_pairs(pairs, args.write_pairs)
    print(f"wrote {len(pairs)} pairs in {pairs.n_folds} folds to {args.write_pairs}")
    return 0
