"""FaceNet's triplet loss with online mining: ``triplet_loss``.

A call takes the first of four paths (``_PATHS``) whose condition holds: the fused all-semi-hard loss,
which never lists its triplets; triplets mined in the batch; explicit triplets; or triplets from a
reference set, memory bank or streamed mining. Every path but the first then computes the same loss over
its triplets (``_loss_over``), exact or padded to ``capacity=``. The autograd Functions are in
``_triplet_autograd``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from . import (
    _custom_ops,  # noqa: F401  (loads the library, the ops' fake kernels and pad_triplets)
    cross_batch,
)
from ._checks import (
    check_bool,
    check_capacity,
    check_choice,
    check_embedding_shape,
    check_labels,
    check_margin,
    check_triplet_indices,
)
from ._dispatch import acc_dtype, apply_function, below_autograd, needs_grad
from ._triplet_autograd import AllSemiHardLoss, TripletLoss, TripletLossReduced, reduce_loss
from .memory_bank import MemoryBank
from .miners import mine, plain_batch
from .mining import MINING

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]
REDUCTIONS = ("mean", "mean_active", "sum", "none")


def resolve_squared(fn: str, squared: object, mining) -> bool:
    """``squared=None``: the distance of the mining strategy's own miner (squared for "semihard",
    "batch_hard" and explicit triplets, as in FaceNet; plain for "all_semihard", as its miner and
    pytorch-metric-learning), so ``mining="x"`` mines exactly what the public miner "x" mines."""
    if squared is None:
        return MINING[mining].squared_default if isinstance(mining, str) else True
    return check_bool(fn, "squared", squared)


def triplet_loss(
    emb: Tensor,
    labels: Tensor | None,
    margin: float = 0.2,
    *,
    mining: str | Triplets = "semihard",
    squared: bool | None = None,
    reduction: str = "mean",
    return_stats: bool = False,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory: MemoryBank | None = None,
    chunk_size: int | None = None,
    capacity: int | None = None,
):
    r"""FaceNet's triplet loss with online mining: :math:`L = [D_{ap} - D_{an} + \alpha]_+` over the mined
    triplets, with the two distances recomputed exactly from ``emb`` (so gradients are those of the
    loss, not of the mining's Gram-matrix expansion).

    ``mining``: ``"semihard"`` (FaceNet eq. 4 with TF-Addons' fallback: one triplet per positive pair;
    the margin does not enter the selection, as in FaceNet), ``"batch_hard"``, ``"all_semihard"`` (every
    triplet with 0 < D_an - D_ap <= margin), or an explicit ``(anchor, positive, negative)`` tuple of
    int64 tensors (``labels`` may then be ``None``). Each name mines exactly what its public miner mines.

    ``squared``: the distance D of both the mining and the loss: ``True`` squared Euclidean (FaceNet),
    ``False`` plain Euclidean. ``None`` (default) takes the mining strategy's own default: squared for
    "semihard", "batch_hard" and explicit triplets, plain for "all_semihard" (as
    :func:`all_semi_hard_triplets` and pytorch-metric-learning's ``TripletMarginMiner``).

    ``reduction``: ``"mean"`` over all mined triplets (TF-Addons' convention), ``"mean_active"`` over the
    triplets with non-zero loss, ``"sum"``, or ``"none"`` (the per-triplet losses, in float32 for
    float16/bfloat16 input). An empty batch or an empty mining result gives 0 (connected to the graph)
    and a zero gradient. Backward costs O(T·D) and is deterministic; second derivatives (``create_graph``)
    are exact, through a plain PyTorch expression of the same gradient.

    With ``return_stats=True`` returns ``(loss, stats)``; ``stats`` holds 0-d tensors (no host sync):
    ``num_triplets``, ``active_fraction``, ``mean_d_ap``, ``mean_d_an``.

    Reference sets, as for the miners: with ``ref_emb``/``ref_labels`` anchors come from ``emb`` and
    positives/negatives from ``ref_emb`` (gradients reach ``ref_emb`` too when it requires them); with
    ``memory=`` a :class:`facenet_ext.MemoryBank`, from the batch followed by the bank (XBM: the batch's
    own rows carry gradients, the bank's do not). Explicit ``mining`` indices then follow the miners'
    convention (positive/negative indices into the reference set). ``chunk_size`` streams the mining
    (see the miners). Only the mined rows of the reference set enter the loss: O(T·D), whatever N is.

    ``capacity``: static shapes for ``torch.compile`` and CUDA graphs. The triplets are padded (or
    truncated) to exactly ``capacity`` as by the miners' ``capacity=``; padding adds nothing to the loss
    and is not counted ("mean" divides by the number of triplets used, a tensor). ``reduction="none"``
    then returns ``capacity`` values, 0 for padding. ``mining="all_semihard"`` with a reduction never lists
    its triplets and has static shapes with or without it.
    """
    fn = "triplet_loss"
    emb = check_embedding_shape(fn, emb)
    if isinstance(mining, str):
        labels = check_labels(fn, labels, emb.shape[0], emb.device)
    margin = check_margin(fn, margin, dtype=emb.dtype)
    check_choice(fn, "reduction", reduction, REDUCTIONS)
    return_stats = check_bool(fn, "return_stats", return_stats)
    capacity = check_capacity(fn, capacity)
    if isinstance(mining, str):
        check_choice(fn, "mining", mining, tuple(MINING))
    squared = resolve_squared(fn, squared, mining)
    refs = (ref_emb, ref_labels, memory, chunk_size)
    call = _Call(fn, emb, labels, margin, mining, squared, reduction, return_stats, *refs, capacity)
    for path in _PATHS:  # the last path always applies
        if path.applies(call):
            return path.run(call)
    raise AssertionError("unreachable")


@dataclass  # not frozen: a frozen dataclass's __init__ costs microseconds a call
class _Call:
    """One call's checked arguments."""

    fn: str
    emb: Tensor
    labels: Tensor | None
    margin: float
    mining: str | Triplets
    squared: bool
    reduction: str
    return_stats: bool
    ref_emb: Tensor | None
    ref_labels: Tensor | None
    memory: MemoryBank | None
    chunk_size: int | None
    capacity: int | None

    @property
    def by_name(self) -> bool:
        return isinstance(self.mining, str)

    @property
    def in_batch(self) -> bool:
        """Positives and negatives come from the batch itself (no reference set or memory bank)."""
        return self.ref_emb is None and self.ref_labels is None and self.memory is None


@dataclass(frozen=True)
class _Path:
    name: str
    applies: Callable[[_Call], bool]
    run: Callable[[_Call], object]


def _fused_applies(c: _Call) -> bool:
    return (
        c.by_name
        and MINING[c.mining].fused_loss
        and c.reduction != "none"
        and plain_batch(c.emb, c.ref_emb, c.ref_labels, c.memory, c.chunk_size)
    )


def _mined_in_batch(c: _Call):
    cross_batch.check_chunk_size(c.fn, c.chunk_size)
    # The public miner's triplets with the loss's `squared` (and its margin where it selects).
    margin = MINING[c.mining].mining_margin(c.margin)
    mined = mine(c.fn, c.mining, c.emb, c.labels, margin, c.squared, chunk_size=c.chunk_size, capacity=c.capacity)
    return _loss_over(c, c.emb, mined)


def _explicit(c: _Call):
    cross_batch.check_chunk_size(c.fn, c.chunk_size)
    return _loss_over(c, c.emb, _padded(c, check_triplet_indices(c.fn, c.mining, c.emb, c.emb.shape[0])))


def _cross_batch(c: _Call):
    rows, *mined = cross_batch.reference_triplets(
        c.fn, c.mining, c.emb, c.labels, c.margin, c.squared, c.ref_emb, c.ref_labels, c.memory, c.chunk_size
    )
    return _loss_over(c, rows, _padded(c, mined))


def _padded(c: _Call, triplets) -> tuple:
    """``(a, p, n)``, or with ``capacity=`` ``(a, p, n, found)`` padded to it."""
    return tuple(triplets) if c.capacity is None else _ops.pad_triplets(*triplets, c.capacity)


def _loss_over(c: _Call, rows: Tensor, mined: tuple):
    """The loss over the triplets (indices into ``rows``): exact, or over ``capacity`` slots."""
    if c.capacity is None:
        return _exact_loss(c, rows, *mined)
    return _padded_loss(c, rows, *mined)


def _exact_loss(c: _Call, rows: Tensor, a: Tensor, p: Tensor, n: Tensor):
    if needs_grad(rows) and c.reduction != "none":
        # The reduction inside the one autograd node: no Sum/Div nodes in the graph (at B = 64 each
        # autograd node costs about as much as the whole backward kernel).
        out, loss, d_ap, d_an = apply_function(TripletLossReduced, rows, a, p, n, c.margin, c.squared, c.reduction)
    else:
        loss, d_ap, d_an = _per_triplet(c, rows, a, p, n)
        out = loss if c.reduction == "none" else reduce_loss(loss, c.reduction)
    return _with_stats(out, loss, d_ap, d_an, loss.shape[0], c.emb) if c.return_stats else out


def _padded_loss(c: _Call, rows: Tensor, a: Tensor, p: Tensor, n: Tensor, found: Tensor):
    """Static shapes: ``capacity`` triplet slots, the padding masked out of the loss."""
    valid = a >= 0
    # Padding reads row 0 (any valid row would do) and is multiplied by 0 below; an empty batch has no row
    # 0 and no triplet.
    a, p, n = (t.clamp_min(0)[: c.capacity if rows.shape[0] else 0] for t in (a, p, n))
    loss, d_ap, d_an = _per_triplet(c, rows, a, p, n)
    if rows.shape[0] == 0:
        loss = d_ap = d_an = rows.new_zeros((c.capacity,), dtype=acc_dtype(rows.dtype)) + rows.sum()
    mask = valid.to(loss.dtype)
    loss, d_ap, d_an = loss * mask, d_ap * mask, d_an * mask
    count = found.clamp_max(c.capacity)
    if c.reduction == "none":
        out = loss
    elif c.reduction == "mean":
        out = loss.sum() / count.clamp_min(1)  # the triplets kept, not the padded length
    else:
        out = reduce_loss(loss, c.reduction)
    return _with_stats(out, loss, d_ap, d_an, count, c.emb) if c.return_stats else out


def _per_triplet(c: _Call, rows: Tensor, a: Tensor, p: Tensor, n: Tensor):
    """(loss, d_ap, d_an) per triplet, differentiable in ``rows`` when it needs a gradient."""
    if needs_grad(rows):
        return apply_function(TripletLoss, rows, a, p, n, c.margin, c.squared)
    with below_autograd():
        return _ops.triplet_loss_forward(rows, a, p, n, c.margin, c.squared)


def _with_stats(out: Tensor, loss: Tensor, d_ap: Tensor, d_an: Tensor, count, emb: Tensor):
    """(out, stats) of triplet_loss: 0-d tensors, no host sync. ``count``: the triplets used, an int (or
    symbolic int) or a 0-d tensor."""
    static = isinstance(count, Tensor)
    denom = count.clamp_min(1) if static else torch.sym_max(count, 1)
    if static:
        num = count
    else:
        num = torch.tensor(count, device=emb.device) if isinstance(count, int) else loss.new_tensor(count)
    stats = {
        "num_triplets": num,
        "active_fraction": (loss.detach() > 0).to(loss.dtype).sum() / denom,
        "mean_d_ap": d_ap.detach().sum() / denom,
        "mean_d_an": d_an.detach().sum() / denom,
    }
    return out, stats


def _all_semi_hard_loss(c: _Call):
    """triplet_loss(mining="all_semihard") on a plain batch, reduced: one native call that never lists
    the triplets (up to B^2 K of them; O(B^2) memory), with the materialised path's value and gradient."""
    emb, labels, margin, squared, reduction = c.emb, c.labels, c.margin, c.squared, c.reduction
    if needs_grad(emb):
        sums, counts, _ = apply_function(AllSemiHardLoss, emb, labels, margin, squared)
    else:
        sums, counts, _ = _ops.all_semi_hard_loss(emb, labels, margin, squared, False)
    total, active = counts[0], counts[1]
    if reduction == "mean":
        out = sums[0] / total.clamp_min(1)
    elif reduction == "mean_active":
        out = sums[0] / active.clamp_min(1)
    else:
        out = sums[0]
    if not c.return_stats:
        return out
    denom = total.clamp_min(1)
    detached = sums.detach()
    stats = {
        "num_triplets": total,
        "active_fraction": active.to(sums.dtype) / denom,
        "mean_d_ap": detached[1] / denom,
        "mean_d_an": detached[2] / denom,
    }
    return out, stats


# The paths in the order triplet_loss tries them: the first whose condition holds runs.
_PATHS = (
    _Path("the fused all-semi-hard loss (no triplet list)", _fused_applies, _all_semi_hard_loss),
    _Path("triplets mined in the batch", lambda c: c.by_name and c.in_batch, _mined_in_batch),
    _Path("explicit triplets", lambda c: c.in_batch, _explicit),
    _Path("a reference set, memory bank or streamed mining", lambda c: True, _cross_batch),
)
