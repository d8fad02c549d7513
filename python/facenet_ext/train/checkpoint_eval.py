"""Evaluate a trained checkpoint (what ``python -m facenet_ext eval`` runs, and ``lfw-view2`` per fold):
embed an image folder, an LFW protocol run's test pairs or a ``pairs.txt`` list with the model and with
raw pixels, and write the metrics, ROC, error-versus-reject curve and embeddings
(:data:`facenet_ext.train.commands.evaluate.OUTPUT_FILES`). Loads scikit-learn (through
:mod:`facenet_ext.eval`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import eval as fe
from ..quality import error_versus_reject, plot_erc
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .data.face_cache import Preprocess, load_cached_faces
from .data.images import load_digits_set, load_image_folder, split_identities
from .embed import embed_features, metrics_table, raw_pixel_embeddings
from .lfw.data import all_faces
from .lfw.protocol import images_dir, is_lfw_root
from .loop import build_model, load_sets, resolve_data


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
