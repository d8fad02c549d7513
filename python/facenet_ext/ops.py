"""The public ops: one thin wrapper per native op, its fake (meta) kernel and its autograd.

Every wrapper checks what costs nothing (argument types, choices, scalars), then makes one call to
``torch.ops.facenet_ext.<op>``, which the dispatcher routes to the CPU or CUDA kernel; the native op
validates every tensor argument itself (shape, dtype, device, length, NaN/Inf) with the same exception
classes, so eager mode, ``torch.compile`` and a direct ``torch.ops`` call fail alike. Fake kernels make
the ops traceable by ``torch.compile(fullgraph=True)``; data-dependent triplet counts are unbacked
symbolic sizes (``ctx.new_dynamic_size()``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import (
    _C,  # noqa: F401  (loads the library: registers torch.ops.facenet_ext.*)
    cross_batch,
)
from ._checks import (
    acc_dtype,
    apply_function,
    below_autograd,
    check_bool,
    check_capacity,
    check_choice,
    check_embedding_shape,
    check_labels,
    check_margin,
    check_tensor,
    check_triplet_indices,
)
from .memory_bank import MemoryBank
from .mining import MINING

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]


# ---------------------------------------------------------------------------------------------------
# pairwise_sq_dist
# ---------------------------------------------------------------------------------------------------
def pairwise_sq_dist(x: Tensor, y: Tensor | None = None) -> Tensor:
    r"""Squared Euclidean distances :math:`D_{ij} = \lVert x_i - y_j \rVert^2`.

    ``x``: [B, D]; ``y``: [N, D] or ``None`` (then ``y = x``, and the result is exactly symmetric with an
    exactly zero diagonal). Never negative. float16/bfloat16 inputs accumulate, and return, in float32;
    float32/float64 return their own dtype. Differentiable in ``x`` and ``y`` (entries clamped to 0 carry
    no gradient), twice included. NaN/Inf inputs raise ``ValueError`` on the CPU; on CUDA (where a check
    would cost a host sync) they propagate to NaN distances, as with ``torch.cdist``.
    """
    fn = "pairwise_sq_dist"
    check_tensor(fn, "x", x)
    if y is not None:
        check_tensor(fn, "y", y)
    if _needs_grad(x, y):
        return apply_function(_PairwiseSqDist, x, y)
    with below_autograd():
        return _ops.pairwise_sq_dist(x, y)


@torch.library.register_fake("facenet_ext::pairwise_sq_dist")
def _(x, y):
    n = x.shape[0] if y is None else y.shape[0]
    return x.new_empty((x.shape[0], n), dtype=acc_dtype(x.dtype))


def _pairwise_setup(ctx, inputs, output):
    x, y = inputs
    ctx.has_y = y is not None
    ctx.save_for_backward(x, y if y is not None else x, output)


def _pairwise_backward(ctx, grad):
    x, y, out = ctx.saved_tensors
    # Entries clamped to zero (and the diagonal) carry no gradient; at a true zero distance the
    # analytic gradient 2 (x_i - y_j) is zero too, so the mask is exact.
    g = grad.to(out.dtype) * (out > 0)
    xa = x.to(out.dtype)
    if not ctx.has_y:
        gs = g + g.transpose(0, 1)
        grad_x = 2 * (gs.sum(1, keepdim=True) * xa - gs @ xa)
        return grad_x.to(x.dtype), None
    ya = y.to(out.dtype)
    grad_x = 2 * (g.sum(1, keepdim=True) * xa - g @ ya)
    grad_y = 2 * (g.sum(0).unsqueeze(1) * ya - g.transpose(0, 1) @ xa)
    return grad_x.to(x.dtype), grad_y.to(y.dtype)


torch.library.register_autograd("facenet_ext::pairwise_sq_dist", _pairwise_backward, setup_context=_pairwise_setup)


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# The public functions differentiate through these torch.autograd.Functions, which carry the same
# backward as the ops' register_autograd registration (used by direct torch.ops calls): the autograd
# class that register_autograd generates has no setup_context, so torch.func (grad, jacrev, vmap) refuses
# it; a Function with setup_context composes with torch.func.
class _PairwiseSqDist(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, y):
        with below_autograd():
            return _ops.pairwise_sq_dist(x, y)

    setup_context = staticmethod(_pairwise_setup)
    backward = staticmethod(_pairwise_backward)


# ---------------------------------------------------------------------------------------------------
# miners
# ---------------------------------------------------------------------------------------------------
def semi_hard_triplets(
    emb: Tensor,
    labels: Tensor,
    margin: float | None = None,
    *,
    squared: bool = True,
    fallback: str = "easiest",
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory: MemoryBank | None = None,
    chunk_size: int | None = None,
    capacity: int | None = None,
):
    r"""FaceNet's online semi-hard mining (Schroff et al. 2015, eq. 4): one triplet per ordered
    anchor-positive pair, with the negative

    .. math:: n^*(a, p) = \arg\min_{n:\, y_n \ne y_a,\ D_{an} > D_{ap}} D_{an}.

    If no negative is farther than the positive, ``fallback="easiest"`` takes the farthest negative
    (TF-Addons' rule) and ``fallback="drop"`` drops the pair. Anchors with no negative yield nothing (and
    cost nothing: a one-identity batch returns at once, without distances, except on CUDA with a margin or
    ``fallback="drop"``, where the count needs the distances before the one read-back). With ``margin`` set, only
    triplets with :math:`D_{an} < D_{ap} + \text{margin}` (non-zero loss) are returned; ``squared`` says
    whether that test compares squared or plain Euclidean distances (the selection itself is the same).
    Ties go to the smallest index. An empty batch gives empty tensors.

    Returns int64 ``(anchor, positive, negative)`` sorted by (anchor, positive). One native call: cost
    O(B^2 D) for the distances plus O(B (B log K)) for mining; memory O(B^2), never B^3. NaN/Inf
    embeddings raise ``ValueError``.
    """
    fn = "semi_hard_triplets"
    emb, labels = _check_batch(fn, emb, labels)
    m = check_margin(fn, margin, allow_none=True, dtype=emb.dtype)
    squared = check_bool(fn, "squared", squared)
    check_choice(fn, "fallback", fallback, ("easiest", "drop"))
    capacity = check_capacity(fn, capacity)
    refs = dict(ref_emb=ref_emb, ref_labels=ref_labels, memory=memory, chunk_size=chunk_size)
    return _mine(fn, "semihard", emb, labels, m, squared, fallback == "drop", **refs, capacity=capacity)


def batch_hard_triplets(
    emb: Tensor,
    labels: Tensor,
    *,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory: MemoryBank | None = None,
    chunk_size: int | None = None,
    capacity: int | None = None,
):
    """Batch-hard mining (Hermans et al. 2017): for every anchor with a positive and a negative, the
    farthest positive and the closest negative (ties to the smallest index). The selection is the same
    for squared and plain distances, so this miner takes no ``squared``. Sorted by anchor. One native
    call; NaN/Inf embeddings raise ``ValueError``."""
    fn = "batch_hard_triplets"
    emb, labels = _check_batch(fn, emb, labels)
    capacity = check_capacity(fn, capacity)
    refs = dict(ref_emb=ref_emb, ref_labels=ref_labels, memory=memory, chunk_size=chunk_size)
    return _mine(fn, "batch_hard", emb, labels, None, True, **refs, capacity=capacity)


def all_semi_hard_triplets(
    emb: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    *,
    squared: bool = False,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory: MemoryBank | None = None,
    chunk_size: int | None = None,
    capacity: int | None = None,
):
    r"""Every triplet with :math:`0 < D_{an} - D_{ap} \le \text{margin}` — the ``"semihard"`` rule of
    pytorch-metric-learning's ``TripletMarginMiner``. ``squared=False`` (the default, as there) compares
    plain Euclidean distances, ``squared=True`` squared ones; the two select different triplets.
    PML's default ``LpDistance`` normalises the embeddings inside the distance and this function does
    not: pass ``F.normalize(emb, dim=1)`` to get PML's triplets, or use the drop-in
    :class:`facenet_ext.pml.TripletMarginMiner` (docs/pml.md). Not :func:`semi_hard_triplets`, which is
    FaceNet's one-negative-per-pair rule. Sorted by (anchor, positive, negative). Output size is data
    dependent (up to B·K·N); working memory besides the output is O(B^2). One native call; NaN/Inf
    embeddings raise ``ValueError``."""
    fn = "all_semi_hard_triplets"
    emb, labels = _check_batch(fn, emb, labels)
    m = check_margin(fn, margin, dtype=emb.dtype)
    squared = check_bool(fn, "squared", squared)
    capacity = check_capacity(fn, capacity)
    refs = dict(ref_emb=ref_emb, ref_labels=ref_labels, memory=memory, chunk_size=chunk_size)
    return _mine(fn, "all_semihard", emb, labels, m, squared, **refs, capacity=capacity)


CAPACITY_DOC = """
    ``capacity``: fixed-size output for ``torch.compile`` and CUDA graphs. Returns ``(anchor, positive,
    negative, found)``: three int64 tensors of exactly ``capacity`` entries, the first ``min(found,
    capacity)`` of them the triplets above (in the same order) and the rest -1, and ``found``, a 0-d int64
    tensor counting every triplet mined (``found > capacity`` means the output was truncated: checking it
    is up to the caller, since reading it is a host sync on CUDA). ``triplet_loss(..., capacity=)`` uses
    the same padding. ``None`` (default): exactly the triplets found. On CUDA, semi-hard and batch-hard
    mining of a plain batch with ``capacity`` make no host sync (a step captures in a CUDA graph); NaN/Inf
    embeddings are then reported by :func:`facenet_ext.check_errors`, not raised.
