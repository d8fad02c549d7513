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
from ._checks import _compiling, check_choice, check_embeddings, check_labels, check_margin, check_tensor

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"{fn}: y has width {y.shape[1]} but x has {x.shape[1]}")
        if y.dtype != x.dtype:
            raise TypeError(f"{fn}: y has dtype {y.dtype} but x has {x.dtype}")
        if y.device != x.device:
            raise ValueError(f"{fn}: y is on {y.device} but x is on {x.device}")
    return _ops.pairwise_sq_dist(x, y)


@torch.library.register_fake("facenet_ext::pairwise_sq_dist")
def _(x, y):
    n = x.shape[0] if y is None else y.shape[0]
    return x.new_empty((x.shape[0], n), dtype=_acc_dtype(x.dtype))


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
def _mining_inputs(fn: str, emb: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    emb = check_embeddings(fn, emb)
    labels = check_labels(fn, labels, emb.shape[0], emb.device)
    return _ops.pairwise_sq_dist(emb.detach(), None), labels  # emb is checked: skip the wrapper's checks


def semi_hard_triplets(
    emb: Tensor, labels: Tensor, margin: float | None = None, *, squared: bool = True, fallback: str = "easiest"
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
    d, labels = _mining_inputs(fn, emb, labels)
    m = None if margin is None else float(margin)
    return _ops.semihard_from_sq_dist(d, labels, labels, True, m, bool(squared), fallback == "drop")


def batch_hard_triplets(emb: Tensor, labels: Tensor, *, squared: bool = True) -> Triplets:
    """Batch-hard mining (Hermans et al. 2017): for every anchor with a positive and a negative, the
    farthest positive and the closest negative (ties to the smallest index). ``squared`` is accepted for
    symmetry with the other miners; the selection does not depend on it. Sorted by anchor."""
    d, labels = _mining_inputs("batch_hard_triplets", emb, labels)
    return _ops.batch_hard_from_sq_dist(d, labels, labels, True)


def all_semi_hard_triplets(emb: Tensor, labels: Tensor, margin: float = 0.2, *, squared: bool = False) -> Triplets:
    r"""Every triplet with :math:`0 < D_{an} - D_{ap} \le \text{margin}` — the ``"semihard"`` rule of
    pytorch-metric-learning's ``TripletMarginMiner`` (plain Euclidean distances by default, as there).
    Sorted by (anchor, positive, negative). Output size is data dependent (up to B·K·N); working memory
    besides the output is O(B^2)."""
    fn = "all_semi_hard_triplets"
    check_margin(fn, margin)
    d, labels = _mining_inputs(fn, emb, labels)
    return _ops.all_semihard_from_sq_dist(d, labels, labels, True, float(margin), bool(squared))


def _fake_triplets(sq_dist, labels, *rest):
    n = torch.library.get_ctx().new_dynamic_size()  # the triplet count depends on the data
    return tuple(sq_dist.new_empty((n,), dtype=torch.int64) for _ in range(3))


for _name in ("semihard_from_sq_dist", "batch_hard_from_sq_dist", "all_semihard_from_sq_dist"):
    torch.library.register_fake(f"facenet_ext::{_name}", _fake_triplets)


# ---------------------------------------------------------------------------------------------------
# triplet loss
# ---------------------------------------------------------------------------------------------------
MINERS = {
    "semihard": lambda emb, labels, margin, squared: semi_hard_triplets(emb, labels, squared=squared),
    "batch_hard": lambda emb, labels, margin, squared: batch_hard_triplets(emb, labels, squared=squared),
    "all_semihard": lambda emb, labels, margin, squared: all_semi_hard_triplets(emb, labels, margin, squared=squared),
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
    """
    fn = "triplet_loss"
    emb = check_embeddings(fn, emb)
    check_margin(fn, margin)
    check_choice(fn, "reduction", reduction, REDUCTIONS)
    if isinstance(mining, str):
        check_choice(fn, "mining", mining, tuple(MINERS))
        labels = check_labels(fn, labels, emb.shape[0], emb.device)
        with torch.no_grad():
            a, p, n = MINERS[mining](emb.detach(), labels, margin, squared)
    else:
        if not (isinstance(mining, (tuple, list)) and len(mining) == 3):
            raise TypeError(f"{fn}: mining must be a strategy name or an (anchor, positive, negative) tuple")
        a, p, n = _check_triplet_indices(fn, mining, emb)
    loss, d_ap, d_an = _ops.triplet_margin_forward(emb, a, p, n, float(margin), bool(squared))
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


def _check_triplet_indices(fn: str, mining, emb: Tensor) -> Triplets:
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
            if int(lo) < 0 or int(hi) >= emb.shape[0]:
                raise ValueError(f"{fn}: {arg} must lie in [0, {emb.shape[0]})")
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
