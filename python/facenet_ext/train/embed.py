"""Embedding an image set with a model (or with raw pixels, the baseline) for evaluation."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.images import ImageSet, center_crop, standardize


def embed_images(
    model: nn.Module, images: Tensor, batch_size: int = 256, *, input_size: int | None = None, flip: bool = False
) -> Tensor:
    """L2-normalised embeddings of uint8 images [N, C, H, W]; see :func:`embed_features`."""
    return torch.nn.functional.normalize(
        embed_features(model, images, batch_size, input_size=input_size, flip=flip), dim=1
    )


@torch.no_grad()
def embed_features(
    model: nn.Module, images: Tensor, batch_size: int = 256, *, input_size: int | None = None, flip: bool = False
) -> Tensor:
    """The model's unnormalised features (``model.features``; their norm is MagFace's quality score) of
    the centred ``input_size`` window of each image, in eval mode (BatchNorm running statistics); the
    model's train/eval mode is restored afterwards. ``flip``: the mean of the normalised features of the
    image and of its mirror image, times the image's own feature norm (a face and its mirror image are
    the same face; averaging removes some pose noise)."""
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = standardize(center_crop(images[i : i + batch_size], input_size))
            f = model.features(x)
            if flip:
                g = model.features(x.flip(-1))
                f = F.normalize(F.normalize(f, dim=1) + F.normalize(g, dim=1), dim=1) * f.norm(dim=1, keepdim=True)
            out.append(f)
        return torch.cat(out)
    finally:
        model.train(was_training)


def raw_pixel_embeddings(images: Tensor, input_size: int | None = None) -> Tensor:
    """The baseline every learned embedding should beat: standardised pixels (of the same centred window
    the network sees), L2-normalised."""
    return F.normalize(standardize(center_crop(images, input_size)).flatten(1), dim=1)


TABLE_KEYS = (
    "val_at_far_1e-3",
    "val_at_far_1e-2",
    "accuracy_10fold",
    "auc",
    "eer",
    "knn_top1",
    "cluster_f1",
    "cluster_nmi",
)


def metrics_table(columns: dict[str, dict], title: str = "metric") -> str:
    """A plain-text table: one row per headline metric, one column per ``name -> evaluate(...)`` result."""
    lines = [f"{title:<18}" + "".join(f"{name:>12}" for name in columns)]
    lines += [f"{key:<18}" + "".join(f"{m[key]:>12.4f}" for m in columns.values()) for key in TABLE_KEYS]
    return "\n".join(lines)


def evaluate(emb: Tensor, data: ImageSet, seed: int = 0, pairs=None) -> dict:
    """Held-out verification, identification and clustering metrics (see facenet_ext.eval), on all
    pairs of ``data`` or on the given IndexPairs (LFW's test pairs)."""
    # imported on use: it loads scikit-learn (about 4 s), which --help does not need
    from ..eval import evaluate_embeddings

    # plain Python numbers: metrics go into metrics.json and into checkpoints read with weights_only=True
    return json.loads(json.dumps(evaluate_embeddings(emb, data.labels, seed=seed, pairs=pairs), default=float))
