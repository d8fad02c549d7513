"""Every tensor argument of every public function and every registered op, passed in each layout a user
can produce (strided, transposed, expanded, offset into its storage; channels-last for images), gives
the result of the same values passed packed.

The kernels read raw pointers; a layout they do not pack first would read the wrong elements (or past
the storage for an expanded view). Results are compared exactly. Embeddings have small-integer
coordinates: a BLAS may round the last bit differently for differently aligned storage (an offset view
is already contiguous, so it is not copied), but on integers every path is exact.
"""

import pytest
import torch

import facenet_ext as fx

from params import devices

ops = torch.ops.facenet_ext


# Each layout maps a packed tensor to (view in that layout, the packed tensor of the same values).
# "expanded" repeats the first row (stride 0), so it changes the values: its packed twin is its own copy.
def strided(t):
    v = torch.repeat_interleave(t, 2, dim=0)[::2] if t.dim() else t
    return v, t


def transposed(t):
    if t.dim() >= 2:
        return t.transpose(0, 1).contiguous().transpose(0, 1), t
    return torch.stack([t, t], dim=t.dim())[..., 0], t  # a column of a 2-D tensor: stride 2


def expanded(t):
    v = t.narrow(0, 0, 1).expand_as(t)
    return v, v.contiguous()


def offset(t):
    return torch.cat([t.narrow(0, 0, 1), t])[1:], t


def channels_last(t):
    return (t.contiguous(memory_format=torch.channels_last), t) if t.dim() == 4 else (t, t)


LAYOUTS = {"strided": strided, "transposed": transposed, "expanded": expanded, "offset": offset}


def assert_same(got, want):
    if isinstance(want, torch.Tensor):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        return
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def check_every_argument(call, args, layouts=LAYOUTS):
    """call(*args) with each tensor argument in each layout equals call with that argument packed."""
    checked = 0
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor) or a.dim() == 0 or a.shape[0] == 0:
            continue
        for name, layout in layouts.items():
            view, packed = layout(a)
            assert not (view.is_contiguous() and view.storage_offset() == 0) or name == "transposed" and a.dim() < 2
            with_view, with_packed = list(args), list(args)
            with_view[i], with_packed[i] = view, packed
            assert_same(call(*with_view), call(*with_packed))
            checked += 1
    assert checked > 0


def batch(device, dtype=torch.float32, b=24, d=5, ids=4):
    emb = torch.randint(-3, 4, (b, d)).to(dtype).to(device)
    labels = (torch.arange(b) % ids).to(device)
    return emb, labels


def triplets(emb, labels):
    return fx.semi_hard_triplets(emb, labels)


# ---------------------------------------------------------------------------------------------------
# the public functions
# ---------------------------------------------------------------------------------------------------
@devices()
def test_pairwise_sq_dist(device):
    x, _ = batch(device)
    y, _ = batch(device, b=9)
    check_every_argument(lambda x: fx.pairwise_sq_dist(x), [x])
    check_every_argument(lambda x, y: fx.pairwise_sq_dist(x, y), [x, y])


@devices()
@pytest.mark.parametrize("miner", ["semi_hard", "batch_hard", "all_semi_hard"])
def test_miners(device, miner):
    emb, labels = batch(device)
    ref, ref_labels = batch(device, b=13)
    fn = getattr(fx, f"{miner}_triplets")
    check_every_argument(lambda e, y: fn(e, y), [emb, labels])
    check_every_argument(lambda e, y, r, ry: fn(e, y, ref_emb=r, ref_labels=ry), [emb, labels, ref, ref_labels])
    check_every_argument(lambda e, y: fn(e, y, chunk_size=5), [emb, labels])


@devices()
@pytest.mark.parametrize("squared", [True, False])
def test_triplet_loss_with_explicit_triplets(device, squared):
    """The reported case: the columns of torch.stack([a, p, n], 1) (strided), and expanded index tensors."""
    emb, labels = batch(device)
    a, p, n = triplets(emb, labels)

    def loss_and_grad(e, a, p, n):
        e = e.detach().requires_grad_()
        loss = fx.triplet_loss(e, None, mining=(a, p, n), squared=squared, reduction="sum")
        (g,) = torch.autograd.grad(loss, e)
        return loss, g

    check_every_argument(loss_and_grad, [emb, a, p, n])
    columns = torch.stack([a, p, n], 1)
    assert_same(loss_and_grad(emb, *columns.unbind(1)), loss_and_grad(emb, a, p, n))


@devices()
@pytest.mark.parametrize("squared", [True, False])
def test_fused_all_semi_hard_loss(device, squared):
    emb, labels = batch(device)

    def loss_and_grad(e, y):
        e = e.detach().requires_grad_()
        loss = fx.triplet_loss(e, y, 0.5, mining="all_semihard", squared=squared, reduction="sum")
        (g,) = torch.autograd.grad(loss, e)
        return loss, g

    check_every_argument(loss_and_grad, [emb, labels])


