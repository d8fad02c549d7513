"""Mining against a reference set (DESIGN.md, "Beyond one batch"): anchors come from the batch, positives
and negatives from a reference set, which may contain the batch itself at some offset (a memory bank
appended to the batch, or the global batch of ``torch.distributed``).

Two paths, chosen by :func:`chunk_columns`:

* the whole B x N distance matrix, mined by the native ops (the fast path, used while it is small);
* streaming: the reference set in column chunks of C elements, with per-anchor running state updated by
  vectorised PyTorch, so memory is O(B·C + B·K) (K = positives per anchor) and B x N never exists.
  The rules are those of DESIGN.md and ``csrc/common/mining_rules.h`` (ties to the smallest index,
  strict comparisons, margin tests in the distance matrix's dtype), so both paths return the same
  triplets in the same order whenever they see the same distances. See :func:`chunk_columns` for when
  that holds bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import _C  # noqa: F401  (registers torch.ops.facenet_ext.*)
from ._checks import acc_dtype, check_embedding_shape, check_finite, check_labels, check_like
from .memory_bank import MemoryBank

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]

#: The B x N distance matrix is built at once while B·N is at most this many elements (1 GiB in float32).
MATRIX_LIMIT = 2**28
#: Otherwise the reference set is streamed in chunks of ``max(1, CHUNK_ELEMENTS // B)`` columns, whose
#: working set is a few B x chunk tensors (about 16 bytes per element of the chunk: see docs/cross_batch.md).
CHUNK_ELEMENTS = 2**24


@dataclass(frozen=True)
class ReferenceSet:
    """Positives and negatives come from ``emb`` [N, D] (detached) with ``labels`` [N]. ``self_offset``:
    anchor ``i`` is reference element ``self_offset + i`` (the batch is part of the reference set, so an
    anchor is never its own positive), or ``None`` when the reference set is unrelated to the anchors."""

    emb: Tensor
    labels: Tensor
    self_offset: int | None


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
    if chunk_size is None:
        return
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"{fn}: chunk_size must be a positive int or None, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"{fn}: chunk_size must be a positive int or None, got {chunk_size!r}")


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


def plain_batch(fn: str, emb: Tensor, ref_emb, ref_labels, memory, chunk_size) -> bool:
    """True for the hot path: no reference set, no streaming, and B x B fits (emb is checked). Otherwise
    the reference arguments are checked too (metadata only) for :func:`mine_references`."""
    if ref_emb is None and ref_labels is None and memory is None and chunk_size is None:
        return chunk_columns(emb.shape[0], emb.shape[0], None) is None
    check_reference_args(fn, emb, ref_emb, ref_labels, memory, chunk_size)
    return False


def reference_count(emb: Tensor, ref_emb, memory) -> int:
    """How many rows positive/negative indices may point to."""
    if memory is not None:
        return emb.shape[0] + len(memory)
    return emb.shape[0] if ref_emb is None else ref_emb.shape[0]


def mine_references(fn: str, kind: str, emb: Tensor, labels: Tensor, ref_emb, ref_labels, memory, chunk_size, *,
                    margin: float | None = None, squared: bool = True, drop: bool = False) -> Triplets:
    """A miner against a reference set (``ref_emb``, ``memory``, or the batch streamed in chunks), as one
    opaque op, so ``torch.compile(fullgraph=True)`` traces it without a graph break. Arguments checked
    by the caller and :func:`plain_batch`."""
    if memory is not None:
        ref, ref_lab, offset = torch.cat([emb.detach(), memory.embeddings]), torch.cat([labels.long(), memory.labels]), 0
    elif ref_emb is not None:
        ref, ref_lab, offset = ref_emb.detach(), ref_labels, -1
    else:
        ref, ref_lab, offset = emb.detach(), labels, 0
    return _ops.mine_reference_set(fn, kind, emb.detach(), labels, ref, ref_lab, offset, chunk_size or 0, margin,
                                   squared, drop)


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
    return tuple(t.clone() for t in mine(kind, anchors, labels, ref, chunk_size or None, margin=margin,
                                         squared=squared, drop=drop))


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


@torch.library.custom_op("facenet_ext::reference_rows", mutates_args=(),
                         schema="(Tensor p, Tensor n, int base, int batch) -> (Tensor, Tensor, Tensor)")
def _reference_rows(p, n, base, batch):
    idx = torch.cat([p, n])
    in_extra = idx >= base
    used = torch.unique(idx[in_extra] - base)  # sorted
    renumbered = torch.where(in_extra, batch + torch.searchsorted(used, (idx - base).clamp_min(0)), idx)
    return used, renumbered[: p.shape[0]].clone(), renumbered[p.shape[0]:].clone()


@_reference_rows.register_fake
def _(p, n, base, batch):
    k = torch.library.get_ctx().new_dynamic_size()
    return p.new_empty((k,)), torch.empty_like(p), torch.empty_like(n)


def mine(kind: str, anchors: Tensor, labels: Tensor, ref: ReferenceSet, chunk_size: int | None, *,
         margin: float | None = None, squared: bool = True, drop: bool = False) -> Triplets:
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
def _native(kind: str, d: Tensor, labels: Tensor, ref_labels: Tensor, exclude_self: bool, margin, squared, drop):
    if kind == "semihard":
        return _ops.semihard_from_sq_dist(d, labels, ref_labels, exclude_self, margin, squared, drop)
    if kind == "batch_hard":
        return _ops.batch_hard_from_sq_dist(d, labels, ref_labels, exclude_self)
    return _ops.all_semihard_from_sq_dist(d, labels, ref_labels, exclude_self, margin, squared)


def _mine_matrix(kind, anchors, labels, ref: ReferenceSet, *, margin, squared, drop) -> Triplets:
    B, N = anchors.shape[0], ref.emb.shape[0]
    off = ref.self_offset
    if off == 0 and N == B:  # the reference set is the batch: the ops' own self-exclusion
        return _native(kind, _ops.pairwise_sq_dist(anchors, None), labels, ref.labels, True, margin, squared, drop)
    d = _ops.pairwise_sq_dist(anchors, ref.emb)
    if off is None:
        return _native(kind, d, labels, ref.labels, False, margin, squared, drop)
    # The ops exclude "self" only on a square matrix. Anchor i's own column off + i is a positive; every
    # miner's choice for a pair (a, p) ignores the other positives except batch-hard's "farthest
    # positive", so: give self a distance below every real one (it never wins a maximum while another
    # positive exists), mine, and drop the triplets whose positive is the anchor itself.
    rows = torch.arange(B, device=d.device)
    d[rows, rows + off] = -1.0
    a, p, n = _native(kind, d, labels, ref.labels, False, margin, squared, drop)
    keep = p != a + off
    return a[keep], p[keep], n[keep]


# ---------------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Positives:
    """Per anchor its positives in the reference set, ascending and padded: ``idx``/``valid`` [B, K], K =
    the most positives of any anchor (O(B·K), read from the labels alone). ``order[start[a]:][:count[a]]``
    lists every reference element with anchor a's label (the anchor itself included when it is there)."""

    idx: Tensor
    valid: Tensor
    order: Tensor
    start: Tensor
    count: Tensor


