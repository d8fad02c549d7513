"""The public miners: FaceNet's semi-hard, batch-hard and all-semi-hard triplets, each one native call on a
plain batch (or the reference-set and streaming paths of ``cross_batch``), and ``mine``, the one path
every miner (and ``triplet_loss``, and ``facenet_ext.pml``) goes through."""

from __future__ import annotations

import torch
from torch import Tensor

from . import (
    _custom_ops,  # noqa: F401  (loads the library, the ops' fake kernels and pad_triplets)
    cross_batch,
)
from ._checks import check_bool, check_capacity, check_choice, check_embedding_shape, check_labels, check_margin
from .memory_bank import MemoryBank
from .mining import MINING

_ops = torch.ops.facenet_ext


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
    return mine(fn, "semihard", emb, labels, m, squared, fallback == "drop", **refs, capacity=capacity)


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
    return mine(fn, "batch_hard", emb, labels, None, True, **refs, capacity=capacity)


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
    return mine(fn, "all_semihard", emb, labels, m, squared, **refs, capacity=capacity)


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


def mine(
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
    if plain_batch(emb, ref_emb, ref_labels, memory, chunk_size):
        # No detach: the ops have no autograd formula and return indices, so nothing is recorded.
        if capacity is not None and strategy.padded is not None:
            return strategy.padded(emb, labels, margin, squared, drop, capacity)
        triplets = strategy.fused(emb, labels, margin, squared, drop)
    else:
        triplets = cross_batch.mine_references(
            fn, kind, emb, labels, ref_emb, ref_labels, memory, chunk_size, margin=margin, squared=squared, drop=drop
        )
    return triplets if capacity is None else _ops.pad_triplets(*triplets, capacity)


def plain_batch(emb: Tensor, ref_emb, ref_labels, memory, chunk_size) -> bool:
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
