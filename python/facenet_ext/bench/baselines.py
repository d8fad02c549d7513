"""The miners people run today, each written from its published algorithm (no code vendored).

They exist to be timed against our ops on the same inputs, and checked against them first
(``facenet_ext.bench.agreement``). Each docstring states the exact rule implemented and where it differs
from ours (docs/semantics.md).

1. :func:`facenet_loop` — the per-pair Python loop of the popular FaceNet re-implementations.
2. :func:`siamese_triplet_loop` — the per-label loop of the "siamese-triplet" tutorial's semi-hard selector.
3. :func:`tf_addons_semihard_loss` — TF-Addons' ``triplet_semihard_loss``, vectorised with its tiled
   B² x B masks, ported to PyTorch.
4. :func:`sort_searchsorted_semi_hard` — our exact semi-hard rule in pure PyTorch, O(B² log B).
5. :func:`pml_semihard_miner`, :func:`pml_batch_hard_miner`, :func:`pml_triplet_loss` —
   pytorch-metric-learning's miners and loss (imported lazily: only the benchmark needs that package).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
from torch import Tensor

Triplets = tuple[Tensor, Tensor, Tensor]


def _as_triplets(rows: list[tuple[int, int, int]], device: torch.device) -> Triplets:
    t = torch.tensor(rows, dtype=torch.int64).reshape(-1, 3).to(device)
    return t[:, 0], t[:, 1], t[:, 2]


def _identities(labels: np.ndarray) -> list[np.ndarray]:
    """Members of each identity, in increasing index order (the loops walk a batch identity by identity)."""
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


# ---------------------------------------------------------------------------------------------------
# 1. per-pair Python loop (FaceNet re-implementations)
# ---------------------------------------------------------------------------------------------------
def facenet_loop(emb: Tensor, labels: Tensor, alpha: float = 0.2, *, seed: int = 0) -> Triplets:
    r"""Per-pair loop in the style of the widely used FaceNet re-implementations' ``select_triplets``.

    For each identity, for each anchor a (in index order), the squared distances from a to the whole
    batch are computed once with NumPy and the anchor's own identity is masked out; then for each
    *later* member p of the identity (unordered pairs a < p, as those re-implementations walk them)
    :math:`D_{ap}` is computed with NumPy and the negative is drawn uniformly at random from

    .. math:: \{ n : y_n \ne y_a,\ D_{ap} < D_{an},\ D_{an} - D_{ap} < \alpha \}

    (FaceNet's semi-hard window, squared distances). Pairs with an empty window yield no triplet.

    Differences from ``fx.semi_hard_triplets(emb, labels, margin=alpha, fallback="drop")``, which returns
    a triplet for exactly the same pairs: the negative is a random member of the window instead of its
    closest member, and only pairs a < p are visited (ours mines every ordered pair, twice as many, so
    speed-ups against this loop are understated by up to 2x).
    """
    x = emb.detach().cpu().numpy()
    lab = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for members in _identities(lab):
        for i, a in enumerate(members[:-1]):
            d_an = np.sum(np.square(x[a] - x), axis=1)
            d_an[members] = np.nan  # comparisons with NaN are false: own identity never selected
            for p in members[i + 1 :]:
                d_ap = np.sum(np.square(x[a] - x[p]))
                window = np.flatnonzero((d_an - d_ap < alpha) & (d_an > d_ap))
                if window.size:
                    rows.append((a, p, window[rng.integers(window.size)]))
    return _as_triplets(rows, emb.device)


# ---------------------------------------------------------------------------------------------------
# 2. per-label Python loop ("siamese-triplet" semi-hard negative selector)
# ---------------------------------------------------------------------------------------------------
def siamese_triplet_loop(emb: Tensor, labels: Tensor, margin: float = 0.2, *, seed: int = 0) -> Triplets:
    r"""Per-label loop in the style of the "siamese-triplet" tutorial's semi-hard triplet selector.

    The squared distance matrix is computed once in PyTorch by the Gram expansion
    :math:`\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2 x_i \cdot x_j` and moved to NumPy. Then per label:
    the anchor-positive pairs are ``itertools.combinations`` of the label's members (unordered, a < p),
    and for each pair the loss values :math:`\ell_n = D_{ap} - D_{an} + m` over all negatives are
    computed with NumPy; the negative is drawn uniformly at random among those with
    :math:`0 < \ell_n < m` — the same window as :func:`facenet_loop`, written as a loss test.

    Differences from ours: as for :func:`facenet_loop` (random member of the window, pairs a < p only).
    The tutorial returns a placeholder triplet when nothing at all is found; we return none.
    """
    x = emb.detach()
    sq = (x * x).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * x @ x.T).cpu().numpy()
    lab = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for members in _identities(lab):
        if members.size < 2:
            continue
        negatives = np.flatnonzero(lab != lab[members[0]])
        pairs = np.array(list(combinations(members, 2)))
        d_ap = dist[pairs[:, 0], pairs[:, 1]]
        for (a, p), ap in zip(pairs, d_ap):
            loss_values = ap - dist[a, negatives] + margin
            window = np.flatnonzero((loss_values < margin) & (loss_values > 0))
            if window.size:
                rows.append((a, p, negatives[rng.choice(window)]))
    return _as_triplets(rows, emb.device)


# ---------------------------------------------------------------------------------------------------
# 3. TF-Addons triplet_semihard_loss, ported with its tiled masks
# ---------------------------------------------------------------------------------------------------
def _tf_pairwise_distance(x: Tensor, squared: bool) -> Tensor:
    """TF-Addons' ``pairwise_distance``: Gram expansion clamped at 0; for plain distances a tiny epsilon
    under the square root where the distance is 0 (its NaN-gradient guard), then those entries and the
    diagonal set to exactly 0."""
    sq = (x * x).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)
    zero = d <= 0
    if not squared:
        d = torch.sqrt(d + zero.to(d.dtype) * 1e-16)
    d = d * (~zero).to(d.dtype)
    return d * (1 - torch.eye(x.shape[0], dtype=d.dtype, device=d.device))


def _masked_minimum(data: Tensor, mask: Tensor) -> Tensor:
    axis_max = data.max(1, keepdim=True).values
    return ((data - axis_max) * mask).min(1, keepdim=True).values + axis_max


def _masked_maximum(data: Tensor, mask: Tensor) -> Tensor:
    axis_min = data.min(1, keepdim=True).values
    return ((data - axis_min) * mask).max(1, keepdim=True).values + axis_min


def tf_addons_semihard_loss(emb: Tensor, labels: Tensor, margin: float = 1.0, *, squared: bool = False) -> Tensor:
    r"""TF-Addons' ``triplet_semihard_loss`` (``distance_metric="L2"``, or ``"squared-L2"`` with
    ``squared=True``), ported operation by operation to PyTorch, differentiable.

    The distance matrix is tiled B times into a B² x B tensor; row a + B·p holds anchor a's distances,
    and the mask of negatives of a farther than :math:`D_{ap}` is a B² x B boolean tensor. A masked
    minimum over it gives the closest such negative per (a, p); where there is none, the masked maximum
    over a's negatives (the easiest negative) is used. The loss is
    :math:`\sum_{a \ne p, y_a = y_p} [D_{ap} - D_{an} + m]_+` divided by the number of positive pairs.
    Memory is Θ(B³): that is the point of including it.

    Same rule and same value as ``fx.triplet_loss(emb, labels, margin, mining="semihard",
    squared=squared)``, except for anchors with no negative at all (an identity filling the batch), which
    TF-Addons still counts, with a meaningless negative, and ours drops.
    """
    B = emb.shape[0]
    pdist = _tf_pairwise_distance(emb, squared)
    adjacency = labels[:, None] == labels[None, :]
    adjacency_not = ~adjacency

    pdist_tile = pdist.repeat(B, 1)
    mask = adjacency_not.repeat(B, 1) & (pdist_tile > pdist.T.reshape(-1, 1))
    mask_final = (mask.sum(1, keepdim=True) > 0).reshape(B, B).T
    negatives_outside = _masked_minimum(pdist_tile, mask.to(pdist.dtype)).reshape(B, B).T
    negatives_inside = _masked_maximum(pdist, adjacency_not.to(pdist.dtype)).repeat(1, B)
    semi_hard_negatives = torch.where(mask_final, negatives_outside, negatives_inside)

    loss_mat = margin + pdist - semi_hard_negatives
    mask_positives = adjacency.to(pdist.dtype) - torch.eye(B, dtype=pdist.dtype, device=pdist.device)
    return (loss_mat * mask_positives).clamp_min(0).sum() / mask_positives.sum()


# ---------------------------------------------------------------------------------------------------
# 4. sort + searchsorted: our exact rule in pure PyTorch
# ---------------------------------------------------------------------------------------------------
def sort_searchsorted_semi_hard(
    emb: Tensor, labels: Tensor, margin: float | None = None, *, squared: bool = True
) -> Triplets:
    r"""``fx.semi_hard_triplets`` (fallback ``"easiest"``) in pure PyTorch, the fastest vectorised
    approach we know: O(B² log B) time, O(B²) memory.

    Each anchor's row of squared distances, with its own identity set to +inf, is sorted once (stable, so
    equal distances keep index order: ties to the smallest index); ``searchsorted(right=True)`` of every
    :math:`D_{ap}` in its anchor's row then gives the first negative strictly farther than the positive.
    Where none is, the farthest negative is taken (its first occurrence in the sorted row, again the
    smallest index). The optional margin keeps :math:`D_{an} < D_{ap} + m` (plain distances if
    ``squared=False``). Output sorted by (anchor, positive), like ours.
    """
    x = emb.detach()
    sq = (x * x).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min_(0)
    same = labels[:, None] == labels[None, :]
    sorted_d, order = torch.sort(dist.masked_fill(same, float("inf")), dim=1, stable=True)
    num_neg = (~same).sum(1)

    pos_mask = same.fill_diagonal_(False) & (num_neg > 0)[:, None]
    a, p = pos_mask.nonzero(as_tuple=True)
    d_ap = dist[a, p]
    first_farther = torch.searchsorted(sorted_d, dist, right=True)[a, p]
    far_d = sorted_d.gather(1, (num_neg - 1).clamp_min(0)[:, None])
    first_farthest = torch.searchsorted(sorted_d, far_d).squeeze(1)
    slot = torch.where(first_farther < num_neg[a], first_farther, first_farthest[a])
    n = order[a, slot]
    if margin is not None:
        d_an = dist[a, n]
        keep = (d_an < d_ap + margin) if squared else (d_an.sqrt() < d_ap.sqrt() + margin)
        a, p, n = a[keep], p[keep], n[keep]
    return a, p, n


def torch_triplet_loss(emb: Tensor, triplets: Triplets, margin: float = 0.2, *, squared: bool = True) -> Tensor:
    """Mean of [D_ap - D_an + margin]_+ over given triplets, by plain autograd: the loss that goes with
    :func:`sort_searchsorted_semi_hard` (gathers T x D rows, as a pure-PyTorch pipeline would)."""
    a, p, n = triplets
    d_ap = (emb[a] - emb[p]).pow(2).sum(1)
    d_an = (emb[a] - emb[n]).pow(2).sum(1)
    if not squared:
        d_ap, d_an = d_ap.sqrt(), d_an.sqrt()
    return (d_ap - d_an + margin).clamp_min(0).sum() / max(a.numel(), 1)


# ---------------------------------------------------------------------------------------------------
# 5. pytorch-metric-learning
# ---------------------------------------------------------------------------------------------------
def pml_semihard_miner(margin: float = 0.2):
    """``TripletMarginMiner(margin, type_of_triplets="semihard")``: every (a, p, n) with
    0 < D_an - D_ap <= margin over plain Euclidean distances of L2-normalised embeddings (its default
    ``LpDistance``). It enumerates all B·K·N candidate triplets first (a B³ mask below 2³¹ elements, a loop
    over anchors above). Same triplets as ``fx.all_semi_hard_triplets(emb, labels, margin)`` on unit-norm
    embeddings."""
    from pytorch_metric_learning.miners import TripletMarginMiner

    return TripletMarginMiner(margin=margin, type_of_triplets="semihard")


def pml_batch_hard_miner():
    """``BatchHardMiner()``: per anchor the farthest positive and the closest negative; same triplets as
    ``fx.batch_hard_triplets`` (up to ties, which ``torch.max``/``torch.min`` break their own way)."""
    from pytorch_metric_learning.miners import BatchHardMiner

    return BatchHardMiner()


def pml_triplet_loss(margin: float = 0.2):
    """``TripletMarginLoss(margin)``: [D_ap - D_an + margin]_+ on plain distances of normalised
    embeddings, averaged over the non-zero terms (its ``AvgNonZeroReducer``), i.e. our
    ``reduction="mean_active"`` with ``squared=False``. Its distance normalises inside the graph, so its
    gradient is ours composed with ``F.normalize`` (equal values on unit-norm input, different gradients
    unless ours is given the same normalisation)."""
    from pytorch_metric_learning.losses import TripletMarginLoss

    return TripletMarginLoss(margin=margin)


__all__ = [
    "facenet_loop",
    "siamese_triplet_loop",
    "tf_addons_semihard_loss",
    "sort_searchsorted_semi_hard",
    "torch_triplet_loss",
    "pml_semihard_miner",
    "pml_batch_hard_miner",
    "pml_triplet_loss",
]
