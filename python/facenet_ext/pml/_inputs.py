"""The arguments PML's ``forward`` hands to ``mine``/``compute_loss``, checked with errors that name
them as PML does (``embeddings``, ``labels``, ``ref_emb``, ``ref_labels``, ``indices_tuple``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_embedding_shape, check_finite, check_labels, check_like, check_tensor


@dataclass
class Batch:
    """Checked inputs. ``plain``: the reference set is the batch itself (PML's default), the fused ops'
    fast path. ``exclude_self``: PML's rule for dropping (i, i) from the positive pairs, ``ref_labels is
    labels`` (so an explicit ``ref_emb=embeddings, ref_labels=labels`` is the plain batch, as in PML)."""

    emb: Tensor
    labels: Tensor | None
    ref_emb: Tensor
    ref_labels: Tensor | None
    plain: bool
    exclude_self: bool


def check_batch(owner: str, embeddings, labels, ref_emb, ref_labels, *, labels_required: bool = True) -> Batch:
    """``embeddings`` [B, D] floating with D > 0 and finite (on the CPU), ``labels`` [B] integer (may be
    ``None`` for a loss given an ``indices_tuple``), the reference set alike."""
    emb = check_embedding_shape(owner, embeddings, "embeddings")  # also refuses width 0
    check_finite(owner, "embeddings", emb)
    if labels is not None or labels_required:
        if labels is None:
            raise ValueError(f"{owner}: labels are required")
        check_labels(owner, labels, emb.shape[0], emb.device, "labels")
    plain = ref_emb is embeddings and ref_labels is labels
    if not plain:
        check_embedding_shape(owner, ref_emb, "ref_emb")
        check_like(owner, ref_emb, "ref_emb", emb, "embeddings")
        check_finite(owner, "ref_emb", ref_emb)
        if ref_labels is not None or labels_required:
            if ref_labels is None:
                raise ValueError(f"{owner}: ref_emb was given without ref_labels; pass both")
            check_labels(owner, ref_labels, ref_emb.shape[0], emb.device, "ref_labels")
    exclude_self = labels is not None and ref_labels is labels
    return Batch(emb, labels, ref_emb, ref_labels, plain, exclude_self)


def check_indices_tuple(
    owner: str, indices: object, batch: int, n_ref: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """(anchor, positive, negative) integer index tensors of one length on ``device``, anchors in
    [0, batch), the others in [0, n_ref): returned as int64."""
    if not (isinstance(indices, (tuple, list)) and len(indices) == 3):
        raise TypeError(f"{owner}: indices_tuple must be (anchors, positives, negatives) or a 4-tuple of pairs")
    out = []
    for i, (t, bound) in enumerate(zip(indices, (batch, n_ref, n_ref))):
        name = f"indices_tuple[{i}]"
        t = check_tensor(owner, name, t)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{owner}: {name} must be an integer tensor, got {t.dtype}")
        if t.dim() != 1:
            raise ValueError(f"{owner}: {name} must be 1-D, got shape {tuple(t.shape)}")
        if t.device != device:
            raise ValueError(f"{owner}: {name} is on {t.device} but embeddings are on {device}")
        if t.numel():
            lo, hi = torch.aminmax(t)
            if int(lo) < 0 or int(hi) >= bound:
                raise IndexError(f"{owner}: {name} must lie in [0, {bound}), got values in [{int(lo)}, {int(hi)}]")
        out.append(t.long())
    if not out[0].shape[0] == out[1].shape[0] == out[2].shape[0]:
        lengths = ", ".join(str(t.shape[0]) for t in out)
        raise ValueError(f"{owner}: indices_tuple holds tensors of different lengths ({lengths})")
    return tuple(out)