def _positives(labels: Tensor, ref: ReferenceSet) -> _Positives:
    B, dev = labels.shape[0], labels.device
    sorted_labels, order = torch.sort(ref.labels, stable=True)  # members of a label: ascending index
    start = torch.searchsorted(sorted_labels, labels, side="left")
    count = torch.searchsorted(sorted_labels, labels, side="right") - start
    # An anchor whose label is the whole reference set has no negative: it forms no triplet, so it gets
    # no positive slots either (a one-identity batch streams nothing instead of B x B slots).
    count = count.masked_fill(count == sorted_labels.shape[0], 0)
    width = int(count.max()) if B else 0
    slot = torch.arange(width, device=dev)
    valid = slot < count.unsqueeze(1)
    idx = order[(start.unsqueeze(1) + slot).clamp_max(max(order.shape[0] - 1, 0))] if width else order.new_zeros((B, 0))
    if ref.self_offset is not None and width:  # drop the anchor's own column and close the gap
        valid &= idx != (torch.arange(B, device=dev) + ref.self_offset).unsqueeze(1)
        width = int(valid.sum(1).max())
        packed = torch.sort(valid.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :width]
        idx, valid = idx.gather(1, packed), valid.gather(1, packed)
    return _Positives(idx.masked_fill(~valid, 0), valid, order, start, count)


