"""Identity-balanced batches: P identities x K images each (FaceNet used 45 x 40 = 1800); or, for
margin-softmax heads, P*K images drawn uniformly.

A sampler keeps no random state: each batch comes from the ``torch.Generator`` passed to ``batch``. The
training loop passes every step its own generator, seeded from (seed, step, rank)
(:func:`facenet_ext.train.loop.step_generator`), so a resumed run draws exactly the batches the
uninterrupted run would have drawn, with no generator state in the checkpoint.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


class PKSampler:
    """Draws batches of ``identities_per_batch`` distinct identities and up to ``images_per_identity``
    distinct images of each (an identity with fewer images gives all it has). Identities with a single
    image cannot be anchors (they have no positive): with ``singletons`` > 0 that many of them are added
    to every batch as negatives only (a miner never pairs them as anchor and positive); with 0 they are
    left out of training, with a warning."""

    def __init__(
        self, labels: Tensor, identities_per_batch: int, images_per_identity: int, singletons: int = 0
    ) -> None:
        if identities_per_batch < 2:
            raise ValueError(f"identities_per_batch must be >= 2 (a batch needs negatives), got {identities_per_batch}")
        if images_per_identity < 2:
            raise ValueError(f"images_per_identity must be >= 2 (a batch needs positives), got {images_per_identity}")
        labels = labels.to(torch.int64).cpu()
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        starts = torch.cumsum(counts, 0) - counts
        self._members = [order[s : s + c] for s, c in zip(starts.tolist(), counts.tolist())]
        single = [i for i, c in enumerate(counts.tolist()) if c == 1]
        self.singles = torch.cat([self._members[i] for i in single]) if single else torch.zeros(0, dtype=torch.int64)
        self.n_singles = min(singletons, len(single))
        if single and not singletons:
            warnings.warn(
                f"{len(single)} identit{'y has' if len(single) == 1 else 'ies have'} a single image and cannot be "
                f"anchors; they are skipped for training (labels {single[:10]}{' ...' if len(single) > 10 else ''})",
                stacklevel=2,
            )
        self.identities = torch.tensor([i for i, c in enumerate(counts.tolist()) if c >= 2], dtype=torch.int64)
        if self.identities.numel() < 2:
            raise ValueError(
                f"training needs at least two identities with two or more images, found {self.identities.numel()}"
            )
        self.p = min(identities_per_batch, int(self.identities.numel()))
        self.k = images_per_identity

    def batch(self, generator: torch.Generator) -> Tensor:
        """Indices of one P x K batch, grouped by identity (then the single-image negatives, if any)."""
        chosen = self.identities[torch.randperm(self.identities.numel(), generator=generator)[: self.p]]
        parts = []
        for identity in chosen.tolist():
            members = self._members[identity]
            parts.append(members[torch.randperm(members.numel(), generator=generator)[: self.k]])
        if self.n_singles:
            parts.append(self.singles[torch.randperm(self.singles.numel(), generator=generator)[: self.n_singles]])
        return torch.cat(parts)

    @property
    def batch_size(self) -> int:
        """The largest batch this sampler draws (P x K, plus the single-image negatives)."""
        return self.p * self.k + self.n_singles


class UniformSampler:
    """Batches of ``batch_size`` distinct images drawn uniformly among those of identities with two or
    more images (all images with ``singles``): what a margin-softmax head (ArcFace) trains on, where a
    batch needs no positives."""

    def __init__(self, labels: Tensor, batch_size: int, singles: bool = False) -> None:
        labels = labels.to(torch.int64).cpu()
        counts = torch.bincount(labels)
        self.pool = torch.arange(labels.numel()) if singles else (counts[labels] >= 2).nonzero().flatten()
        if self.pool.numel() < 2:
            raise ValueError(f"training needs images of identities with two or more images, found {self.pool.numel()}")
        self.batch_size = min(batch_size, int(self.pool.numel()))

    def batch(self, generator: torch.Generator) -> Tensor:
        return self.pool[torch.randperm(self.pool.numel(), generator=generator)[: self.batch_size]]


class PhasedSampler:
    """``first``'s batches before step ``switch_step``, ``second``'s from it on (ArcFace on uniform batches,
    then triplets on P x K batches: ``--arcface-fraction``)."""

    def __init__(self, first, second, switch_step: int) -> None:
        self.first, self.second, self.switch_step = first, second, switch_step

    def batch_at(self, step: int, generator: torch.Generator) -> Tensor:
        return (self.first if step < self.switch_step else self.second).batch(generator)

    @property
    def batch_size(self) -> int:
        return max(self.first.batch_size, self.second.batch_size)