"""

for _miner in (semi_hard_triplets, batch_hard_triplets, all_semi_hard_triplets):
    _miner.__doc__ += cross_batch.REFERENCE_DOC + CAPACITY_DOC


@torch.library.custom_op(
    "facenet_ext::pad_triplets",
    mutates_args=(),
    schema="(Tensor a, Tensor p, Tensor n, int capacity) -> (Tensor, Tensor, Tensor, Tensor)",
)
def _pad_triplets(a, p, n, capacity):
    """The first ``capacity`` triplets, padded with -1 to exactly ``capacity``, and how many there were."""
    k = min(a.shape[0], capacity)
    out = []
    for t in (a, p, n):
        padded = t.new_full((capacity,), -1)
        padded[:k] = t[:k]
        out.append(padded)
    return (*out, a.new_full((), a.shape[0]))  # a fill on the device, not a blocking host-to-device copy


@_pad_triplets.register_fake
def _(a, p, n, capacity):
    return (*(a.new_empty((capacity,)) for _ in range(3)), a.new_empty(()))


def _mine(
    fn: str,
    kind: str,
    emb: Tensor,
    labels: Tensor,
    margin: float | None,
    squared: bool,
    drop: bool = False,
    *,
    ref_emb=None,
    ref_labels=None,
    memory=None,
    chunk_size=None,
    capacity: int | None = None,
):
    """Every miner's one path (checked arguments): the fused native op on a plain batch, else the
    reference-set miner (reference set, memory bank, or streaming); ``fn`` names the caller in errors.
    With ``capacity`` returns ``(a, p, n, found)`` padded to it: on a plain batch in the same native call
    where the strategy has one (no host sync on CUDA), else by ``pad_triplets``."""
    strategy = MINING[kind]
    if _plain_batch(emb, ref_emb, ref_labels, memory, chunk_size):
        # No detach: the ops have no autograd formula and return indices, so nothing is recorded.
        if capacity is not None and strategy.padded is not None:
            return strategy.padded(emb, labels, margin, squared, drop, capacity)
        triplets = strategy.fused(emb, labels, margin, squared, drop)
    else:
        triplets = cross_batch.mine_references(
            fn, kind, emb, labels, ref_emb, ref_labels, memory, chunk_size, margin=margin, squared=squared, drop=drop
        )
    return triplets if capacity is None else _ops.pad_triplets(*triplets, capacity)


def _plain_batch(emb: Tensor, ref_emb, ref_labels, memory, chunk_size) -> bool:
    """The hot path: no reference set, no streaming, and the B x B matrix within the limit."""
    return (
        ref_emb is None
        and ref_labels is None
        and memory is None
        and chunk_size is None
        and emb.shape[0] * emb.shape[0] <= cross_batch.MATRIX_LIMIT
    )


def _check_batch(fn: str, emb: object, labels: object) -> tuple[Tensor, Tensor]:
    """emb [B, D] floating and labels [B] integer on its device: metadata only (the native op reads and
    checks the values), so the message names the function the user called."""
    emb = check_embedding_shape(fn, emb)
    return emb, check_labels(fn, labels, emb.shape[0], emb.device)


def _fake_triplets(first, *rest):
    n = torch.library.get_ctx().new_dynamic_size()  # the triplet count depends on the data
    return tuple(first.new_empty((n,), dtype=torch.int64) for _ in range(3))


def _fake_padded(emb, *args):
    capacity = args[-1]
    return (*(emb.new_empty((capacity,), dtype=torch.int64) for _ in range(3)), emb.new_empty((), dtype=torch.int64))


for _name in ("semi_hard_triplets_padded", "batch_hard_triplets_padded"):
    torch.library.register_fake(f"facenet_ext::{_name}", _fake_padded)

for _name in (
    "semi_hard_triplets",
    "batch_hard_triplets",
    "all_semi_hard_triplets",
    "semihard_from_sq_dist",
    "batch_hard_from_sq_dist",
    "all_semihard_from_sq_dist",
):
    torch.library.register_fake(f"facenet_ext::{_name}", _fake_triplets)


# ---------------------------------------------------------------------------------------------------
# triplet loss
# ---------------------------------------------------------------------------------------------------
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
    if (
        isinstance(mining, str)
        and MINING[mining].fused_loss
        and reduction != "none"
        and _plain_batch(emb, ref_emb, ref_labels, memory, chunk_size)
    ):
        return _all_semihard_loss(emb, labels, margin, squared, reduction, return_stats)
    if ref_emb is None and ref_labels is None and memory is None:
        cross_batch.check_chunk_size(fn, chunk_size)
        rows = emb
        if isinstance(mining, str):
            # The public miner's triplets with the loss's `squared` (and its margin where it selects).
            margin_used = MINING[mining].mining_margin(margin)
            mined = _mine(fn, mining, emb, labels, margin_used, squared, chunk_size=chunk_size, capacity=capacity)
        else:
            mined = check_triplet_indices(fn, mining, emb, emb.shape[0])
            if capacity is not None:
                mined = _ops.pad_triplets(*mined, capacity)
    else:
        rows, *mined = cross_batch.reference_triplets(
            fn, mining, emb, labels, margin, squared, ref_emb, ref_labels, memory, chunk_size
        )
        if capacity is not None:
            mined = _ops.pad_triplets(*mined, capacity)
    found = None
    if capacity is None:
        a, p, n = mined
    else:  # static shapes: `capacity` triplet slots, the padding masked out of the loss
        a, p, n, found = mined
        valid = a >= 0
        # Padding reads row 0 (any valid row would do) and is multiplied by 0 below; an empty batch has
        # no row 0 and no triplet.
        a, p, n = (t.clamp_min(0)[: capacity if rows.shape[0] else 0] for t in (a, p, n))
    if _needs_grad(rows) and found is None and reduction != "none":
        # The reduction inside the one autograd node: no Sum/Div nodes in the graph (at B = 64 each
        # autograd node costs about as much as the whole backward kernel).
        out, loss, d_ap, d_an = apply_function(_TripletLossReduced, rows, a, p, n, margin, squared, reduction)
        return _with_stats(out, loss, d_ap, d_an, loss.shape[0], emb) if return_stats else out
    if _needs_grad(rows):
        loss, d_ap, d_an = apply_function(_TripletLoss, rows, a, p, n, margin, squared)
    else:
        with below_autograd():
            loss, d_ap, d_an = _ops.triplet_loss_forward(rows, a, p, n, margin, squared)
    if found is not None:
        if rows.shape[0] == 0:
            loss = d_ap = d_an = rows.new_zeros((capacity,), dtype=acc_dtype(rows.dtype)) + rows.sum()
        mask = valid.to(loss.dtype)
        loss, d_ap, d_an = loss * mask, d_ap * mask, d_an * mask
        count = found.clamp_max(capacity)
    else:
        count = loss.shape[0]
    if reduction == "none":
        out = loss
    elif reduction == "mean" and found is not None:
        out = loss.sum() / count.clamp_min(1)  # the triplets kept, not the padded length
    else:
        out = _reduce(loss, reduction)
    return _with_stats(out, loss, d_ap, d_an, count, emb) if return_stats else out


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


def _all_semihard_loss(emb: Tensor, labels: Tensor, margin: float, squared: bool, reduction: str, return_stats: bool):
    """triplet_loss(mining="all_semihard") on a plain batch, reduced: one native call that never lists
    the triplets (up to B^2 K of them; O(B^2) memory), with the materialised path's value and gradient."""
    if _needs_grad(emb):
        sums, counts, _ = apply_function(_AllSemihardLoss, emb, labels, margin, squared)
    else:
        sums, counts, _ = _ops.all_semihard_loss(emb, labels, margin, squared, False)
    total, active = counts[0], counts[1]
    if reduction == "mean":
        out = sums[0] / total.clamp_min(1)
    elif reduction == "mean_active":
        out = sums[0] / active.clamp_min(1)
    else:
        out = sums[0]
    if not return_stats:
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


