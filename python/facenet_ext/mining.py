"""The mining strategies, one table: for each kind its fused native op, its op over a distance matrix,
its streaming state, the distance its public miner uses by default, and whether the loss's margin
enters its selection. Every place in the library that dispatches on a mining kind (the public miners,
``triplet_loss``, the reference-set and streaming paths, ``facenet_ext.distributed``) reads this table;
the float64 oracles keep their own (``oracle.MINING_ORACLES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from . import (
    _C,  # noqa: F401  (registers torch.ops.facenet_ext.*)
    streaming,
)

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Strategy:
    """One mining kind. ``fused(emb, labels, margin, squared, drop)`` mines a plain batch in one native
    call; ``from_sq_dist(sq_dist, labels, ref_labels, exclude_self, margin, squared, drop)`` mines a
    distance matrix (a reference set, or one streamed chunk); ``stream_state`` keeps the running state of
    a streamed reference set. ``squared_default``: the public miner's distance (True = squared Euclidean).
    ``margin_selects``: ``triplet_loss`` mines with its margin (else the margin only enters the loss).
    ``fused_loss``: ``triplet_loss`` with a reduction has a native op that never lists the triplets
    (``all_semi_hard_loss``). ``padded(emb, labels, margin, squared, drop, capacity)``: the fused miner with
    ``capacity=`` as one native op, ``(a, p, n, found)`` with no host sync on CUDA; ``None``: the exact
    miner then ``pad_triplets``."""

    name: str
    squared_default: bool
    margin_selects: bool
    fused: Callable[..., Triplets]
    from_sq_dist: Callable[..., Triplets]
    stream_state: type
    fused_loss: bool = False
    padded: Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]] | None = None

    def mining_margin(self, margin: float) -> float | None:
        """The margin ``triplet_loss`` mines with: its own where it selects, else none."""
        return margin if self.margin_selects else None


MINING: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "semihard",
            squared_default=True,
            margin_selects=False,
            fused=lambda e, y, m, sq, drop: _ops.semi_hard_triplets(e, y, m, sq, drop),
            from_sq_dist=lambda d, y, ry, ex, m, sq, drop: _ops.semi_hard_from_sq_dist(d, y, ry, ex, m, sq, drop),
            stream_state=streaming.SemiHardState,
            padded=lambda e, y, m, sq, drop, c: _ops.semi_hard_triplets_padded(e, y, m, sq, drop, c),
        ),
        Strategy(
            "batch_hard",
            squared_default=True,
            margin_selects=False,
            fused=lambda e, y, m, sq, drop: _ops.batch_hard_triplets(e, y),
            from_sq_dist=lambda d, y, ry, ex, m, sq, drop: _ops.batch_hard_from_sq_dist(d, y, ry, ex),
            stream_state=streaming.BatchHardState,
            padded=lambda e, y, m, sq, drop, c: _ops.batch_hard_triplets_padded(e, y, c),
        ),
        Strategy(
            "all_semihard",
            squared_default=False,
            margin_selects=True,
            fused=lambda e, y, m, sq, drop: _ops.all_semi_hard_triplets(e, y, m, sq),
            from_sq_dist=lambda d, y, ry, ex, m, sq, drop: _ops.all_semi_hard_from_sq_dist(d, y, ry, ex, m, sq),
            stream_state=streaming.AllSemiHardState,
            fused_loss=True,
        ),
    )
}
