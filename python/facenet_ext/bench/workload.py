"""The benchmark's input: a FaceNet-style batch of synthetic clustered embeddings.

B embeddings of ceil(B / K) identities, K consecutive images each (the last identity may be smaller), as
FaceNet samples them (45 people x 40 images = 1800). Each embedding is its identity's random unit centre
plus isotropic noise of norm about ``spread``, renormalised: with the default spread the same-identity and
different-identity distance distributions overlap, as mid-training, so every miner has real work (semi-hard
windows that are neither all empty nor all full). The same seed gives the same batch in every process.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Workload:
    batch: int
    dim: int = 128
    per_id: int = 40
    seed: int = 0
    spread: float = 1.5
    dtype: str = "float32"
    device: str = "cpu"

    def make(self) -> tuple[Tensor, Tensor]:
        """(embeddings [B, D], labels [B]) on ``device``; generated on the CPU so devices agree."""
        gen = torch.Generator().manual_seed(self.seed)
        ids = math.ceil(self.batch / self.per_id)
        labels = torch.arange(self.batch) // self.per_id
        centres = torch.nn.functional.normalize(torch.randn(ids, self.dim, generator=gen, dtype=torch.float64), dim=1)
        noise = torch.randn(self.batch, self.dim, generator=gen, dtype=torch.float64) * (
            self.spread / math.sqrt(self.dim)
        )
        emb = torch.nn.functional.normalize(centres[labels] + noise, dim=1)
        dtype = getattr(torch, self.dtype)
        return emb.to(device=self.device, dtype=dtype), labels.to(self.device)

    def pair_counts(self) -> tuple[int, int]:
        """(ordered anchor-positive pairs, candidate triplets sum_a |P(a)| |N(a)|), from the label layout."""
        sizes = [min(self.per_id, self.batch - s) for s in range(0, self.batch, self.per_id)]
        pairs = sum(k * (k - 1) for k in sizes)
        triplets = sum(k * (k - 1) * (self.batch - k) for k in sizes)
        return pairs, triplets

    def to_dict(self) -> dict:
        return asdict(self)