@torch.library.register_fake("facenet_ext::all_semihard_loss")
def _(emb, labels, margin, squared, with_grad):
    acc = acc_dtype(emb.dtype)
    b = emb.shape[0] if with_grad else 0
    return emb.new_empty((3,), dtype=acc), emb.new_empty((2,), dtype=torch.int64), emb.new_empty((b, b), dtype=acc)


class _AllSemihardLoss(torch.autograd.Function):
    """(sums, counts) of all_semihard_loss; the gradient of sums[0] (the summed loss) from the op's
    coefficient matrix C: dL/dx_a = sum_j (C_aj + C_ja)(x_a - x_j), two GEMMs and no triplet list."""

    @staticmethod
    def forward(emb, labels, margin, squared):
        sums, counts, coef = _ops.all_semihard_loss(emb, labels, margin, squared, True)
        return sums, counts, coef

    @staticmethod
    def setup_context(ctx, inputs, output):
        emb, labels, margin, squared = inputs
        ctx.set_materialize_grads(False)
        ctx.margin, ctx.squared = margin, squared
        ctx.mark_non_differentiable(output[1], output[2])
        ctx.save_for_backward(emb, labels, output[2])

    @staticmethod
    def backward(ctx, grad_sums, _grad_counts, _grad_coef):
        emb, labels, coef = ctx.saved_tensors
        if grad_sums is None:
            return None, None, None, None
        g = grad_sums[0]
        if torch.is_grad_enabled():
            # create_graph=True: list the triplets once and differentiate the plain PyTorch expression,
            # so second derivatives are exact (as on the materialised path).
            x = emb.detach()
            a, p, n = _ops.all_semi_hard_triplets(x, labels, ctx.margin, ctx.squared)
            loss = _ops.triplet_loss_forward(x, a, p, n, ctx.margin, ctx.squared)[0]
            grad = _triplet_grad_differentiable(g.expand(loss.shape), emb, a, p, n, loss, ctx.squared)
            return grad, None, None, None
        # A fresh packed copy (B x D, cheap next to the GEMMs): BLAS rounds differently for differently
        # aligned storage, and the gradient must not depend on the layout the caller passed.
        x = emb.to(coef.dtype, memory_format=torch.contiguous_format, copy=True)
        out = (coef.sum(1) + coef.sum(0)).unsqueeze(1) * x
        out = out.addmm_(coef, x, alpha=-1).addmm_(coef.t(), x, alpha=-1)
        return (out * g.to(coef.dtype)).to(emb.dtype), None, None, None


