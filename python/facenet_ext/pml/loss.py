"""PML's ``TripletMarginLoss`` through our fused ops (subclassing PML's, so ``forward``, the reducer,
regularisers and ``ref_emb``/``ref_labels`` handling are PML's own code; only ``compute_loss`` is ours)."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.reducers import AvgNonZeroReducer, MeanReducer, MultipleReducers, SumReducer
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from .._checks import check_margin
from ..triplet import triplet_loss
from ._inputs import check_batch, check_indices_tuple
from .distance import resolve
from .window import window_loss

_OWNER = "TripletMarginLoss"
# Per-triplet losses two ways, with the same values. Our native op recomputes each triplet's distances
# from the rows: O(T·D), best while T is small (batch-hard: T = B). Gathering from the B x N distance
# matrix costs its GEMM forward and backward plus O(T), best for PML's many-triplet miners (semihard at
# K = 40 lists T >> B·N). Measured at B = 256, 1 thread: 678k semihard triplets take 225 ms through the
# native op and 40 ms through the matrix; the crossover is near T = B·N / 8.
_ROWS_PER_TRIPLET = 8


def _from_rows(metric, x, r, a, p, n, margin):
    """The per-triplet losses by facenet_ext.triplet_loss (positives/negatives index ``r``, or ``x`` when
    ``r`` is None): for similarities, squared distances of unit rows with the margin and loss scaled."""
    rows = x
    if r is not None:  # positives and negatives index the reference set, stacked after the batch
        rows, p, n = torch.cat([x, r]), p + x.shape[0], n + x.shape[0]
    losses = triplet_loss(rows, None, margin * metric.scale, mining=(a, p, n), squared=metric.squared, reduction="none")
    return losses / metric.scale if metric.cosine else losses


def _fused_reduction(reducer) -> str:
    """The reduction of the triplet term that the window loss computes itself (no per-triplet losses
    exist to hand to PML's reducer): PML's default ``AvgNonZeroReducer`` is our "mean_active"."""
    if isinstance(reducer, MultipleReducers):
        reducer = reducer.reducers["loss"] if "loss" in reducer.reducers else reducer.default_reducer
    kind = type(reducer)
    if kind is AvgNonZeroReducer and reducer.low == 0 and reducer.high is None:
        return "mean_active"
    if kind is MeanReducer:
        return "mean"
    if kind is SumReducer:
        return "sum"
    raise ValueError(
        f"{_OWNER}: reducer {kind.__name__} cannot be fused over all triplets (no indices_tuple): the fused "
        "loss supports AvgNonZeroReducer (the default), MeanReducer and SumReducer; pass an indices_tuple "
        "(e.g. from a miner) to use another reducer"
    )


def _own_reduction(reducer) -> str | None:
    """The reduction to apply ourselves to many gathered triplets (no per-triplet tensor handed to PML's
    reducer, whose boolean indexing costs more than the loss), or None to leave it to PML's reducer: one
    we do not know, or one that records statistics."""
    inner = reducer.reducers.get("loss", reducer.default_reducer) if isinstance(reducer, MultipleReducers) else reducer
    if inner.collect_stats:
        return None
    try:
        return _fused_reduction(reducer)
    except ValueError:
        return None


def _reduce(total, active, count, reduction: str):
    """PML's reducers from the summed loss, the number of non-zero terms and the number of terms."""
    if reduction == "mean_active":  # AvgNonZeroReducer (0, connected to the graph, when none is active)
        return total / active.clamp_min(1)
    if reduction == "mean":
        return total / max(count, 1) if isinstance(count, int) else total / count.clamp_min(1)
    return total


class _GatheredTripletSum(torch.autograd.Function):
    """``(sum_t [E[ap_t] - E[an_t] + m]_+, #non-zero terms)`` from the flattened distance matrix E and the
    flat indices of each triplet's two entries. The backward scatters with ``bincount`` into E's gradient:
    no per-triplet autograd graph, O(T) work and O(B·N) memory besides the indices."""

    @staticmethod
    def forward(ctx, flat, ap, an, margin):
        v = flat[ap] - flat[an] + margin
        active = v > 0
        ctx.save_for_backward(ap, an, active)
        ctx.size, ctx.dtype = flat.shape[0], flat.dtype
        return torch.where(active, v, 0).sum(), active.sum()

    @staticmethod
    def backward(ctx, grad_total, _grad_active):
        ap, an, active = ctx.saved_tensors
        w = active.to(ctx.dtype)
        grad = torch.bincount(ap, w, minlength=ctx.size) - torch.bincount(an, w, minlength=ctx.size)
        return grad.to(ctx.dtype) * grad_total, None, None, None


class TripletMarginLoss(pml_losses.TripletMarginLoss):
    r"""PML's ``TripletMarginLoss`` with its arguments and default reducer (``AvgNonZeroReducer``: the mean
    over triplets with a non-zero loss, our ``reduction="mean_active"``): :math:`[d_{ap} - d_{an} + m]_+`
    (similarities: :math:`[s_{an} - s_{ap} + m]_+`).

    * With an ``indices_tuple`` (triplets, or PML's 4-tuple of pairs, converted as PML converts them): the
      per-triplet losses, then PML's own reducer, whichever it is. Few triplets (T < B·N/8, e.g.
      batch-hard) go through :func:`facenet_ext.triplet_loss` (distances recomputed from the rows, O(T·D));
      many are gathered from our B x N distance matrix (one GEMM forward and backward, then O(T)) and,
      with PML's default reducer, ``MeanReducer`` or ``SumReducer`` (not collecting statistics), reduced
      here without a per-triplet autograd graph.
    * Without one, PML takes every triplet (a B x N x N tensor). Here the fused window loss
      (:func:`facenet_ext.pml.window.window_loss`) sums all of them from per-anchor sorted negative
      distances and prefix sums: exact, O(B·N log N) time, O(B·N) memory, no triplet list. The reducer
      must then be ``AvgNonZeroReducer``, ``MeanReducer`` or ``SumReducer`` (else ``ValueError``).

    ``distance`` as for the miners (``LpDistance(p=2, power=1 or 2)``, normalised or not, or
    ``CosineSimilarity()``); ``margin`` finite and >= 0. ``swap=True``, ``smooth_loss=True`` and an integer
    ``triplets_per_anchor`` are not supported (``ValueError``). float16/bfloat16 embeddings give float32
    losses (PML keeps their dtype).
    """

    def __init__(self, margin=0.05, swap=False, smooth_loss=False, triplets_per_anchor="all", **kwargs):
        for name, value, default in (
            ("swap", swap, False),
            ("smooth_loss", smooth_loss, False),
            ("triplets_per_anchor", triplets_per_anchor, "all"),
        ):
            if value != default:
                raise ValueError(f"{_OWNER}: {name}={value!r} is not supported by facenet_ext.pml (only {default!r})")
        check_margin(_OWNER, margin)
        super().__init__(margin=margin, swap=swap, smooth_loss=smooth_loss, triplets_per_anchor="all", **kwargs)
        resolve(_OWNER, self.distance)

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_or_indices_tuple_required(labels, indices_tuple)
        metric = resolve(_OWNER, self.distance)
        b = check_batch(_OWNER, embeddings, labels, ref_emb, ref_labels, labels_required=indices_tuple is None)
        margin = check_margin(_OWNER, self.margin, dtype=b.emb.dtype)
        x = metric.rows(b.emb)
        r = None if b.plain else metric.rows(b.ref_emb)
        if indices_tuple is None:
            reduction = _fused_reduction(self.reducer)
            total, active, count = window_loss(metric.farness(x, r), b.labels, b.ref_labels, b.exclude_self, margin)
            loss = _reduce(total, active, count, reduction)
            return {"loss": {"losses": loss, "indices": None, "reduction_type": "already_reduced"}}
        if len(indices_tuple) == 4:  # pairs: PML's own conversion (every a1 == a2 combination)
            indices_tuple = lmu.convert_to_triplets(indices_tuple, labels, ref_labels, t_per_anchor="all")
        a, p, n = check_indices_tuple(_OWNER, indices_tuple, b.emb.shape[0], b.ref_emb.shape[0], b.emb.device)
        if a.shape[0] == 0:
            return self.zero_losses()
        if a.shape[0] * _ROWS_PER_TRIPLET < b.emb.shape[0] * b.ref_emb.shape[0]:
            losses = _from_rows(metric, x, r, a, p, n, margin)
            return {"loss": {"losses": losses, "indices": (a, p, n), "reduction_type": "triplet"}}
        dist = metric.farness(x, r)
        reduction = _own_reduction(self.reducer)
        if reduction is None:  # another reducer, or its statistics wanted: PML's reducer on every loss
            losses = torch.relu(dist[a, p] - dist[a, n] + margin)
            return {"loss": {"losses": losses, "indices": (a, p, n), "reduction_type": "triplet"}}
        n_ref = dist.shape[1]
        row = a * n_ref
        total, active = _GatheredTripletSum.apply(dist.flatten(), row + p, row + n, margin)
        return {
            "loss": {
                "losses": _reduce(total, active, a.shape[0], reduction),
                "indices": None,
                "reduction_type": "already_reduced",
            }
        }
