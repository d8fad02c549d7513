"""The Python side of the op library: loading the native ops, their fake (meta) kernels, and the one op
written in Python, ``pad_triplets``, with its own.

Fake kernels make the ops traceable by ``torch.compile(fullgraph=True)``: they give each output's shape
and dtype without computing it; data-dependent triplet counts are unbacked symbolic sizes
(``ctx.new_dynamic_size()``). The cross-batch path's Python ops (``mine_reference_set``,
``reference_rows``) live with their code in ``cross_batch``, and ``l2_pool2d``'s fakes in ``pooling``.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (loads the library: registers torch.ops.facenet_ext.*)
from ._dispatch import acc_dtype


@torch.library.register_fake("facenet_ext::pairwise_sq_dist")
def _(x, y):
    n = x.shape[0] if y is None else y.shape[0]
    return x.new_empty((x.shape[0], n), dtype=acc_dtype(x.dtype))


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
    "semi_hard_from_sq_dist",
    "batch_hard_from_sq_dist",
    "all_semi_hard_from_sq_dist",
):
    torch.library.register_fake(f"facenet_ext::{_name}", _fake_triplets)


@torch.library.register_fake("facenet_ext::all_semi_hard_loss")
def _(emb, labels, margin, squared, with_grad):
    acc = acc_dtype(emb.dtype)
    b = emb.shape[0] if with_grad else 0
    return emb.new_empty((3,), dtype=acc), emb.new_empty((2,), dtype=torch.int64), emb.new_empty((b, b), dtype=acc)


@torch.library.register_fake("facenet_ext::triplet_loss_forward")
def _(emb, anchor, positive, negative, margin, squared):
    return tuple(emb.new_empty(anchor.shape, dtype=acc_dtype(emb.dtype)) for _ in range(3))


@torch.library.register_fake("facenet_ext::triplet_loss_backward")
def _(grad_loss, emb, anchor, positive, negative, loss, d_ap, d_an, squared):
    return emb.new_empty(emb.shape)  # packed whatever emb's strides, as both kernels return it