@torch.library.register_fake("facenet_ext::triplet_loss_forward")
def _(emb, anchor, positive, negative, margin, squared):
    return tuple(emb.new_empty(anchor.shape, dtype=acc_dtype(emb.dtype)) for _ in range(3))


@torch.library.register_fake("facenet_ext::triplet_loss_backward")
def _(grad_loss, emb, anchor, positive, negative, loss, d_ap, d_an, squared):
    return emb.new_empty(emb.shape)  # packed whatever emb's strides, as both kernels return it


def _triplet_setup(ctx, inputs, output):
    emb, a, p, n, margin, squared = inputs
    loss, d_ap, d_an = output
    ctx.set_materialize_grads(False)  # d_ap and d_an are never differentiated: no zero tensors for them
    ctx.squared = squared
    ctx.save_for_backward(emb, a, p, n, loss, d_ap, d_an)


def _triplet_backward(ctx, grad_loss, _grad_d_ap, _grad_d_an):
    emb, a, p, n, loss, d_ap, d_an = ctx.saved_tensors
    if grad_loss is None:  # only d_ap/d_an were used, and they carry no gradient
        return None, None, None, None, None, None
    if torch.is_grad_enabled():
        # create_graph=True: the same gradient as a differentiable PyTorch expression, so second
        # derivatives (Hessian-vector products, gradient penalties) are exact rather than silently 0.
        grad = _triplet_grad_differentiable(grad_loss, emb, a, p, n, loss, ctx.squared)
    else:
        grad = _ops.triplet_loss_backward(grad_loss, emb, a, p, n, loss, d_ap, d_an, ctx.squared)
    return grad, None, None, None, None, None


