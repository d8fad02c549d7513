"""Mining against a reference set (docs/cross_batch.md): anchors come from the batch, positives
and negatives from a reference set, which may contain the batch itself at some offset (a memory bank
appended to the batch, or the global batch of ``torch.distributed``).

Two paths, chosen by :func:`chunk_columns`:

* the whole B x N distance matrix, mined by the native ops (the fast path, used while it is small);
* streaming: the reference set in chunks of C columns, with per-anchor running state
  (:mod:`facenet_ext.streaming`) updated by vectorised PyTorch, so memory is O(B·C + B·K) (K = positives
  per anchor) and B x N never exists. The rules are those of ``csrc/rules/mining_rules.h`` (ties to the
  smallest index, strict comparisons, margin tests in the distance matrix's dtype), so both paths return
  the same triplets in the same order whenever they see the same distances. See :func:`chunk_columns` for when
  that holds bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _C  # noqa: F401  (registers torch.ops.facenet_ext.*)
from ._checks import check_embedding_shape, check_finite, check_int, check_labels, check_like, check_triplet_indices
from .memory_bank import MemoryBank
from .mining import MINING
from .streaming import ReferenceSet, positives

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]

#: The B x N distance matrix is built at once while B·N is at most this many elements (1 GiB in float32).
MATRIX_LIMIT = 2**28
#: Otherwise the reference set is streamed in chunks of ``max(1, CHUNK_ELEMENTS // B)`` columns, whose
#: working set is a few B x chunk tensors (about 16 bytes per element of the chunk: see docs/cross_batch.md).
CHUNK_ELEMENTS = 2**24


def chunk_columns(batch: int, n_ref: int, chunk_size: int | None) -> int | None:
    """How many reference columns to mine at once; ``None`` means the whole B x N matrix (native ops).

    ``chunk_size=None`` (automatic): the whole matrix while ``B·N <= MATRIX_LIMIT``, else chunks of
    ``max(1, CHUNK_ELEMENTS // B)`` columns. An explicit ``chunk_size`` always streams.

    Exactness: both paths apply the same rules to the distances they see. The chunked distances are
    ``pairwise_sq_dist(anchors, ref[chunk])``; whether those equal the same columns of the full matrix bit
    for bit is up to the BLAS, and MKL does not promise it (narrow or ragged chunks take other kernels,
    which may round the last bit differently). On embeddings whose distances are exact in the dtype
    (small integers, as in the tests) the two paths are identical; otherwise they can differ only where
    two candidate distances are within a rounding error of each other.
    """
    if chunk_size is not None:
        return max(1, min(chunk_size, n_ref))
    if batch * n_ref <= MATRIX_LIMIT:
        return None
    return max(1, CHUNK_ELEMENTS // batch)


REFERENCE_DOC = """
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


def check_chunk_size(fn: str, chunk_size: object) -> None:
    check_int(fn, "chunk_size", chunk_size, low=1, allow_none=True)


def check_reference_args(fn: str, emb: Tensor, ref_emb, ref_labels, memory, chunk_size) -> None:
    """The reference-set arguments, checked against ``emb`` (metadata only: no data is read)."""
    check_chunk_size(fn, chunk_size)
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
        check_embedding_shape(fn, ref_emb, "ref_emb")
        check_like(fn, ref_emb, "ref_emb", emb, "emb")
        check_labels(fn, ref_labels, ref_emb.shape[0], emb.device, "ref_labels")


def reference_count(emb: Tensor, ref_emb, memory) -> int:
    """How many rows positive/negative indices may point to."""
    if memory is not None:
        return emb.shape[0] + len(memory)
    return emb.shape[0] if ref_emb is None else ref_emb.shape[0]


def reference_triplets(
    fn: str,
    mining,
    emb: Tensor,
    labels: Tensor | None,
    margin: float,
    squared: bool,
    ref_emb,
    ref_labels,
    memory,
    chunk_size,
):
    """``triplet_loss`` with a reference set (``ref_emb``/``ref_labels`` or ``memory``): the reference
    arguments checked, the triplets mined (``mining`` a kind) or checked (explicit indices into the
    reference set), and the rows the loss reads. Returns ``(rows, a, p, n)`` with p and n renumbered into
    ``rows`` = ``[emb; the reference rows the triplets use]``."""
    if isinstance(mining, str):
        a, p, n = mine_references(
            fn,
            mining,
            emb,
            labels,
            ref_emb,
            ref_labels,
            memory,
            chunk_size,
            margin=MINING[mining].mining_margin(margin),
            squared=squared,
        )
    else:
        check_reference_args(fn, emb, ref_emb, ref_labels, memory, chunk_size)
        a, p, n = check_triplet_indices(fn, mining, emb, reference_count(emb, ref_emb, memory))
    rows, p, n = gather_reference_rows(emb, ref_emb, memory, p, n)
    return rows, a, p, n


def mine_references(
    fn: str,
    kind: str,
    emb: Tensor,
    labels: Tensor,
    ref_emb,
    ref_labels,
    memory,
    chunk_size,
    *,
    margin: float | None = None,
    squared: bool = True,
    drop: bool = False,
) -> Triplets:
    """A miner against a reference set (``ref_emb``, ``memory``, or the batch streamed in chunks), as one
    opaque op, so ``torch.compile(fullgraph=True)`` traces it without a graph break. The reference
    arguments are checked here; the rest by the caller."""
    check_reference_args(fn, emb, ref_emb, ref_labels, memory, chunk_size)
    if memory is not None:
        ref, ref_lab, offset = (
            torch.cat([emb.detach(), memory.embeddings]),
            torch.cat([labels.long(), memory.labels]),
            0,
        )
    elif ref_emb is not None:
        ref, ref_lab, offset = ref_emb.detach(), ref_labels, -1
    else:
        ref, ref_lab, offset = emb.detach(), labels, 0
    return _ops.mine_reference_set(
        fn, kind, emb.detach(), labels, ref, ref_lab, offset, chunk_size or 0, margin, squared, drop
    )


@torch.library.custom_op(
    "facenet_ext::mine_reference_set",
    mutates_args=(),
    schema="(str fn, str kind, Tensor anchors, Tensor labels, Tensor ref_emb, Tensor ref_labels, int self_offset, "
    "int chunk_size, float? margin, bool squared, bool drop) -> (Tensor, Tensor, Tensor)",
)
def _mine_reference_set(fn, kind, anchors, labels, ref_emb, ref_labels, self_offset, chunk_size, margin, squared, drop):
    # Runs eagerly in both modes, so its checks (and messages) are the same with and without compile.
    check_finite(fn, "emb", anchors)
    check_finite(fn, "ref_emb" if self_offset < 0 else "memory", ref_emb)
    if ref_emb.shape[0] == 0 or anchors.shape[0] == 0:
        empty = torch.empty(0, dtype=torch.int64, device=anchors.device)
        return empty, empty.clone(), empty.clone()
    ref = ReferenceSet(ref_emb, ref_labels, None if self_offset < 0 else self_offset)
    # A custom op's outputs may not alias its inputs or each other; a copy of T indices is cheap here.
    return tuple(
        t.clone()
        for t in mine(kind, anchors, labels, ref, chunk_size or None, margin=margin, squared=squared, drop=drop)
    )


@_mine_reference_set.register_fake
def _(fn, kind, anchors, labels, ref_emb, ref_labels, self_offset, chunk_size, margin, squared, drop):
    n = torch.library.get_ctx().new_dynamic_size()
    return tuple(anchors.new_empty((n,), dtype=torch.int64) for _ in range(3))


def gather_reference_rows(emb: Tensor, ref_emb, memory, p: Tensor, n: Tensor):
    """``[emb; the rows of the reference set the triplets use]``, with p and n renumbered into it: the
    loss then costs O((B + T)·D) however large the reference set is, and autograd reaches ``ref_emb``
    through index_select. Positive/negative indices ``>= base`` point into ``extra`` (index - base):
    ``ref_emb`` (base 0), or the bank (base B: indices below B are the batch)."""
    extra, base = (memory.embeddings, emb.shape[0]) if memory is not None else (ref_emb, 0)
    used, p, n = _ops.reference_rows(p, n, base, emb.shape[0])
    return torch.cat([emb, extra.index_select(0, used)]), p, n


@torch.library.custom_op(
    "facenet_ext::reference_rows",
    mutates_args=(),
    schema="(Tensor p, Tensor n, int base, int batch) -> (Tensor, Tensor, Tensor)",
)
def _reference_rows(p, n, base, batch):
    idx = torch.cat([p, n])
    in_extra = idx >= base
    used = torch.unique(idx[in_extra] - base)  # sorted
    renumbered = torch.where(in_extra, batch + torch.searchsorted(used, (idx - base).clamp_min(0)), idx)
    return used, renumbered[: p.shape[0]].clone(), renumbered[p.shape[0] :].clone()


@_reference_rows.register_fake
def _(p, n, base, batch):
    k = torch.library.get_ctx().new_dynamic_size()
    return p.new_empty((k,)), torch.empty_like(p), torch.empty_like(n)


def mine(
    kind: str,
    anchors: Tensor,
    labels: Tensor,
    ref: ReferenceSet,
    chunk_size: int | None,
    *,
    margin: float | None = None,
    squared: bool = True,
    drop: bool = False,
) -> Triplets:
    """Mine ``anchors`` (detached, [B, D]) against ``ref``. ``kind``: "semihard", "batch_hard" or
    "all_semihard"; ``margin``/``squared``/``drop`` as for the native ops. Anchor indices point into
    ``anchors``, positive and negative indices into ``ref.emb``. Output order as the native ops."""
    chunk = chunk_columns(anchors.shape[0], ref.emb.shape[0], chunk_size)
    if chunk is None:
        return _mine_matrix(kind, anchors, labels, ref, margin=margin, squared=squared, drop=drop)
    return _stream(kind, anchors, labels, ref, chunk, margin=margin, squared=squared, drop=drop)


# ---------------------------------------------------------------------------------------------------
# the whole matrix, native ops
# ---------------------------------------------------------------------------------------------------
def _mine_matrix(kind, anchors, labels, ref: ReferenceSet, *, margin, squared, drop) -> Triplets:
    B, N = anchors.shape[0], ref.emb.shape[0]
    off = ref.self_offset
    native = MINING[kind].from_sq_dist
    if off == 0 and N == B:  # the reference set is the batch: the ops' own self-exclusion
        return native(_ops.pairwise_sq_dist(anchors, None), labels, ref.labels, True, margin, squared, drop)
    d = _ops.pairwise_sq_dist(anchors, ref.emb)
    if off is None:
        return native(d, labels, ref.labels, False, margin, squared, drop)
    # The ops exclude "self" only on a square matrix. Anchor i's own column off + i is a positive; every
    # miner's choice for a pair (a, p) ignores the other positives except batch-hard's "farthest
    # positive", so: give self a distance below every real one (it never wins a maximum while another
    # positive exists), mine, and drop the triplets whose positive is the anchor itself.
    rows = torch.arange(B, device=d.device)
    d[rows, rows + off] = -1.0
    a, p, n = native(d, labels, ref.labels, False, margin, squared, drop)
    keep = p != a + off
    return a[keep], p[keep], n[keep]


# ---------------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------------
def _stream(kind, anchors, labels, ref: ReferenceSet, chunk: int, *, margin, squared, drop) -> Triplets:
    N, dev = ref.emb.shape[0], anchors.device
    labels, ref_labels = labels.long(), ref.labels.long()
    ref = ReferenceSet(ref.emb, ref_labels, ref.self_offset)
    pos = positives(labels, ref)
    empty = torch.empty(0, dtype=torch.int64, device=dev)
    if pos.idx.shape[1] == 0:  # no anchor has a positive: every miner returns nothing
        return empty, empty, empty
    state = MINING[kind].stream_state(anchors, labels, ref, pos, chunk, margin=margin, squared=squared, drop=drop)
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        d = _ops.pairwise_sq_dist(anchors, ref.emb[s:e])
        same = labels.unsqueeze(1) == ref_labels[s:e].unsqueeze(0)
        state.update(d, same, torch.arange(s, e, device=dev))
    return state.result()
