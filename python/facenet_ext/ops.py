"""The public ops: one thin wrapper per native op, its fake (meta) kernel and its autograd.

Every wrapper validates its arguments in Python (messages name the function and argument), then calls
``torch.ops.facenet_ext.<op>``, which the dispatcher routes to the CPU or CUDA kernel. Fake kernels make
the ops traceable by ``torch.compile(fullgraph=True)``; data-dependent triplet counts are unbacked
symbolic sizes (``ctx.new_dynamic_size()``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _C  # noqa: F401  (loads the library: registers torch.ops.facenet_ext.*)
from ._checks import (
    _compiling,
    acc_dtype,
    check_choice,
    check_embeddings,
    check_labels,
    check_like,
    check_margin,
    check_reference,
    check_tensor,
)
from .cross_batch import ReferenceSet, chunk_columns, mine
from .memory_bank import MemoryBank

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
    no gradient). NaN/Inf inputs raise ``ValueError`` on the CPU; on CUDA (where a check would cost a
    host sync) they propagate to NaN distances, as with ``torch.cdist``.
    """
    fn = "pairwise_sq_dist"
    x = check_embeddings(fn, x, "x")
    if y is not None:
        y = check_embeddings(fn, y, "y")
        check_like(fn, y, "y", x, "x")
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


# ---------------------------------------------------------------------------------------------------
# miners
# ---------------------------------------------------------------------------------------------------
_REF_DOC = """
    Reference sets (keyword-only, as in pytorch-metric-learning): with ``ref_emb`` [N, D] and ``ref_labels``
    [N], anchors come from ``emb`` and positives/negatives from the reference set, which is not assumed to
    contain the anchors (no self-exclusion); anchor indices point into ``emb``, positive and negative
    indices into ``ref_emb``. With ``memory=`` a :class:`facenet_ext.MemoryBank`, the reference set is the
    batch followed by the bank's entries (XBM: ``emb`` then ``memory.embeddings``), an anchor never being
    its own positive; positive and negative indices point into that concatenation (``< B``: the batch).
    ``chunk_size``: mine the reference set that many columns at a time with running per-anchor state
    (never the B x N matrix; memory O(B·chunk_size + B·K)); ``None`` does so automatically once B·N
    exceeds ``facenet_ext.cross_batch.MATRIX_LIMIT`` (see docs/cross_batch.md). Same triplets, same order.
"""