def _triplet_grad_differentiable(
    grad_loss: Tensor, emb: Tensor, a: Tensor, p: Tensor, n: Tensor, loss: Tensor, squared: bool
) -> Tensor:
    """dL/d emb of the per-triplet losses weighted by ``grad_loss``, in differentiable ops. The same rule
    as csrc/common/triplet_rules.h: weights cp on (x_a - x_p) and cn on (x_a - x_n), zero for inactive
    triplets and, for plain distances, zero at a zero distance (never NaN)."""
    acc = acc_dtype(emb.dtype)
    x = emb.to(acc)
    u, v = x[a] - x[p], x[a] - x[n]
    g = grad_loss.to(acc) * (loss > 0)
    if squared:
        cp = cn = 2 * g
    else:
        cp, cn = (
            torch.where(d > 0, g / torch.where(d > 0, d, 1).sqrt(), 0) for d in (u.square().sum(1), v.square().sum(1))
        )
    wu, wv = cp.unsqueeze(1) * u, cn.unsqueeze(1) * v
    grad = torch.zeros_like(x).index_add(0, a, wu - wv).index_add(0, p, -wu).index_add(0, n, wv)
    return grad.to(emb.dtype)


torch.library.register_autograd("facenet_ext::triplet_loss_forward", _triplet_backward, setup_context=_triplet_setup)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """The reduction named: "mean" (over all triplets), "mean_active" (over those with a non-zero loss)
    or "sum"."""
    if reduction == "mean":
        # A Python count divides as a float: no int-to-float tensor copy.
        return loss.sum() / torch.sym_float(torch.sym_max(loss.shape[0], 1))
    if reduction == "mean_active":
        return loss.sum() / (loss > 0).sum().clamp_min(1)
    return loss.sum()


