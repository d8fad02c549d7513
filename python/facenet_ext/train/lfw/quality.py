"""The pieces of the MagFace-on-LFW quality experiment (``experiments/lfw_quality.py``):
the held-out people of a View 2 fold, a trained run's features, and one run's quality report.

Held-out people are those of set ``fold`` of ``people.txt``: a View 2 run of that fold never trained on
them. All their images are scored (at most ``max_per_person`` per person, the first in file order, so
that no single person's pairs swamp the error-versus-reject curves).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...quality import error_versus_reject, fnmr_at, quality_auc_by_kind, random_rejection, template_verification
from ..checkpoint import load_checkpoint
from ..config import TrainConfig
from ..data.degrade import DEGRADATIONS, degrade
from ..data.face_cache import Preprocess, load_cached_faces
from ..data.images import ImageSet
from ..embed import embed_features
from ..loop import build_model, load_sets, subset_people
from .data import all_faces
from .protocol import images_dir, read_people

ERC_FRACTIONS = tuple(i / 20 for i in range(11))  # 0 .. 50 % rejected, in steps of 5 %
REPORT_FRACTIONS = (0.1, 0.2, 0.3)


def cap_per_person(data: ImageSet, max_per_person: int | None) -> ImageSet:
    """The first ``max_per_person`` images of each person of ``data`` (all of them when None)."""
    if max_per_person is None:
        return data
    rank = torch.zeros_like(data.labels)
    seen: dict[int, int] = {}
    for r, label in enumerate(data.labels.tolist()):
        rank[r] = seen.get(label, 0)
        seen[label] = rank[r].item() + 1
    keep = rank < max_per_person
    rows = keep.nonzero().flatten().tolist()
    return ImageSet(data.images[keep], data.labels[keep], list(data.identities), [data.paths[i] for i in rows])


def heldout_people(
    root: str | Path, fold: int, cfg, *, cache_dir=None, max_per_person: int | None = 20, progress: bool = False
) -> ImageSet:
    """Every image (capped per person) of the people in set ``fold`` of ``people.txt``, preprocessed as the
    run ``cfg`` was trained (crop box, size, channels), from the shared decoded-image cache."""
    people = read_people(Path(root) / "people.txt")
    if not 0 <= fold < len(people.sets):
        raise ValueError(f"fold must be in 0..{len(people.sets) - 1}, got {fold}")
    prep = Preprocess(cfg.image_size or 64, cfg.channels or 1, cfg.crop_box)
    faces = all_faces(load_cached_faces(images_dir(root), prep, cache_dir, workers=2, progress=progress))
    return cap_per_person(faces.select_identities(people.names([fold])), max_per_person)


def training_people_sample(cfg, n: int = 1200, per_person: int = 3, seed: int = 0, cache_dir=None) -> ImageSet:
    """``n`` images (seeded) of the people the run ``cfg`` trained on (its classes: the same share of the
    people and minimum images per class), at most ``per_person`` each: the "seen people" control, which
    separates "the loss learned no quality score" from "the score does not carry over to new people"."""
    _, train_set, _, _ = load_sets(cfg, cache_dir, progress=False)
    if cfg.people_fraction < 1:
        train_set = subset_people(train_set, cfg.people_fraction, cfg.seed)
    counts = train_set.counts().tolist()
    train_set = cap_per_person(
        train_set.select_identities(
            [name for name, c in zip(train_set.identities, counts) if c >= cfg.min_class_images]
        ),
        per_person,
    )
    rows = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return ImageSet(
        train_set.images[rows],
        train_set.labels[rows],
        train_set.identities,
        [train_set.paths[i] for i in rows.tolist()],
    )


def load_run(run: str | Path):
    """(config, model in eval mode, metrics.json or None) of a run folder."""
    state = load_checkpoint(Path(run) / "checkpoint.pt")
    cfg = TrainConfig.from_dict(state["config"])
    in_channels = int(next(v for k, v in state["model"].items() if k.endswith("weight") and v.dim() == 4).shape[1])
    model = build_model(cfg, in_channels)
    model.load_state_dict(state["model"])
    model.eval()
    metrics_file = Path(run) / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    return cfg, model, metrics


def features_of(model, cfg, images: Tensor) -> Tensor:
    """The run's unnormalised features of uint8 images, as its evaluation computes them (centre crop,
    mirror averaging when the run was trained with ``flip_eval``); their norm is the quality score."""
    return embed_features(model, images, input_size=cfg.input_size, flip=cfg.flip_eval)


@dataclass
class QualitySet:
    """A held-out image set, its degraded copy and the degradation of each image (-1 = clean)."""

    clean: ImageSet
    degraded: Tensor
    kind: Tensor


def degraded_copy(data: ImageSet, fraction: float, seed: int) -> QualitySet:
    """``data`` and a copy with ``fraction`` of its images degraded, equal shares of all five kinds."""
    bad, kind = degrade(data.images, fraction, torch.Generator().manual_seed(seed), kinds="all")
    return QualitySet(data, bad, kind)


def _erc_summary(erc: dict) -> dict:
    return {f"fnmr_{round(100 * r)}": fnmr_at(erc, r) for r in (0.0, *REPORT_FRACTIONS)}


def quality_report(
    features: dict[str, tuple[Tensor, Tensor]],
    qs: QualitySet,
    *,
    seed: int,
    far: float = 1e-2,
    draws: int = 20,
    template_min_images: int = 4,
) -> dict:
    """One seed's report. ``features`` maps a model name (e.g. "magface", "arcface") to its (clean,
    degraded) features of ``qs``; each model's quality is its feature norm. Per model: the quality AUC
    (clean above degraded) overall and per kind, median quality per kind, the error-versus-reject curve on
    the degraded copy and on the clean images ("natural"), both with random rejection (``draws`` draws,
    on that model's embeddings) and the templates' verification (magnitude-weighted, mean, single
    images; on the clean and on the degraded images). Curves are kept for plotting."""
    labels = qs.clean.labels
    kind = qs.kind
    out = {}
    for name, (clean_f, bad_f) in features.items():
        q_bad, q_clean = bad_f.norm(dim=1), clean_f.norm(dim=1)
        r: dict = {"quality_auc": quality_auc_by_kind(q_bad.numpy(), kind.numpy(), DEGRADATIONS)}
        r["median_quality"] = {"clean": float(q_bad[kind == -1].median())}
        r["median_quality"].update(
            {k: float(q_bad[kind == i].median()) for i, k in enumerate(DEGRADATIONS) if (kind == i).any()}
        )
        for setting, (f, q) in {"degraded": (bad_f, q_bad), "natural": (clean_f, q_clean)}.items():
            erc = error_versus_reject(f, labels, q, ERC_FRACTIONS, far)
            rnd = random_rejection(f, labels, draws, seed, ERC_FRACTIONS, far)
            r[f"erc_{setting}"] = {k: np.asarray(v).tolist() for k, v in erc.items()}
            r[f"erc_{setting}_random_fnmr"] = rnd["fnmr"].tolist()
            r[f"erc_{setting}_summary"] = {
                **_erc_summary(erc),
                **{f"random_{k}": v for k, v in _erc_summary(rnd).items()},
            }
            s = r[f"erc_{setting}_summary"]
            drop, rnd_drop = s["fnmr_0"] - s["fnmr_20"], s["random_fnmr_0"] - s["random_fnmr_20"]
            s["reduction_20"], s["random_reduction_20"] = drop, rnd_drop
            s["reduction_ratio_20"] = drop / rnd_drop if rnd_drop > 0 else (float("inf") if drop > 0 else float("nan"))
        r["templates_clean"] = template_verification(
            clean_f, labels, torch.Generator().manual_seed(seed), template_min_images
        )
        r["templates_degraded"] = template_verification(
            bad_f, labels, torch.Generator().manual_seed(seed), template_min_images
        )
        out[name] = r
    return out


__all__ = [
    "cap_per_person",
    "heldout_people",
    "training_people_sample",
    "load_run",
    "features_of",
    "QualitySet",
    "degraded_copy",
    "quality_report",
]
