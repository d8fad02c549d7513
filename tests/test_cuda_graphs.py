"""The GPU contract of capacity=: no host sync, so a training step captures in a CUDA graph and replays
with new data; and at most one sync per call without it (two for all_semi_hard_triplets, documented in
docs/semantics.md). CUDA only: every test here skips without a GPU and a CUDA build.

Syncs are counted with torch.cuda.set_sync_debug_mode, which flags every synchronising copy or call
(``.item()``, ``.cpu()``, ``nonzero``, blocking host-to-device copies) that torch or the extension makes.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import facenet_ext as fx

from params import CUDA_MARKS

OPS = torch.ops.facenet_ext

pytestmark = CUDA_MARKS

B, D, IDS, CAPACITY = 96, 32, 12, 1024


def batch(seed: int, device="cuda"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g)
    labels = torch.arange(B) % IDS
    return x.to(device), labels[torch.randperm(B, generator=g)].to(device)


def syncs_of(fn) -> int:
    """How many synchronising CUDA operations fn() makes."""
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum("synchronizing" in str(w.message) for w in caught)


CAPTURABLE = {
    "semihard": lambda e, y: fx.semi_hard_triplets(e, y, capacity=CAPACITY),
    "semihard-margin": lambda e, y: fx.semi_hard_triplets(e, y, 0.2, capacity=CAPACITY),
    "semihard-drop": lambda e, y: fx.semi_hard_triplets(e, y, fallback="drop", capacity=CAPACITY),
    "batch_hard": lambda e, y: fx.batch_hard_triplets(e, y, capacity=CAPACITY),
    "loss-semihard": lambda e, y: fx.triplet_loss(e, y, capacity=CAPACITY),
    "loss-batch_hard": lambda e, y: fx.triplet_loss(e, y, mining="batch_hard", capacity=CAPACITY),
}


@pytest.mark.parametrize("name", CAPTURABLE)
def test_capacity_calls_do_not_sync(name):
    x, labels = batch(0)
    emb = F.normalize(x, dim=1).requires_grad_()
    CAPTURABLE[name](emb, labels)  # warm-up: the error word is allocated on first use

    def call():
        out = CAPTURABLE[name](emb, labels)
        if isinstance(out, torch.Tensor):
            out.backward()

    assert syncs_of(call) == 0


EXACT = {
    "semi_hard_triplets": (lambda e, y: fx.semi_hard_triplets(e, y), 1),
    "semi_hard_triplets-margin": (lambda e, y: fx.semi_hard_triplets(e, y, 0.2), 1),
    "semi_hard_triplets-drop": (lambda e, y: fx.semi_hard_triplets(e, y, fallback="drop"), 1),
    "batch_hard_triplets": (lambda e, y: fx.batch_hard_triplets(e, y), 1),
    "semi_hard_from_sq_dist": (
        lambda e, y: torch.ops.facenet_ext.semi_hard_from_sq_dist(
            fx.pairwise_sq_dist(e), y, y, True, None, True, False
        ),
        1,
    ),
    "batch_hard_from_sq_dist": (
        lambda e, y: torch.ops.facenet_ext.batch_hard_from_sq_dist(fx.pairwise_sq_dist(e), y, y, True),
        1,
    ),
    "all_semi_hard_triplets": (lambda e, y: fx.all_semi_hard_triplets(e, y), 2),
}


@pytest.mark.parametrize("name", EXACT)
def test_exact_calls_sync_as_documented(name):
    x, labels = batch(1)
    emb = F.normalize(x, dim=1)
    fn, syncs = EXACT[name]
    fn(emb, labels)
    assert syncs_of(lambda: fn(emb, labels)) == syncs


@pytest.mark.parametrize("mining", ["semihard", "batch_hard"])
def test_training_step_captures_in_a_cuda_graph(mining):
    """A step (embed, mine, loss, backward) captured once, replayed on new batches: the loss and the
    gradient equal an eager step on the same batch."""
    torch.manual_seed(0)
    w = torch.randn(D, 16, device="cuda", requires_grad=True)
    static_x, static_y = batch(2)

    def step(x, y, weight):
        emb = F.normalize(x @ weight, dim=1)
        return fx.triplet_loss(emb, y, mining=mining, capacity=CAPACITY)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            w.grad = None
            step(static_x, static_y, w).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    w.grad = None
    with torch.cuda.graph(graph):
        static_loss = step(static_x, static_y, w)
        static_loss.backward()
    for seed in (3, 4, 5):
        x, y = batch(seed)
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        w_eager = w.detach().clone().requires_grad_()
        eager = step(x, y, w_eager)
        eager.backward()
        torch.testing.assert_close(static_loss, eager, rtol=0, atol=0)
        torch.testing.assert_close(w.grad, w_eager.grad, rtol=0, atol=0)


def test_non_finite_embeddings_with_capacity_are_reported_by_check_errors():
    x, labels = batch(6)
    emb = F.normalize(x, dim=1)
    fx.check_errors()  # nothing pending
    emb[3, 0] = float("nan")
    fx.semi_hard_triplets(emb, labels, capacity=CAPACITY)  # no raise: that would need a sync
    with pytest.raises(ValueError, match="NaN or Inf"):
        fx.check_errors()
    fx.check_errors()  # cleared by the first check
    with pytest.raises(ValueError, match="NaN or Inf"):
        fx.semi_hard_triplets(emb, labels)  # without capacity the one read-back raises at once
