"""Embedding an image set with a model (or with raw pixels, the baseline) for evaluation."""
from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from .images import ImageSet, standardize


def embed_images(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """L2-normalised embeddings of uint8 images [N, C, H, W]; see :func:`embed_features`."""
    return torch.nn.functional.normalize(embed_features(model, images, batch_size), dim=1)


@torch.no_grad()
def embed_features(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """The model's unnormalised features (``model.features``; their norm is MagFace's quality score),
    in eval mode (BatchNorm running statistics); the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.features(standardize(images[i : i + batch_size])) for i in range(0, images.shape[0], batch_size)])
    finally:
        model.train(was_training)


def raw_pixel_embeddings(images: Tensor) -> Tensor:
    """The baseline every learned embedding should beat: standardised pixels, L2-normalised."""
    return torch.nn.functional.normalize(standardize(images).flatten(1), dim=1)


TABLE_KEYS = ("val_at_far_1e-3", "val_at_far_1e-2", "accuracy_10fold", "auc", "eer", "knn_top1", "cluster_f1", "cluster_nmi")


def metrics_table(columns: dict[str, dict], title: str = "metric") -> str:
    """A plain-text table: one row per headline metric, one column per ``name -> evaluate(...)`` result."""
    lines = [f"{title:<18}" + "".join(f"{name:>12}" for name in columns)]
    lines += [f"{key:<18}" + "".join(f"{m[key]:>12.4f}" for m in columns.values()) for key in TABLE_KEYS]
    return "\n".join(lines)


def evaluate(emb: Tensor, data: ImageSet, seed: int = 0) -> dict:
    """Held-out verification, identification and clustering metrics (see facenet_ext.eval)."""
    from ..eval import evaluate_embeddings

    # plain Python numbers: metrics go into metrics.json and into checkpoints read with weights_only=True
    return json.loads(json.dumps(evaluate_embeddings(emb, data.labels, seed=seed), default=float))
