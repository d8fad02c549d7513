"""``python -m facenet_ext eval``: embed an image folder with a trained checkpoint and evaluate it.

Verification on all pairs of the chosen identities (or on a ``pairs.txt`` in LFW's format), VAL at
FAR = 1e-3 and 1e-2, 10-fold accuracy, ROC/AUC/EER, rank-1 identification and clustering, each next to
the raw-pixel baseline, and the error-versus-reject curve of the feature magnitude as quality score
(MagFace's; meaningful for ``--loss magface`` models); writes the files of ``OUTPUT_FILES``.
``--write-pairs`` writes an LFW-style 10-fold pair list for the folder instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

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
    from .checkpoint import CheckpointError

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


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    *,
    split: str | None = None,
    pairs_file: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    crop_box: int | None = None,
) -> dict:
    """Evaluate a checkpoint (see the module doc). The checkpoint's data path is absolute (older
    checkpoints: relative, resolved against the current directory, else the run folder). An LFW
    protocol run evaluates on its own test pairs unless ``data`` or ``pairs_file`` says otherwise.
    ``crop_box``: cut this centred square (source pixels) from each image of ``data`` before resizing."""
    from .. import eval as fe
    from ..quality import error_versus_reject, plot_erc
    from .checkpoint import load_checkpoint
    from .config import TrainConfig
    from .embed import embed_features, metrics_table, raw_pixel_embeddings
    from .images import load_digits_set, load_image_folder, split_identities
    from .lfw_protocol import images_dir, is_lfw_root
    from .loop import build_model, load_sets, resolve_data

    state = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    run_dir = Path(checkpoint).parent
    cfg_data = str(resolve_data(cfg.data, run_dir)) if cfg.data else None
    same_data = data is None or (cfg_data is not None and Path(data).resolve() == Path(cfg_data))
    in_channels = int(next(v for k, v in state["model"].items() if k.endswith("weight") and v.dim() == 4).shape[1])
    model = build_model(cfg, in_channels)
    model.load_state_dict(state["model"])
    protocol_pairs = None
    if cfg.protocol is not None and same_data and not pairs_file:
        # an LFW run: its own test pairs (View 1 DevTest, or the fold's pairs of View 2)
        if split not in (None, "heldout"):
            raise ValueError(f"--split {split} is not defined for an LFW protocol run; it evaluates on its test pairs")
        split = "heldout"
        _, _, images, protocol_pairs = load_sets(
            TrainConfig.from_dict({**cfg.to_dict(), "data": cfg_data}), cache_dir, progress=False
        )
    else:
        split = split or ("heldout" if same_data and not pairs_file else "all")
        folder = data or cfg_data
        if folder is not None and is_lfw_root(folder):  # LFW's person folders, with the run's crop unless told
            folder = str(images_dir(folder))
            crop_box = crop_box if crop_box is not None else cfg.crop_box
        if folder is None:
            images = load_digits_set(cfg.image_size or 32)
        elif crop_box is not None:  # a centred box of each image first, e.g. to frame ORL's faces as LFW's
            from .face_cache import Preprocess, load_cached_faces
            from .lfw_data import all_faces

            images = all_faces(
                load_cached_faces(
                    folder,
                    Preprocess(cfg.image_size or 64, in_channels, crop_box),
                    cache_dir,
                    workers=0,
                    progress=False,
                )
            )
        else:  # another folder is converted to the checkpoint's channels (grayscale ORL model on RGB faces)
            images = load_image_folder(folder, cfg.image_size or 64, in_channels)
        if split != "all":
            if not same_data or cfg.protocol is not None:
                raise ValueError(f"--split {split} needs the checkpoint's own training data, not {data!r}")
            train_set, held_set = split_identities(images, cfg.holdout)
            images = held_set if split == "heldout" else train_set

    pairs, subset = protocol_pairs, images
    if pairs_file:
        subset, pairs = _images_for_pairs(images, fe.read_pairs(pairs_file), folder)
    labels = subset.labels.numpy()
    features = embed_features(model, subset.images, input_size=cfg.input_size, flip=cfg.flip_eval)
    magnitude = features.norm(dim=1)
    embeddings = {
        "model": (features / magnitude[:, None]).numpy(),
        "raw pixels": raw_pixel_embeddings(subset.images, cfg.input_size).numpy(),
    }
    metrics = {name: fe.evaluate_embeddings(e, labels, pairs=pairs, seed=seed) for name, e in embeddings.items()}
    curves = {name: fe.roc_curve_points(e, labels, pairs=pairs) for name, e in embeddings.items()}

    out = Path(out) if out is not None else Path(checkpoint).parent
    out.mkdir(parents=True, exist_ok=True)
    fe.plot_roc({f"{name} (AUC {metrics[name]['auc']:.3f})": c for name, c in curves.items()}, out / "roc.png")
    erc = error_versus_reject(features, subset.labels, magnitude)
    plot_erc({f"{cfg.loss} model, quality = feature norm": erc}, out / "erc.png")
    np.savez(
        out / "embeddings.npz",
        embeddings=embeddings["model"],
        magnitude=magnitude.numpy(),
        labels=labels,
        identities=np.array(subset.identities),
        paths=np.array(subset.paths),
    )
    report = {
        "checkpoint": str(checkpoint),
        "data": data or cfg_data or "sklearn digits",
        "split": split,
        "pairs": pairs_file or (f"{cfg.protocol} test pairs" if protocol_pairs is not None else None),
        "identities": subset.identities,
        "images": len(subset),
        "metrics": metrics,
        "erc_quality_feature_norm": {k: np.asarray(v).tolist() for k, v in erc.items()},
    }
    if pairs is not None:  # a pair list (LFW): its ROC is small enough to keep, e.g. for lfw-view2's plot
        report["roc"] = {"far": curves["model"][0].tolist(), "val": curves["model"][1].tolist()}
    (out / "eval.json").write_text(json.dumps(report, indent=2, default=float))
    return {"out": out, "report": report, "table": metrics_table(metrics)}


def _images_for_pairs(images, pairs, root):
    """The images a pairs file names, in the order index_pairs gives them, and the IndexPairs into them."""
    from .. import eval as fe

    needed, index = fe.index_pairs(pairs)
    listing = fe.list_image_folder(root)
    row_of = {str(Path(p).resolve()): i for i, p in enumerate(images.paths)}
    rows, missing = [], []
    for name, idx in needed:
        lfw = fe.image_path(root, name, idx)
        path = (
            lfw
            if lfw.is_file()
            else (listing[name][idx - 1] if name in listing and 0 < idx <= len(listing[name]) else None)
        )
        row = row_of.get(str(Path(path).resolve())) if path is not None else None
        (missing if row is None else rows).append((name, idx) if row is None else row)
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) named in the pairs file are not in the data folder (or could not be read): "
            f"{missing[:5]}"
        )
    subset = type(images)(images.images[rows], images.labels[rows], images.identities, [images.paths[r] for r in rows])
    return subset, index


def _write_pairs(args: argparse.Namespace) -> int:
    from .. import eval as fe

    if not args.data:
        raise ValueError("--write-pairs needs --data (the folder to draw pairs from)")
    pairs = fe.make_pairs(fe.list_image_folder(args.data), seed=args.seed)
    fe.write_pairs(pairs, args.write_pairs)
    print(f"wrote {len(pairs)} pairs in {pairs.n_folds} folds to {args.write_pairs}")
    return 0