class _TripletLossReduced(torch.autograd.Function):
    """triplet_loss_forward and the reduction as one autograd node: (reduced loss, then the per-triplet
    loss, d_ap and d_an, not differentiable, for the statistics)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(emb, a, p, n, margin, squared, reduction):
        with below_autograd():
            loss, d_ap, d_an = _ops.triplet_loss_forward(emb, a, p, n, margin, squared)
        return _reduce(loss, reduction), loss, d_ap, d_an

    @staticmethod
    def setup_context(ctx, inputs, output):
        emb, a, p, n, margin, squared, reduction = inputs
        _, loss, d_ap, d_an = output
        ctx.mark_non_differentiable(loss, d_ap, d_an)
        _triplet_setup(ctx, (emb, a, p, n, margin, squared), (loss, d_ap, d_an))
        ctx.reduction = reduction

    @staticmethod
    def backward(ctx, grad_out, _grad_loss, _grad_d_ap, _grad_d_an):
        if grad_out is None:
            return None, None, None, None, None, None, None
        loss = ctx.saved_tensors[4]
        if ctx.reduction == "mean":
            grad_out = grad_out / torch.sym_float(torch.sym_max(loss.shape[0], 1))
        elif ctx.reduction == "mean_active":
            grad_out = grad_out / (loss > 0).sum().clamp_min(1)
        # The gradient of each triplet's loss is one number: expanded, no copy (the kernel reads strides).
        grads = _triplet_backward(ctx, grad_out.to(loss.dtype).expand(loss.shape), None, None)
        return (*grads, None)


class _TripletLoss(torch.autograd.Function):
    """triplet_loss_forward for the public function (see _PairwiseSqDist)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(emb, a, p, n, margin, squared):
        with below_autograd():
            return _ops.triplet_loss_forward(emb, a, p, n, margin, squared)

    setup_context = staticmethod(_triplet_setup)
    backward = staticmethod(_triplet_backward)


__all__ = [
    "pairwise_sq_dist",
    "semi_hard_triplets",
    "batch_hard_triplets",
    "all_semi_hard_triplets",
    "triplet_loss",
]
