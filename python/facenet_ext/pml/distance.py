"""PML's distance objects, read as one of the three metrics our fused ops compute.

PML computes a distance matrix from (optionally normalised) embeddings and compares entries of it. Our
ops compute squared Euclidean distances D from the embeddings they are given. Three PML distances are
the same thing up to a monotone map, so the rules select the same triplets:

* ``LpDistance(p=2, power=1)``: d = sqrt(D) (our ``squared=False``);
* ``LpDistance(p=2, power=2)``: d = D (our ``squared=True``);
* ``CosineSimilarity()`` (or ``DotProductSimilarity(normalize_embeddings=True)``), power 1: on unit rows
  s = 1 - D/2, so a similarity gap s_ap - s_an equals (D_an - D_ap)/2: squared distances with the
  margin doubled, and losses halved.

``normalize_embeddings`` decides whether the rows are normalised first (``F.normalize``, as PML does,
with the gradient through it). Anything else (another ``p``, another ``power``, an unnormalised dot
product, a subclass that overrides ``compute_mat``, another distance class) raises ``ValueError``: it
cannot be fused, and silently computing another metric would train another model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from torch import Tensor

from .._dispatch import acc_dtype
from ..distances import pairwise_sq_dist


@dataclass(frozen=True)
class Metric:
    """How to compute a PML distance with our ops: normalise the rows or not, then squared Euclidean
    distances (``squared``) or plain ones; ``cosine``: PML compares similarities s = 1 - D/2, so margins
    in PML's units are ``scale`` = 2 times ours and losses half of ours."""

    normalize: bool
    squared: bool
    cosine: bool

    @property
    def scale(self) -> float:
        """Our margin (and loss) per unit of PML's: 2 for cosine similarity, else 1."""
        return 2.0 if self.cosine else 1.0

    def rows(self, emb: Tensor) -> Tensor:
        """The rows our ops see: ``emb`` normalised as PML normalises it, or ``emb`` itself."""
        return F.normalize(emb, p=2, dim=1) if self.normalize else emb

    def farness(self, x: Tensor, ref: Tensor | None) -> Tensor:
        """The B x N matrix of PML's distance between rows ``x`` and ``ref`` (``None``: ``x`` itself), in
        PML's units and oriented so that larger is farther: the distance, or minus the similarity; float32
        for float16/bfloat16 rows. Differentiable; plain distances have a zero gradient at a zero distance
        (never NaN)."""
        if self.cosine:  # in float32 for float16/bfloat16 rows, as pairwise_sq_dist computes
            acc = acc_dtype(x.dtype)
            return -(x.to(acc) @ (x if ref is None else ref).to(acc).T)
        sq = pairwise_sq_dist(x, ref)
        if self.squared:
            return sq
        positive = sq > 0
        return torch.where(positive, torch.where(positive, sq, 1).sqrt(), 0)

    def pair_values(self, x: Tensor, ref: Tensor, i: Tensor, j: Tensor) -> Tensor:
        """PML's distance matrix at the entries (i, j), as PML reports it (similarities not negated)."""
        if self.cosine:
            return (x[i] * ref[j]).sum(1)
        sq = (x[i] - ref[j]).square().sum(1)
        return sq if self.squared else sq.sqrt()


def resolve(owner: str, distance: object) -> Metric:
    """The metric of ``distance`` (a PML distance object), or ``ValueError`` naming ``owner``'s
    ``distance`` argument when our fused ops cannot compute it."""
    kind = type(distance)
    p, power = getattr(distance, "p", None), getattr(distance, "power", None)
    if kind is LpDistance and p == 2 and power in (1, 2):
        return Metric(normalize=bool(distance.normalize_embeddings), squared=power == 2, cosine=False)
    if kind in (CosineSimilarity, DotProductSimilarity) and distance.normalize_embeddings and power == 1 and p == 2:
        return Metric(normalize=True, squared=True, cosine=True)
    raise ValueError(
        f"{owner}: distance {kind.__name__}(p={p}, power={power}, "
        f"normalize_embeddings={getattr(distance, 'normalize_embeddings', None)}) cannot be fused; supported: "
        "LpDistance(p=2, power=1 or 2, normalize_embeddings=True or False) and CosineSimilarity() "
        "(power=1). Use pytorch_metric_learning's own class for other distances."
    )