def _check_reference_args(fn: str, emb: Tensor, ref_emb, ref_labels, memory, chunk_size) -> None:
    """The reference-set arguments, checked against a checked ``emb`` (messages name ``fn``)."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"{fn}: chunk_size must be a positive int or None, got {chunk_size!r}")
    if memory is not None:
        if ref_emb is not None or ref_labels is not None:
            raise ValueError(f"{fn}: give either memory= or ref_emb=/ref_labels=, not both")
        if not isinstance(memory, MemoryBank):
            raise TypeError(f"{fn}: memory must be a facenet_ext.MemoryBank, got {type(memory).__name__}")
        memory._check_compatible(fn, emb, "emb (against memory)")
        return
    if (ref_emb is None) != (ref_labels is None):
        given, missing = ("ref_emb", "ref_labels") if ref_labels is None else ("ref_labels", "ref_emb")
        raise ValueError(f"{fn}: {given} was given without {missing}; pass both (or neither)")
    if ref_emb is not None:
        ref_emb = check_reference(fn, ref_emb, emb)
        check_labels(fn, ref_labels, ref_emb.shape[0], emb.device, "ref_labels")


def _references(fn: str, emb: Tensor, labels, ref_emb, ref_labels, memory, chunk_size):
    """(emb, labels, ReferenceSet or None). None: the plain batch path (the reference set is the batch and
    B x B fits), which stays exactly the code it always was."""
    emb = check_embeddings(fn, emb)
    labels = check_labels(fn, labels, emb.shape[0], emb.device)
    _check_reference_args(fn, emb, ref_emb, ref_labels, memory, chunk_size)
    if memory is not None:
        ref = ReferenceSet(torch.cat([emb.detach(), memory.embeddings]), torch.cat([labels.long(), memory.labels]), 0)
        return emb, labels, ref
    if ref_emb is not None:
        return emb, labels, ReferenceSet(ref_emb.detach(), ref_labels, None)
    if chunk_size is None and chunk_columns(emb.shape[0], emb.shape[0], None) is None:
        return emb, labels, None
    return emb, labels, ReferenceSet(emb.detach(), labels, 0)


def _mine_reference(kind, emb, labels, ref, chunk_size, **rule) -> Triplets:
    if ref.emb.shape[0] == 0:
        empty = torch.empty(0, dtype=torch.int64, device=emb.device)
        return empty, empty, empty
    return mine(kind, emb.detach(), labels, ref, chunk_size, **rule)


def semi_hard_triplets(
    emb: Tensor,
    labels: Tensor,
    margin: float | None = None,
    *,
    squared: bool = True,
    fallback: str = "easiest",
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory=None,
    chunk_size: int | None = None,
) -> Triplets:
    r"""FaceNet's online semi-hard mining (Schroff et al. 2015, eq. 4): one triplet per ordered
    anchor-positive pair, with the negative

    .. math:: n^*(a, p) = \arg\min_{n:\, y_n \ne y_a,\ D_{an} > D_{ap}} D_{an}.

    If no negative is farther than the positive, ``fallback="easiest"`` takes the farthest negative
    (TF-Addons' rule) and ``fallback="drop"`` drops the pair. Anchors with no negative yield nothing.
    With ``margin`` set, only triplets with :math:`D_{an} < D_{ap} + \text{margin}` (non-zero loss) are
    returned; ``squared`` says whether that test uses squared or plain distances (selection is the same).
    Ties go to the smallest index.

    Returns int64 ``(anchor, positive, negative)`` sorted by (anchor, positive). Cost O(B^2 D) for the
    distances plus O(B (B log K)) for mining; memory O(B^2), never B^3.
    """
    fn = "semi_hard_triplets"
    check_margin(fn, margin, allow_none=True)
    check_choice(fn, "fallback", fallback, ("easiest", "drop"))
    m = None if margin is None else float(margin)
    emb, labels, ref = _references(fn, emb, labels, ref_emb, ref_labels, memory, chunk_size)
    if ref is not None:
        return _mine_reference("semihard", emb, labels, ref, chunk_size, margin=m, squared=bool(squared), drop=fallback == "drop")
    d = _ops.pairwise_sq_dist(emb.detach(), None)
    return _ops.semihard_from_sq_dist(d, labels, labels, True, m, bool(squared), fallback == "drop")


def batch_hard_triplets(
    emb: Tensor,
    labels: Tensor,
    *,
    squared: bool = True,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory=None,
    chunk_size: int | None = None,
) -> Triplets:
    """Batch-hard mining (Hermans et al. 2017): for every anchor with a positive and a negative, the
    farthest positive and the closest negative (ties to the smallest index). ``squared`` is accepted for
    symmetry with the other miners; the selection does not depend on it. Sorted by anchor."""
    emb, labels, ref = _references("batch_hard_triplets", emb, labels, ref_emb, ref_labels, memory, chunk_size)
    if ref is not None:
        return _mine_reference("batch_hard", emb, labels, ref, chunk_size)
    d = _ops.pairwise_sq_dist(emb.detach(), None)
    return _ops.batch_hard_from_sq_dist(d, labels, labels, True)


def all_semi_hard_triplets(
    emb: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    *,
    squared: bool = False,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory=None,
    chunk_size: int | None = None,
) -> Triplets:
    r"""Every triplet with :math:`0 < D_{an} - D_{ap} \le \text{margin}` — the ``"semihard"`` rule of
    pytorch-metric-learning's ``TripletMarginMiner`` (plain Euclidean distances by default, as there).
    Sorted by (anchor, positive, negative). Output size is data dependent (up to B·K·N); working memory
    besides the output is O(B^2)."""
    fn = "all_semi_hard_triplets"
    check_margin(fn, margin)
    emb, labels, ref = _references(fn, emb, labels, ref_emb, ref_labels, memory, chunk_size)
    if ref is not None:
        return _mine_reference("all_semihard", emb, labels, ref, chunk_size, margin=float(margin), squared=bool(squared))
    d = _ops.pairwise_sq_dist(emb.detach(), None)
    return _ops.all_semihard_from_sq_dist(d, labels, labels, True, float(margin), bool(squared))


for _miner in (semi_hard_triplets, batch_hard_triplets, all_semi_hard_triplets):
    _miner.__doc__ += _REF_DOC


def _fake_triplets(sq_dist, labels, *rest):
    n = torch.library.get_ctx().new_dynamic_size()  # the triplet count depends on the data
    return tuple(sq_dist.new_empty((n,), dtype=torch.int64) for _ in range(3))


for _name in ("semihard_from_sq_dist", "batch_hard_from_sq_dist", "all_semihard_from_sq_dist"):
    torch.library.register_fake(f"facenet_ext::{_name}", _fake_triplets)


# ---------------------------------------------------------------------------------------------------
# triplet loss
# ---------------------------------------------------------------------------------------------------
MINERS = {
    "semihard": lambda emb, labels, margin, squared, **ref: semi_hard_triplets(emb, labels, squared=squared, **ref),
    "batch_hard": lambda emb, labels, margin, squared, **ref: batch_hard_triplets(emb, labels, squared=squared, **ref),
    "all_semihard": lambda emb, labels, margin, squared, **ref: all_semi_hard_triplets(
        emb, labels, margin, squared=squared, **ref
    ),
}
REDUCTIONS = ("mean", "mean_active", "sum", "none")


def triplet_loss(
    emb: Tensor,
    labels: Tensor | None,
    margin: float = 0.2,
    *,
    mining: str | Triplets = "semihard",
    squared: bool = True,
    reduction: str = "mean",
    return_stats: bool = False,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    memory: MemoryBank | None = None,
    chunk_size: int | None = None,
):
    r"""FaceNet's triplet loss with online mining: :math:`L = [D_{ap} - D_{an} + \alpha]_+` over the mined
    triplets, with the two distances recomputed exactly from ``emb`` (so gradients are those of the
    loss, not of the mining's Gram-matrix expansion).

    ``mining``: ``"semihard"`` (FaceNet eq. 4 with TF-Addons' fallback: one triplet per positive pair),
    ``"batch_hard"``, ``"all_semihard"``, or an explicit ``(anchor, positive, negative)`` tuple of int64
    tensors (``labels`` may then be ``None``). ``reduction``: ``"mean"`` over all mined triplets (TF-Addons'
    convention), ``"mean_active"`` over the triplets with non-zero loss, ``"sum"``, or ``"none"`` (the
    per-triplet losses, in float32 for float16/bfloat16 input). An empty mining result gives 0 and a zero
    gradient. Backward costs O(T·D) and is deterministic.

    With ``return_stats=True`` returns ``(loss, stats)``; ``stats`` holds 0-d tensors (no host sync):
    ``num_triplets``, ``active_fraction``, ``mean_d_ap``, ``mean_d_an``.

    Reference sets, as for the miners: with ``ref_emb``/``ref_labels`` anchors come from ``emb`` and
    positives/negatives from ``ref_emb`` (gradients reach ``ref_emb`` too when it requires them); with
    ``memory=`` a :class:`facenet_ext.MemoryBank`, from the batch followed by the bank (XBM: the batch's
    own rows carry gradients, the bank's do not). Explicit ``mining`` indices then follow the miners'
    convention (positive/negative indices into the reference set). ``chunk_size`` streams the mining
    (see the miners). Only the mined rows of the reference set enter the loss: O(T·D), whatever N is.
    """
    fn = "triplet_loss"
    emb = check_embeddings(fn, emb)
    check_margin(fn, margin)
    check_choice(fn, "reduction", reduction, REDUCTIONS)
    _check_reference_args(fn, emb, ref_emb, ref_labels, memory, chunk_size)
    refs = {"ref_emb": ref_emb, "ref_labels": ref_labels, "memory": memory, "chunk_size": chunk_size}
    extra, base = _reference_rows(emb, ref_emb, memory)
    if isinstance(mining, str):
        check_choice(fn, "mining", mining, tuple(MINERS))
        labels = check_labels(fn, labels, emb.shape[0], emb.device)
        with torch.no_grad():
            a, p, n = MINERS[mining](emb.detach(), labels, margin, squared, **refs)
    else:
        if not (isinstance(mining, (tuple, list)) and len(mining) == 3):
            raise TypeError(f"{fn}: mining must be a strategy name or an (anchor, positive, negative) tuple")
        n_ref = emb.shape[0] if extra is None else base + extra.shape[0]
        a, p, n = _check_triplet_indices(fn, mining, emb, n_ref)
    rows = emb
    if extra is not None:
        rows, p, n = _gather_reference_rows(emb, extra, base, p, n)
    loss, d_ap, d_an = _ops.triplet_margin_forward(rows, a, p, n, float(margin), bool(squared))
    count = loss.shape[0]
    if reduction == "mean":
        out = loss.sum() / torch.sym_max(count, 1)
    elif reduction == "mean_active":
        out = loss.sum() / (loss > 0).sum().clamp_min(1)
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = loss
    if not return_stats:
        return out
    denom = torch.sym_max(count, 1)
    stats = {
        "num_triplets": torch.tensor(count, device=emb.device) if isinstance(count, int) else loss.new_tensor(count),
        "active_fraction": (loss.detach() > 0).to(loss.dtype).sum() / denom,
        "mean_d_ap": d_ap.detach().sum() / denom,
        "mean_d_an": d_an.detach().sum() / denom,
    }
    return out, stats


def _reference_rows(emb: Tensor, ref_emb, memory) -> tuple[Tensor | None, int]:
    """The rows positive/negative indices >= ``base`` point to (index - base): ``ref_emb`` (base 0), the
    bank (base B: indices below B are the batch), or None when the reference set is the batch."""
    if memory is not None:
        return memory.embeddings, emb.shape[0]
    return ref_emb, 0


def _gather_reference_rows(emb: Tensor, extra: Tensor, base: int, p: Tensor, n: Tensor):
    """[emb; the rows of ``extra`` the triplets use], with p and n renumbered into it: the loss then costs
    O((B + T)·D) however large the reference set is, and autograd reaches ``extra`` through index_select."""
    idx = torch.cat([p, n])
    in_extra = idx >= base
    used = torch.unique(idx[in_extra] - base)  # sorted
    renumbered = torch.where(in_extra, emb.shape[0] + torch.searchsorted(used, (idx - base).clamp_min(0)), idx)
    rows = torch.cat([emb, extra.index_select(0, used)])
    return rows, renumbered[: p.shape[0]], renumbered[p.shape[0] :]


def _check_triplet_indices(fn: str, mining, emb: Tensor, n_ref: int) -> Triplets:
    """User-supplied (anchor, positive, negative): int64, 1-D, equal lengths, on emb's device, in range.
    The range check reads two numbers back to the host; mined indices skip it (they are in range by
    construction), and the kernels index raw pointers, so it must not be skipped here."""
    out = []
    for i, (name, t) in enumerate(zip(("anchor", "positive", "negative"), mining)):
        arg = f"mining[{i}] ({name} indices)"
        t = check_tensor(fn, f"mining[{i}]", t)
        if t.dim() != 1 or t.dtype != torch.int64:
            raise TypeError(f"{fn}: {arg} must be a 1-D int64 tensor, got {t.dtype} of shape {tuple(t.shape)}")
        if t.device != emb.device:
            # Checked here: the dispatcher would pick a kernel by the indices' device and never name them.
            raise ValueError(f"{fn}: {arg} is on {t.device} but emb is on {emb.device}")
        if t.shape[0] != mining[0].shape[0]:
            raise ValueError(f"{fn}: anchor/positive/negative index tensors have different lengths "
                             f"({', '.join(str(m.shape[0]) for m in mining)})")
        if t.numel() and not _compiling():
            lo, hi = torch.aminmax(t)
            bound = emb.shape[0] if i == 0 else n_ref
            if int(lo) < 0 or int(hi) >= bound:
                raise ValueError(f"{fn}: {arg} must lie in [0, {bound})")
        out.append(t)
    return tuple(out)


@torch.library.register_fake("facenet_ext::triplet_margin_forward")
def _(emb, anchor, positive, negative, margin, squared):
    dtype = torch.float64 if emb.dtype == torch.float64 else torch.float32
    return tuple(emb.new_empty(anchor.shape, dtype=dtype) for _ in range(3))


@torch.library.register_fake("facenet_ext::triplet_margin_backward")
def _(grad_loss, emb, anchor, positive, negative, loss, d_ap, d_an, squared):
    return torch.empty_like(emb)


def _triplet_setup(ctx, inputs, output):
    emb, a, p, n, margin, squared = inputs
    loss, d_ap, d_an = output
    ctx.squared = squared
    ctx.save_for_backward(emb, a, p, n, loss, d_ap, d_an)


def _triplet_backward(ctx, grad_loss, _grad_d_ap, _grad_d_an):
    emb, a, p, n, loss, d_ap, d_an = ctx.saved_tensors
    grad = _ops.triplet_margin_backward(grad_loss.contiguous(), emb, a, p, n, loss, d_ap, d_an, ctx.squared)
    return grad, None, None, None, None, None


torch.library.register_autograd(
    "facenet_ext::triplet_margin_forward", _triplet_backward, setup_context=_triplet_setup
)


__all__ = [
    "pairwise_sq_dist",
    "semi_hard_triplets",
    "batch_hard_triplets",
    "all_semi_hard_triplets",
    "triplet_loss",
]