@devices()
def test_triplet_loss_with_a_reference_set(device):
    emb, labels = batch(device)
    ref, ref_labels = batch(device, b=13)

    def loss_and_grads(e, y, r, ry):
        e, r = e.detach().requires_grad_(), r.detach().requires_grad_()
        loss = fx.triplet_loss(e, y, ref_emb=r, ref_labels=ry, reduction="sum")
        return (loss, *torch.autograd.grad(loss, (e, r)))

    check_every_argument(loss_and_grads, [emb, labels, ref, ref_labels])


@devices()
def test_l2_pool2d(device):
    x = torch.randint(-3, 4, (2, 3, 7, 6), device=device).float()

    def pooled_and_grad(x, g):
        x = x.detach().requires_grad_()
        y = fx.l2_pool2d(x, 3, stride=2, padding=1)
        return y, torch.autograd.grad(y, x, g)[0]

    g = torch.randint(-3, 4, (2, 3, 4, 3), device=device).float()
    check_every_argument(pooled_and_grad, [x, g], {**LAYOUTS, "channels_last": channels_last})


# ---------------------------------------------------------------------------------------------------
# the registered ops, called directly
# ---------------------------------------------------------------------------------------------------
@devices()
def test_native_miner_ops(device):
    emb, labels = batch(device, dtype=torch.float64)
    d = fx.pairwise_sq_dist(emb)
    ref, ref_labels = batch(device, dtype=torch.float64, b=13)
    d_ref = fx.pairwise_sq_dist(emb, ref)
    check_every_argument(lambda d, y: ops.semi_hard_from_sq_dist(d, y, y.clone(), True, 0.5, False, True), [d, labels])
    check_every_argument(
        lambda d, y, ry: ops.semi_hard_from_sq_dist(d, y, ry, False, None, True, False), [d_ref, labels, ref_labels]
    )
    check_every_argument(lambda d, y, ry: ops.batch_hard_from_sq_dist(d, y, ry, False), [d_ref, labels, ref_labels])
    check_every_argument(
        lambda d, y, ry: ops.all_semi_hard_from_sq_dist(d, y, ry, False, 0.3, True), [d_ref, labels, ref_labels]
    )
    check_every_argument(lambda e, y: ops.semi_hard_triplets(e, y, None, True, False), [emb, labels])
    check_every_argument(lambda e, y: ops.batch_hard_triplets(e, y), [emb, labels])
    check_every_argument(lambda e, y: ops.all_semi_hard_triplets(e, y, 0.3, False), [emb, labels])
    check_every_argument(lambda e, y: ops.all_semi_hard_loss(e, y, 0.3, False, True), [emb, labels])
    check_every_argument(lambda x, y: ops.pairwise_sq_dist(x, y), [emb, ref])


@devices()
def test_native_triplet_ops(device):
    emb, labels = batch(device)
    a, p, n = triplets(emb, labels)
    loss, d_ap, d_an = ops.triplet_loss_forward(emb, a, p, n, 0.2, True)
    grad = torch.randint_like(loss, -3, 4)
    check_every_argument(lambda e, a, p, n: ops.triplet_loss_forward(e, a, p, n, 0.2, True), [emb, a, p, n])
    check_every_argument(
        lambda g, e, a, p, n, loss, dp, dn: ops.triplet_loss_backward(g, e, a, p, n, loss, dp, dn, True),
        [grad, emb, a, p, n, loss, d_ap, d_an],
    )
    # The gradient autograd hands the backward of loss.sum() is a stride-0 expansion of one number.
    assert_same(
        ops.triplet_loss_backward(torch.ones(()).expand(loss.shape[0]), emb, a, p, n, loss, d_ap, d_an, True),
        ops.triplet_loss_backward(torch.ones(loss.shape[0]), emb, a, p, n, loss, d_ap, d_an, True),
    )


@devices()
def test_native_l2_pool_ops(device):
    x = torch.randint(-3, 4, (2, 3, 7, 6), device=device).float()
    out = ops.l2_pool2d(x, [3, 3], [2, 2], [1, 1], False)
    g = torch.randint_like(out, -3, 4)
    layouts = {**LAYOUTS, "channels_last": channels_last}
    check_every_argument(lambda x: ops.l2_pool2d(x, [3, 3], [2, 2], [1, 1], False), [x], layouts)
    check_every_argument(
        lambda g, x, o: ops.l2_pool2d_backward(g, x, o, [3, 3], [2, 2], [1, 1], False), [g, x, out], layouts
    )
