r"""Every triplet in a window of the margin d_an - d_ap, listed or summed, from a B x N distance matrix in
O(B·N) memory: never the B x N x N triplet tensor.

For each anchor the negatives' distances are sorted once; for a positive p, the negatives with
d_an - d_ap in a window are then a contiguous run of that sorted row, found by ``searchsorted``. So

* listing the triplets costs O(B N log N + T log T) for T triplets (the output, sorted as PML sorts it);
* the loss :math:`\sum_{a,p,n} [d_{ap} - d_{an} + m]_+` over *all* triplets needs no listing at all: with
  :math:`c_{ap}` negatives closer than :math:`d_{ap} + m` and :math:`S_a(c)` the sum of anchor a's c
  smallest negative distances (a prefix sum), the pair (a, p) contributes
  :math:`c_{ap}(d_{ap} + m) - S_a(c_{ap})`. Exact (the prefix sums accumulate in float64), O(B N log N)
  time, O(B N) memory; autograd differentiates it through the sort and the prefix sums.

Window edges compare ``d_an <= d_ap + m`` (one rounding) where PML compares ``d_an - d_ap <= m``: on
float32 data a triplet within a rounding error of an edge can fall on the other side; in float64 the two
agree except on ties at the edge.

``dist`` is any matrix where larger means farther (a similarity enters negated), ``labels`` [B] and
``ref_labels`` [N]; ``exclude_self``: entry (i, i) is not a positive pair (the reference set is the batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _sorted_negatives(dist: Tensor, labels: Tensor, ref_labels: Tensor, exclude_self: bool):
    """(positive-pair mask [B, N], each row's negative distances sorted ascending with +inf after them,
    the column of each sorted entry, the number of negatives per row)."""
    same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)
    pos = same.clone()
    if exclude_self:
        pos.fill_diagonal_(False)
    # stable: equal distances keep column order, so ties at an edge resolve the same way every run
    srt, order = dist.masked_fill(same, math.inf).sort(dim=1, stable=True)
    return pos, srt, order, (~same).sum(1)


def _counts(srt: Tensor, bound: Tensor, inclusive: bool) -> Tensor:
    """Per entry of ``bound`` [B, N], how many of its row's sorted negatives are below it (``<=`` with
    ``inclusive``); the +inf padding is never counted while ``bound`` is finite."""
    return torch.searchsorted(srt, bound, right=inclusive)


def window_triplets(
    dist: Tensor, labels: Tensor, ref_labels: Tensor, exclude_self: bool, low: float | None, high: float | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Every (a, p, n) with ``low < d_an - d_ap <= high`` (``None``: unbounded on that side), as int64
    (anchor, positive, negative) sorted by (a, p, n), PML's order. ``dist`` is not differentiated."""
    dist = dist.detach()
    pos, srt, order, n_neg = _sorted_negatives(dist, labels, ref_labels, exclude_self)
    a, p = pos.nonzero(as_tuple=True)  # row-major: sorted by (a, p)
    start = torch.zeros_like(a) if low is None else _counts(srt, dist + low, True)[a, p]
    end = n_neg[a] if high is None else _counts(srt, dist + high, True)[a, p]
    lengths = (end - start).clamp_min(0)
    group = torch.repeat_interleave(torch.arange(a.shape[0], device=a.device), lengths)
    offset = torch.arange(group.shape[0], device=a.device) - (lengths.cumsum(0) - lengths)[group]
    n = order[a[group], start[group] + offset]
    # Within a pair the run is in distance order; PML lists negatives by index.
    n_ref = dist.shape[1]
    perm = (group * n_ref + n).argsort()
    return a[group][perm], p[group][perm], n[perm]


def window_loss(
    dist: Tensor, labels: Tensor, ref_labels: Tensor, exclude_self: bool, margin: float
) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(sum, active, total)`` over every triplet: the summed :math:`[d_{ap} - d_{an} + m]_+`
    (differentiable in ``dist``, in its dtype), the number of triplets with a non-zero loss
    (d_an < d_ap + m) and the number of triplets, both 0-d int64. See the module docstring."""
    pos, srt, _, n_neg = _sorted_negatives(dist, labels, ref_labels, exclude_self)
    d = dist.detach()
    count = _counts(srt.detach(), d + margin, False).masked_fill_(~pos, 0)
    acc = torch.float64
    finite = torch.where(torch.isinf(srt), 0, srt).to(acc)
    prefix = F.pad(finite.cumsum(1), (1, 0))  # prefix[a, k]: sum of anchor a's k smallest negative distances
    per_pair = count.to(acc) * (dist.to(acc) + margin) - prefix.gather(1, count)
    total = (pos.sum(1) * n_neg).sum()
    return per_pair.sum().to(dist.dtype), count.sum(), total
