"""Streaming mining state: the running per-anchor state that mines a reference set one column chunk at
a time (:func:`facenet_ext.cross_batch.mine` drives it), so memory is O(B·C + B·K) for chunks of C
columns and K positives per anchor, and the B x N matrix never exists. The rules are those of
``csrc/rules/mining_rules.h`` (ties to the smallest index, strict comparisons, margin tests in the
distance matrix's dtype), applied by the native ``*_from_sq_dist`` ops to each chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import _C  # noqa: F401  (registers torch.ops.facenet_ext.*)
from ._dispatch import acc_dtype

_ops = torch.ops.facenet_ext
Triplets = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class ReferenceSet:
    """Positives and negatives come from ``emb`` [N, D] (detached) with ``labels`` [N]. ``self_offset``:
    anchor ``i`` is reference element ``self_offset + i`` (the batch is part of the reference set, so an
    anchor is never its own positive), or ``None`` when the reference set is unrelated to the anchors."""

    emb: Tensor
    labels: Tensor
    self_offset: int | None


@dataclass(frozen=True)
class Positives:
    """Per anchor its positives in the reference set, ascending and padded: ``idx``/``valid`` [B, K], K =
    the most positives of any anchor (O(B·K), read from the labels alone). ``order[start[a]:][:count[a]]``
    lists every reference element with anchor a's label (the anchor itself included when it is there)."""

    idx: Tensor
    valid: Tensor
    order: Tensor
    start: Tensor
    count: Tensor


def positives(labels: Tensor, ref: ReferenceSet) -> Positives:
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
    return Positives(idx.masked_fill(~valid, 0), valid, order, start, count)


def _positive_distances(anchors: Tensor, labels: Tensor, ref: ReferenceSet, pos: Positives) -> Tensor:
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


class SemiHardState(_SlotMiner):
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
        a, k, n = _ops.semi_hard_from_sq_dist(work, labels, ref_labels, False, None, True, True)
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


def _running_extreme(
    masked: Tensor, largest: bool, best_d: Tensor, best_i: Tensor, cols: Tensor
) -> tuple[Tensor, Tensor]:
    """Each row's extreme of this chunk (first occurrence = smallest index) merged into the running one:
    strictly better only, as earlier chunks hold the smaller indices."""
    j = masked.argmax(1) if largest else masked.argmin(1)
    v = masked.gather(1, j.unsqueeze(1)).squeeze(1)
    take = v > best_d if largest else v < best_d
    return torch.where(take, v, best_d), torch.where(take, cols[j], best_i)


class BatchHardState:
    """Per anchor a running farthest positive and closest negative, ties to the smallest index."""

    def __init__(self, anchors, labels, ref, pos, chunk, **_):
        B, dev = pos.idx.shape[0], pos.idx.device
        self.self_col = (
            None if ref.self_offset is None else (torch.arange(B, device=dev) + ref.self_offset).unsqueeze(1)
        )
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


class AllSemiHardState(_SlotMiner):
    """Every (a, p, n) with 0 < D_an - D_ap <= margin: chunk results concatenated in chunk order (so n
    ascends within each (a, p)), then stably sorted by (anchor, positive): the whole-matrix op's order."""

    def __init__(self, anchors, labels, ref, pos, chunk, *, margin, squared, **_):
        super().__init__(anchors, labels, ref, pos, chunk)
        self.margin, self.squared, self.n_ref = margin, squared, ref.emb.shape[0]
        self.parts: list[Triplets] = []

    def update(self, d, same, cols):
        K = self.pos.shape[1]
        a, k, n = _ops.all_semi_hard_from_sq_dist(*self.matrix(d, same), False, self.margin, self.squared)
        self.parts.append((a, self.pos[a, k], cols[n - K]))

    def result(self) -> Triplets:
        a, p, n = (torch.cat(t) for t in zip(*self.parts))
        order = torch.sort(a * self.n_ref + p, stable=True).indices
        return a[order], p[order], n[order]
