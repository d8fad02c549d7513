"""capacity=: the miners and triplet_loss with static shapes. The padded output holds the same triplets in the
same order, then -1; `found` counts every triplet; the loss ignores the padding; under torch.compile every
output shape is a plain number (no data-dependent size), with no graph break."""

import pytest
import torch
import torch.nn.functional as F

import facenet_ext as fx

from params import devices

MINERS = {
    "semihard": fx.semi_hard_triplets,
    "batch_hard": fx.batch_hard_triplets,
    "all_semihard": fx.all_semi_hard_triplets,
}


def batch(device="cpu", b=40, ids=5, dim=8):
    g = torch.Generator().manual_seed(b)
    emb = F.normalize(torch.randn(b, dim, generator=g), dim=1).to(device)
    return emb, (torch.arange(b) % ids).to(device)


@devices()
@pytest.mark.parametrize("kind", MINERS)
@pytest.mark.parametrize("refs", ["plain", "ref_emb", "chunked"])
def test_padded_miner_output(device, kind, refs):
    emb, labels = batch(device)
    ref, ref_labels = batch(device, b=23)
    kwargs = {"plain": {}, "ref_emb": {"ref_emb": ref, "ref_labels": ref_labels}, "chunked": {"chunk_size": 7}}[refs]
    miner = MINERS[kind]
    want = miner(emb, labels, **kwargs)
    t = len(want[0])
    assert t > 2
    for capacity in (0, t - 1, t, t + 7):
        *got, found = miner(emb, labels, **kwargs, capacity=capacity)
        assert found.dim() == 0 and found.dtype == torch.int64 and found.item() == t
        k = min(t, capacity)
        for g, w in zip(got, want):
            assert g.shape == (capacity,) and g.dtype == torch.int64 and g.device == emb.device
            assert torch.equal(g[:k], w[:k])
            assert (g[k:] == -1).all()


@pytest.mark.parametrize("bad, exc", [(2.5, TypeError), (True, TypeError), ("8", TypeError), (-1, ValueError)])
def test_capacity_is_checked(bad, exc):
    emb, labels = batch()
    for fn in (*MINERS.values(), fx.triplet_loss):
        with pytest.raises(exc, match=f"{fn.__name__}: capacity"):
            fn(emb, labels, capacity=bad)


@devices()
@pytest.mark.parametrize("kind", MINERS)
@pytest.mark.parametrize("reduction", ["mean", "mean_active", "sum", "none"])
def test_loss_ignores_the_padding(device, kind, reduction):
    emb, labels = batch(device)
    t = len(MINERS[kind](emb, labels)[0])  # the loss's defaults mine what the miner's do
    for capacity in (t, t + 50):
        e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
        want, want_stats = fx.triplet_loss(e1, labels, mining=kind, reduction=reduction, return_stats=True)
        got, stats = fx.triplet_loss(e2, labels, mining=kind, reduction=reduction, return_stats=True, capacity=capacity)
        if reduction == "none":
            assert got.shape == (capacity,)
            assert (got[t:] == 0).all()
            got = got[:t]
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        assert {k: v.item() for k, v in stats.items()} == pytest.approx({k: v.item() for k, v in want_stats.items()})
        want.sum().backward()
        got.sum().backward()
        torch.testing.assert_close(e2.grad, e1.grad, rtol=1e-6, atol=1e-7)


def test_loss_counts_only_the_triplets_it_kept():
    """Truncated to `capacity`: the loss is the mean over the first `capacity` triplets."""
    emb, labels = batch()
    a, p, n = fx.semi_hard_triplets(emb, labels)
    got, stats = fx.triplet_loss(emb, labels, capacity=10, return_stats=True)
    want = fx.triplet_loss(emb, None, mining=(a[:10], p[:10], n[:10]))
    torch.testing.assert_close(got, want)
    assert stats["num_triplets"].item() == 10