def _positive_distances(anchors: Tensor, labels: Tensor, ref: ReferenceSet, pos: _Positives) -> Tensor:
    """D_ap [B, K] (+inf where not valid), one GEMM per identity of the batch: its anchors against the
    reference members of that identity, with the op that computes the chunks' distances. Sum over the
    identities of |anchors|·|members| = O(B·K)."""
    B, K = pos.idx.shape
    out = torch.full((B, K), float("inf"), dtype=acc_dtype(anchors.dtype), device=anchors.device)
    if K == 0:
        return out
    by_label = torch.sort(labels, stable=True).indices
    _, sizes = torch.unique_consecutive(labels[by_label], return_counts=True)
    for rows in torch.split(by_label, sizes.tolist()):
        first = int(rows[0])
        s, c = int(pos.start[first]), int(pos.count[first])
        if c == 0:
            continue
        cols = pos.order[s : s + c]  # ascending
        d = _ops.pairwise_sq_dist(anchors.index_select(0, rows), ref.emb.index_select(0, cols))
        where = torch.searchsorted(cols, pos.idx.index_select(0, rows))  # column of each positive in `cols`
        v = pos.valid.index_select(0, rows)
        out[rows] = torch.where(v, d.gather(1, where.clamp_max(c - 1)), out.index_select(0, rows))
    return out


def _to_metric(sq: Tensor, squared: bool) -> Tensor:
    return sq if squared else sq.sqrt()


def _stream(kind, anchors, labels, ref: ReferenceSet, chunk: int, *, margin, squared, drop) -> Triplets:
    B, N, dev = anchors.shape[0], ref.emb.shape[0], anchors.device
    labels, ref_labels = labels.long(), ref.labels.long()
    ref = ReferenceSet(ref.emb, ref_labels, ref.self_offset)
    pos = _positives(labels, ref)
    empty = torch.empty(0, dtype=torch.int64, device=dev)
    if pos.idx.shape[1] == 0:  # no anchor has a positive: every miner returns nothing
        return empty, empty, empty
    state = _STATES[kind](anchors, labels, ref, pos, chunk, margin=margin, squared=squared, drop=drop)
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        d = _ops.pairwise_sq_dist(anchors, ref.emb[s:e])
        same = labels.unsqueeze(1) == ref_labels[s:e].unsqueeze(0)
        state.update(d, same, torch.arange(s, e, device=dev))
    return state.result()


