"""Global mining across processes with ``torch.distributed`` (gloo on CPU, NCCL on GPUs).

Each rank mines its own anchors against the global batch (every rank's embeddings, gathered with
autograd), so a triplet may take its positive or negative from another rank, as if one process held the
concatenated batch (rank 0's rows first). Gradients flow back to the rank that owns each row through the
all-gather's backward.

Faults: every collective here runs on ``group`` (default: the world group) and is bounded by that
group's timeout (``torch.distributed.init_process_group(..., timeout=datetime.timedelta(...))``; torch's
defaults are ``torch.distributed.constants.default_pg_timeout``, 30 minutes, for gloo and 10 minutes for
NCCL). A rank that dies or stalls makes the others raise once that timeout expires instead of hanging
forever; with NCCL set ``TORCH_NCCL_ASYNC_ERROR_HANDLING=1`` (the default in recent PyTorch) so the error
is raised rather than left pending.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import Tensor

from . import triplet
from ._checks import check_choice, check_embeddings, check_labels, check_margin
from .cross_batch import check_chunk_size, mine
from .mining import MINING
from .streaming import ReferenceSet

_ops = torch.ops.facenet_ext
REDUCTIONS = tuple(r for r in triplet.REDUCTIONS if r != "none")  # a per-triplet result has no global form


def _pad_rows(t: Tensor, sizes: list[int]) -> Tensor:
    """``t`` with zero rows appended up to the largest rank's size (all_gather needs equal shapes)."""
    pad = max(sizes) - t.shape[0]
    return torch.cat([t, t.new_zeros((pad, *t.shape[1:]))]) if pad else t


def _gather_with_grad(t: Tensor, sizes: list[int], group) -> Tensor:
    """The concatenation of every rank's ``t`` (first dims ``sizes``), differentiable: backward sends each
    rank the sum over ranks of the gradient on its rows. all_gather needs equal shapes, so rows are
    padded to the largest rank's and the padding sliced off (it gets no gradient)."""
    from torch.distributed.nn.functional import all_gather  # imported on use: it loads torch.distributed.nn

    padded = _pad_rows(t, sizes)
    with warnings.catch_warnings():
        # Deprecated since torch 2.6 in favour of the private torch.distributed._functional_collectives;
        # this is the public autograd all-gather that works on every backend (gloo included).
        warnings.filterwarnings(
            "ignore", message=r"torch\.distributed\.nn\.functional\.all_gather", category=FutureWarning
        )
        parts = all_gather(padded, group=group)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def _gather(t: Tensor, sizes: list[int], group) -> Tensor:
    """All-gather without autograd, unequal first dims (padded, then sliced)."""
    padded = _pad_rows(t, sizes).contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def triplet_loss(
    emb: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    *,
    mining: str = "semihard",
    squared: bool | None = None,
    reduction: str = "mean",
    group=None,
    scale_for_ddp: bool = True,
    chunk_size: int | None = None,
) -> Tensor:
    r""":func:`facenet_ext.triplet_loss` over the global batch of a process group: this rank's anchors
    (``emb`` [B_r, D], ``labels`` [B_r]; ranks may hold different B_r) mined against every rank's
    embeddings, so the union over ranks of the mined triplets is what one process would mine on the
    concatenated batch (rank order), up to float rounding of the distances (the row block of a GEMM
    may round differently from the full matrix; on exactly representable distances it is identical).

    Reduction over the *global* triplets: ``"mean"`` divides this rank's sum by the global number of
    triplets, ``"mean_active"`` by the global number with non-zero loss, ``"sum"`` does not divide.
    ``"none"`` (per-triplet losses) raises ``ValueError``: each rank holds only its own anchors' triplets,
    so there is no global per-triplet result to return. Then:

    * ``scale_for_ddp=True`` (default): the result is multiplied by the world size, because
      ``DistributedDataParallel`` *averages* parameter gradients over ranks. Each rank calls
      ``backward()`` on its own value; after DDP's averaging the parameter gradients equal those of the
      single-process loss on the concatenated batch. The returned values average (over ranks) to that
      loss.
    * ``scale_for_ddp=False``: the per-rank values *sum* to the single-process loss, and the gradient
      each rank receives on its ``emb`` (all-gather backward sums over ranks) equals the single-process
      gradient on its rows. Use it when you sum gradients yourself.

    Collectives per call, in this order: one all-gather of the batch sizes (and widths), of the
    embeddings (with autograd), of the labels, and, for the means, one all-reduce of the triplet count.
    All are bounded by the group's timeout (see the module docstring). Without an initialised process
    group this is the plain :func:`facenet_ext.triplet_loss` (a world of one). Every argument is checked
    before the first collective, on every rank, with messages naming ``distributed.triplet_loss``.

    Mining follows :func:`facenet_ext.triplet_loss`: ``"semihard"`` and ``"batch_hard"`` select without
    the margin (it enters only the loss), ``"all_semihard"`` selects the triplets within it.
    """
    fn = "distributed.triplet_loss"
    emb = check_embeddings(fn, emb)
    labels = check_labels(fn, labels, emb.shape[0], emb.device)
    margin = check_margin(fn, margin, dtype=emb.dtype)
    check_choice(fn, "mining", mining, tuple(MINING))
    squared = triplet.resolve_squared(fn, squared, mining)
    check_choice(fn, "reduction", reduction, REDUCTIONS)
    check_chunk_size(fn, chunk_size)  # every argument checked here, before the first collective
    if not (dist.is_available() and dist.is_initialized()):
        return triplet.triplet_loss(
            emb, labels, margin, mining=mining, squared=squared, reduction=reduction, chunk_size=chunk_size
        )
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    # Sizes first: ranks may hold different batch sizes (the last batch of an epoch, uneven sharding).
    size = torch.tensor([emb.shape[0], emb.shape[1]], dtype=torch.int64, device=emb.device)
    sizes_t = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes_t, size, group=group)
    sizes = [int(s[0]) for s in sizes_t]
    if any(int(s[1]) != emb.shape[1] for s in sizes_t):
        raise ValueError(f"{fn}: ranks hold embeddings of different widths: {[int(s[1]) for s in sizes_t]}")
    global_emb = _gather_with_grad(emb, sizes, group)
    global_labels = _gather(labels.long(), sizes, group)
    offset = sum(sizes[:rank])
    with torch.no_grad():
        a, p, n = mine(
            mining,
            global_emb[offset : offset + emb.shape[0]].detach(),
            labels,
            ReferenceSet(global_emb.detach(), global_labels, offset),
            chunk_size,
            margin=MINING[mining].mining_margin(float(margin)),
            squared=bool(squared),
        )
    # Recompute the distances from the gathered rows: this rank's own rows come back through the
    # all-gather too, so every row's gradient is summed over ranks exactly once in backward.
    loss, _, _ = _ops.triplet_loss_forward(global_emb, a + offset, p, n, float(margin), bool(squared))
    total = loss.sum()
    if reduction != "sum":
        count = torch.tensor(
            float(loss.shape[0]) if reduction == "mean" else 0.0, dtype=torch.float64, device=emb.device
        )
        if reduction == "mean_active":
            count += (loss.detach() > 0).sum()
        dist.all_reduce(count, group=group)
        total = total / count.clamp_min(1).to(total.dtype)
    return total * world if scale_for_ddp else total


__all__ = ["triplet_loss"]