def test_empty_batch_with_capacity():
    emb = torch.empty(0, 4, requires_grad=True)
    labels = torch.empty(0, dtype=torch.int64)
    a, p, n, found = fx.semi_hard_triplets(emb, labels, capacity=5)
    assert found.item() == 0 and (a == -1).all() and a.shape == (5,)
    for reduction in ("mean", "none"):
        out = fx.triplet_loss(emb, labels, capacity=5, reduction=reduction)
        assert out.shape == (() if reduction == "mean" else (5,)) and (out == 0).all()
        out.sum().backward()


@pytest.mark.parametrize("kind", MINERS)
def test_compiled_shapes_are_static(kind):
    """No output of the compiled graph has a data-dependent size (what CUDA graphs and
    mode="reduce-overhead" need), and the compiled results equal eager ones."""
    emb, labels = batch()
    shapes = []

    def backend(gm, example_inputs):
        out = next(node for node in gm.graph.nodes if node.op == "output")
        for arg in torch.utils._pytree.tree_leaves(out.args):
            if isinstance(arg, torch.fx.Node) and "example_value" in arg.meta:
                shapes.append(tuple(arg.meta["example_value"].shape))
        return gm

    def step(e, y):
        triplets = MINERS[kind](e, y, capacity=512)
        loss = fx.triplet_loss(e, y, mining=kind, capacity=512, reduction="none")
        return (*triplets, loss)

    got = torch.compile(step, backend=backend, fullgraph=True, dynamic=False)(emb, labels)
    want = step(emb, labels)
    assert shapes and all(isinstance(s, int) for shape in shapes for s in shape), shapes
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


PADDED_OPS = {
    "semihard": lambda e, y, m, drop, c: torch.ops.facenet_ext.semi_hard_triplets_padded(e, y, m, True, drop, c),
    "batch_hard": lambda e, y, m, drop, c: torch.ops.facenet_ext.batch_hard_triplets_padded(e, y, c),
}


@devices()
@pytest.mark.parametrize("kind", PADDED_OPS)
@pytest.mark.parametrize("rule", ["plain", "margin", "drop"])
def test_padded_ops_pad_the_exact_miner(device, kind, rule):
    """The native capacity= ops (one call, no host sync on CUDA) against the exact miner, padded."""
    if kind == "batch_hard" and rule != "plain":
        pytest.skip("batch-hard has no margin or fallback")
    margin, drop = (0.3 if rule == "margin" else None), rule == "drop"
    for b, ids in ((40, 5), (40, 1), (40, 40), (0, 1), (33, 3)):  # one identity, all distinct, empty
        emb, labels = batch(device, b=b, ids=ids)
        if kind == "semihard":
            want = fx.semi_hard_triplets(emb, labels, margin, fallback="drop" if drop else "easiest")
        else:
            want = fx.batch_hard_triplets(emb, labels)
        t = len(want[0])
        for capacity in sorted({0, 1, max(t - 1, 0), t, t + 7}):
            *got, found = PADDED_OPS[kind](emb, labels, margin, drop, capacity)
            assert found.dim() == 0 and found.dtype == torch.int64 and found.item() == t
            k = min(t, capacity)
            for g, w in zip(got, want):
                assert g.shape == (capacity,) and g.dtype == torch.int64 and g.device == emb.device
                assert torch.equal(g[:k], w[:k]) and (g[k:] == -1).all()


@pytest.mark.parametrize("kind", PADDED_OPS)
def test_padded_ops_check_their_arguments(kind):
    """A direct torch.ops call is checked in full, as the Python wrappers are."""
    emb, labels = batch()
    with pytest.raises(ValueError, match="capacity must be >= 0"):
        PADDED_OPS[kind](emb, labels, None, False, -1)
    with pytest.raises(ValueError, match="labels"):
        PADDED_OPS[kind](emb, labels[:-1], None, False, 8)


@pytest.mark.parametrize("kind", PADDED_OPS)
def test_padded_ops_opcheck(kind):
    emb, labels = batch()
    op = {
        "semihard": torch.ops.facenet_ext.semi_hard_triplets_padded,
        "batch_hard": torch.ops.facenet_ext.batch_hard_triplets_padded,
    }[kind]
    args = (emb, labels, 0.3, True, False, 16) if kind == "semihard" else (emb, labels, 16)
    torch.library.opcheck(op, args)