class _SlotMiner:
    """One native mining call per chunk on the matrix [K "slot" columns | chunk columns], where slot k of
    row a holds D_ap of anchor a's k-th positive. Every anchor gets label 0, the slots label 0 and the
    chunk's columns label 1, so each anchor's positives are exactly its slots and its candidates are the
    chunk's columns. The chunk's true positives (and the anchor itself) get distance -1: below every
    threshold, so never semi-hard, never in an all-semi-hard window, never the farthest negative.
    Padding slots hold the dtype's largest value: no negative lies beyond it. The buffer is allocated
    once; a shorter last chunk uses a row-padded view of it (the ops take any row stride)."""

    def __init__(self, anchors, labels, ref, pos, chunk):
        self.pos, self.valid = pos.idx, pos.valid
        self.d_ap = _positive_distances(anchors, labels, ref, pos)
        B, K = self.pos.shape
        self.work = torch.empty((B, K + chunk), dtype=self.d_ap.dtype, device=self.pos.device)
        self.work[:, :K] = self.d_ap.masked_fill(~self.valid, torch.finfo(self.d_ap.dtype).max)
        self.ref_labels = torch.ones(K + chunk, dtype=torch.int64, device=self.pos.device)
        self.ref_labels[:K] = 0
        self.labels = torch.zeros(B, dtype=torch.int64, device=self.pos.device)
        self.minus_one = torch.tensor(-1.0, dtype=self.d_ap.dtype, device=self.pos.device)

    def matrix(self, d: Tensor, same: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(matrix, labels, ref_labels) for the native op; matrix[:, K:] is the chunk with -1 on positives."""
        K, C = self.pos.shape[1], d.shape[1]
        work = self.work[:, : K + C]
        torch.where(same, self.minus_one, d, out=work[:, K:])
        return work, self.labels, self.ref_labels[: K + C]


class _SemiHard(_SlotMiner):
    """Per (anchor, positive) pair the closest semi-hard negative so far (kept only when strictly closer,
    as earlier chunks hold the smaller indices), and per anchor the farthest negative (TF-Addons'
    fallback). The margin filter is applied at the end, as the op applies it. State O(B·K)."""

    def __init__(self, anchors, labels, ref, pos, chunk, *, margin, squared, drop):
        super().__init__(anchors, labels, ref, pos, chunk)
        self.margin, self.squared, self.drop = margin, squared, drop
        B = self.pos.shape[0]
        self.best_d = torch.full_like(self.d_ap, float("inf"))
        self.best_i = torch.full_like(self.pos, -1)
        self.far_d = torch.full((B,), -1.0, dtype=self.d_ap.dtype, device=self.pos.device)
        self.far_i = torch.full((B,), -1, dtype=torch.int64, device=self.pos.device)

    def update(self, d, same, cols):
        K = self.pos.shape[1]
        work, labels, ref_labels = self.matrix(d, same)
        a, k, n = _ops.semihard_from_sq_dist(work, labels, ref_labels, False, None, True, True)
        dn = work[a, n]
        better = dn < self.best_d[a, k]  # (a, k) pairs are distinct within one call
        a, k = a[better], k[better]
        self.best_d[a, k] = dn[better]
        self.best_i[a, k] = cols[n[better] - K]
        j = work[:, K:].argmax(1)  # first maximum = smallest index; positives sit at -1, below every negative
        fd = work[:, K:].gather(1, j.unsqueeze(1)).squeeze(1)
        better = fd > self.far_d
        self.far_d = torch.where(better, fd, self.far_d)
        self.far_i = torch.where(better, cols[j], self.far_i)

    def result(self) -> Triplets:
        n, d_an = self.best_i, self.best_d
        if not self.drop:
            found = n >= 0
            n = torch.where(found, n, self.far_i.unsqueeze(1))
            d_an = torch.where(found, d_an, self.far_d.unsqueeze(1))
        keep = self.valid & (n >= 0) & (self.far_i >= 0).unsqueeze(1)  # anchors without negatives: nothing
        if self.margin is not None:
            m = torch.tensor(self.margin, dtype=d_an.dtype, device=d_an.device)
            keep &= _to_metric(d_an, self.squared) < _to_metric(self.d_ap, self.squared) + m
        a = torch.arange(n.shape[0], device=n.device).unsqueeze(1).expand_as(n)
        return a[keep], self.pos[keep], n[keep]


def _running_extreme(masked: Tensor, largest: bool, best_d: Tensor, best_i: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's extreme of this chunk (first occurrence = smallest index) merged into the running one:
    strictly better only, as earlier chunks hold the smaller indices."""
    j = masked.argmax(1) if largest else masked.argmin(1)
    v = masked.gather(1, j.unsqueeze(1)).squeeze(1)
    take = v > best_d if largest else v < best_d
    return torch.where(take, v, best_d), torch.where(take, cols[j], best_i)


class _BatchHard:
    """Per anchor a running farthest positive and closest negative, ties to the smallest index."""

    def __init__(self, anchors, labels, ref, pos, chunk, **_):
        B, dev = pos.idx.shape[0], pos.idx.device
        self.self_col = None if ref.self_offset is None else (torch.arange(B, device=dev) + ref.self_offset).unsqueeze(1)
        acc = acc_dtype(anchors.dtype)
        self.p_d = torch.full((B,), float("-inf"), dtype=acc, device=dev)
        self.n_d = torch.full((B,), float("inf"), dtype=acc, device=dev)
        self.p_i = torch.full((B,), -1, dtype=torch.int64, device=dev)
        self.n_i = torch.full((B,), -1, dtype=torch.int64, device=dev)

    def update(self, d, same, cols):
        positive = same if self.self_col is None else same & (cols.unsqueeze(0) != self.self_col)
        self.p_d, self.p_i = _running_extreme(d.masked_fill(~positive, float("-inf")), True, self.p_d, self.p_i, cols)
        self.n_d, self.n_i = _running_extreme(d.masked_fill(same, float("inf")), False, self.n_d, self.n_i, cols)

    def result(self) -> Triplets:
        keep = (self.p_i >= 0) & (self.n_i >= 0)
        return keep.nonzero().squeeze(1), self.p_i[keep], self.n_i[keep]


class _AllSemiHard(_SlotMiner):
    """Every (a, p, n) with 0 < D_an - D_ap <= margin: chunk results concatenated in chunk order (so n
    ascends within each (a, p)), then stably sorted by (anchor, positive): the whole-matrix op's order."""

    def __init__(self, anchors, labels, ref, pos, chunk, *, margin, squared, **_):
        super().__init__(anchors, labels, ref, pos, chunk)
        self.margin, self.squared, self.n_ref = margin, squared, ref.emb.shape[0]
        self.parts: list[Triplets] = []

    def update(self, d, same, cols):
        K = self.pos.shape[1]
        a, k, n = _ops.all_semihard_from_sq_dist(*self.matrix(d, same), False, self.margin, self.squared)
        self.parts.append((a, self.pos[a, k], cols[n - K]))

    def result(self) -> Triplets:
        a, p, n = (torch.cat(t) for t in zip(*self.parts))
        order = torch.sort(a * self.n_ref + p, stable=True).indices
        return a[order], p[order], n[order]


_STATES = {"semihard": _SemiHard, "batch_hard": _BatchHard, "all_semihard": _AllSemiHard}
