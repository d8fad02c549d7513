"""triplet_loss against the float64 reference and a NumPy port of TF-Addons' triplet_semihard_loss: values,
reductions, stats, gradients (gradcheck and reference autograd), empty mining, opcheck, compile."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import facenet_ext as fx
from facenet_ext.oracle import triplet_loss_oracle

from params import ALL_FLOATS, FULL, devices, dtypes
from strategies import MARGINS, labelled_batches

ops = torch.ops.facenet_ext
REDUCTIONS = ["mean", "mean_active", "sum", "none"]
MINING = ["semihard", "batch_hard", "all_semihard"]
EMPTY = (torch.empty(0, dtype=torch.int64),) * 3


def random_batch(batch=40, identities=5, dim=8, dtype=torch.float32, device="cpu", normalize=True):
    labels = torch.randint(identities, (batch,), device=device)
    emb = torch.randn(batch, dim, dtype=torch.float64)
    emb = F.normalize(emb, dim=1) if normalize else emb
    return emb.to(dtype).to(device), labels


def mined(emb, labels, mining, margin, squared):
    """The triplets `triplet_loss(mining=<name>)` documents that it trains on."""
    if mining == "semihard":
        return fx.semi_hard_triplets(emb, labels, squared=squared)
    if mining == "batch_hard":
        return fx.batch_hard_triplets(emb, labels)
    return fx.all_semi_hard_triplets(emb, labels, margin, squared=squared)


def hinge_arguments(emb, triplets, margin, squared):
    """d_ap - d_an + margin per triplet, in float64."""
    x = emb.detach().cpu().double()
    a, p, n = (t.cpu() for t in triplets)
    sq_ap, sq_an = (x[a] - x[p]).square().sum(1), (x[a] - x[n]).square().sum(1)
    return (sq_ap - sq_an if squared else sq_ap.sqrt() - sq_an.sqrt()) + margin


def away_from_hinge(emb, triplets, margin, squared, gap=1e-3):
    """The triplets whose hinge argument is not within `gap` of 0, so that float32 rounding cannot move one
    across the kink (and "mean_active" counts agree with the float64 reference)."""
    keep = hinge_arguments(emb, triplets, margin, squared).abs() > gap
    return tuple(t[keep.to(t.device)] for t in triplets)


def smooth_batch(margin, squared, gap=1e-4):
    """A float64 batch where the loss is smooth and the mining constant within `gap` of the input: in every
    anchor's row the distances are `gap` apart, and no (a, p, n) has D_an - D_ap within `gap` of the margin
    (which also keeps every hinge argument away from 0). Redrawn until it holds (a few draws at most)."""
    for _ in range(1000):
        emb, labels = random_batch(batch=12, identities=3, dim=4, dtype=torch.float64, normalize=False)
        d = torch.cdist(emb, emb)
        d = d.square() if squared else d
        off = ~torch.eye(12, dtype=torch.bool)
        gaps = (d.unsqueeze(2) - d.unsqueeze(1)).abs()[
            off.unsqueeze(2) & off.unsqueeze(1) & ~torch.eye(12, dtype=torch.bool)
        ]
        window = (d.unsqueeze(1) - d.unsqueeze(2) - margin).abs()  # [a, p, n]: D_an - D_ap - margin
        if gaps.min() > gap and window.min() > gap:
            return emb, labels
    raise AssertionError("no smooth batch drawn")


def tolerance(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# forward against the reference
# ---------------------------------------------------------------------------------------------------
@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference_on_given_triplets(device, dtype, mining, squared, reduction):
    emb, labels = random_batch(dtype=dtype, device=device, normalize=mining != "batch_hard")
    margin = 0.3
    triplets = away_from_hinge(
        emb.cpu(), tuple(t.cpu() for t in mined(emb, labels, mining, margin, squared)), margin, squared
    )
    assert len(triplets[0]) > 0
    got, stats = fx.triplet_loss(
        emb,
        None,
        margin,
        mining=tuple(t.to(device) for t in triplets),
        squared=squared,
        reduction=reduction,
        return_stats=True,
    )
    want, want_stats = triplet_loss_oracle(
        emb.cpu(), None, margin, mining=triplets, squared=squared, reduction=reduction, return_stats=True
    )
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32) and got.device == emb.device
    torch.testing.assert_close(got.cpu().double(), want, **tolerance(dtype))
    assert stats["num_triplets"].item() == want_stats["num_triplets"]
    assert stats["active_fraction"].item() == pytest.approx(want_stats["active_fraction"], rel=1e-6)
    for key in ("mean_d_ap", "mean_d_an"):
        assert stats[key].item() == pytest.approx(want_stats[key], rel=1e-5)


@devices()
@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference_end_to_end_float64(device, mining, squared, reduction):
    # Gaussian float64 points: the op's Gram-based mining and the reference's direct distances differ by
    # ~1e-16, far below any gap between two distances, so both mine the same triplets.
    emb, labels = random_batch(dtype=torch.float64, device=device)
    got, stats = fx.triplet_loss(
        emb, labels, 0.3, mining=mining, squared=squared, reduction=reduction, return_stats=True
    )
    want, want_stats = triplet_loss_oracle(
        emb.cpu(), labels.cpu(), 0.3, mining=mining, squared=squared, reduction=reduction, return_stats=True
    )
    torch.testing.assert_close(got.cpu(), want, **tolerance(torch.float64))
    assert {k: v.item() for k, v in stats.items()} == pytest.approx(want_stats, rel=1e-10)


@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_named_mining_trains_on_the_documented_triplets(mining, squared):
    emb, labels = random_batch()
    for reduction in REDUCTIONS:
        kwargs = dict(squared=squared, reduction=reduction, return_stats=True)
        named, named_stats = fx.triplet_loss(emb, labels, 0.3, mining=mining, **kwargs)
        given_, given_stats = fx.triplet_loss(emb, None, 0.3, mining=mined(emb, labels, mining, 0.3, squared), **kwargs)
        named_stats, given_stats = ({k: v.item() for k, v in s.items()} for s in (named_stats, given_stats))
        if mining == "all_semihard" and reduction != "none":
            # Reduced, it never lists its triplets (test_all_semi_hard_loss.py): the same triplets, the
            # value summed per pair instead of per triplet.
            torch.testing.assert_close(named, given_, rtol=1e-6, atol=1e-7)
            assert named_stats["num_triplets"] == given_stats["num_triplets"]
            assert named_stats == pytest.approx(given_stats, rel=1e-6)
        else:
            assert torch.equal(named, given_)
            assert named_stats == given_stats


@given(
    batch=labelled_batches(),
    mining=st.sampled_from(MINING),
    margin=st.sampled_from(MARGINS),
    squared=st.booleans(),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_end_to_end_small_integers(batch, mining, margin, squared, reduction):
    """Exact distances: the op mines exactly what the float64 reference mines, in every dtype and at every
    scale, and the active counts agree (test_miners.py checks that claim on all the distances used)."""
    emb, labels, k = batch
    scale = 4.0**k if squared else 2.0**k
    got, stats = fx.triplet_loss(
        emb, labels, margin * scale, mining=mining, squared=squared, reduction=reduction, return_stats=True
    )
    want, want_stats = triplet_loss_oracle(
        emb, labels, margin * scale, mining=mining, squared=squared, reduction=reduction, return_stats=True
    )
    assert not got.isnan().any()
    # Plain distances are rounded square roots (about 1e-6 of 10 * scale each); a sum adds one error per triplet.
    atol = 1e-5 * scale * (max(1, want_stats["num_triplets"]) if reduction == "sum" else 1)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=atol)
    assert stats["num_triplets"].item() == want_stats["num_triplets"]
    assert stats["active_fraction"].item() == pytest.approx(want_stats["active_fraction"], rel=1e-6)


# ---------------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mining", MINING + ["given"])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(mining, squared, reduction):
    emb, labels = smooth_batch(1.0, squared)
    triplets = mined(emb, labels, "all_semihard" if mining == "given" else mining, 1.0, squared)
    emb.requires_grad_()
    labels_arg = None if mining == "given" else labels
    mining_arg = triplets if mining == "given" else mining

    def loss(e):
        return fx.triplet_loss(e, labels_arg, 1.0, mining=mining_arg, squared=squared, reduction=reduction)

    assert torch.autograd.gradcheck(loss, (emb,))


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("reduction", ["mean", "mean_active", "none"])
def test_grad_matches_reference(device, dtype, mining, squared, reduction):
    emb, labels = random_batch(dtype=dtype, device=device)
    triplets = away_from_hinge(
        emb.cpu(), tuple(t.cpu() for t in mined(emb, labels, mining, 0.3, squared)), 0.3, squared
    )
    weights = (
        torch.rand(len(triplets[0]), dtype=torch.float64)
        if reduction == "none"
        else torch.tensor(1.0, dtype=torch.float64)
    )
    emb.requires_grad_()
    out = fx.triplet_loss(
        emb, None, 0.3, mining=tuple(t.to(device) for t in triplets), squared=squared, reduction=reduction
    )
    (out * weights.to(out.dtype).to(device)).sum().backward()
    ref = emb.detach().cpu().double().requires_grad_()
    (
        triplet_loss_oracle(ref, None, 0.3, mining=triplets, squared=squared, reduction=reduction) * weights
    ).sum().backward()
    assert emb.grad.dtype == dtype
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(emb.grad.cpu().double(), ref.grad, rtol=tol, atol=tol)


@devices()
@pytest.mark.parametrize("mining", MINING)
def test_backward_touches_only_active_triplets(device, mining):
    emb, labels = random_batch(batch=60, device=device)
    a, p, n = mined(emb, labels, mining, 0.2, True)
    loss = fx.triplet_loss(emb, None, 0.2, mining=(a, p, n), reduction="none")
    emb.requires_grad_()
    fx.triplet_loss(emb, None, 0.2, mining=(a, p, n), reduction="sum").backward()
    active = loss > 0
    touched = torch.zeros(60, dtype=torch.bool, device=device)
    for t in (a, p, n):
        touched[t[active]] = True
    assert (emb.grad[~touched] == 0).all()
    assert (emb.grad[touched].abs().sum(1) > 0).any()


@devices()
def test_backward_is_deterministic(device):
    emb, labels = random_batch(batch=200, identities=10, dim=32, device=device)
    grads = []
    for _ in range(3):
        e = emb.clone().requires_grad_()
        fx.triplet_loss(e, labels, mining="all_semihard").backward()
        grads.append(e.grad)
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_duplicate_embeddings_give_finite_gradients(device, dtype, squared):
    """Zero distances (an anchor equal to its positive, or to its negative): the plain distance's gradient
    is the zero subgradient there, never Inf or NaN, as in the reference."""
    emb = torch.tensor(
        [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.5], [1.0, 0.5], [2.0, 1.0]], dtype=dtype, device=device
    )
    labels = torch.tensor([0, 0, 1, 1, 1, 0], device=device)
    triplets = (torch.tensor([0, 0, 3, 5]), torch.tensor([1, 5, 4, 0]), torch.tensor([2, 3, 2, 4]))
    emb.requires_grad_()
    loss = fx.triplet_loss(
        emb, None, 0.5, mining=tuple(t.to(device) for t in triplets), squared=squared, reduction="sum"
    )
    loss.backward()
    ref = emb.detach().cpu().double().requires_grad_()
    want = triplet_loss_oracle(ref, None, 0.5, mining=triplets, squared=squared, reduction="sum")
    want.backward()
    assert torch.isfinite(emb.grad).all()
    torch.testing.assert_close(loss.cpu().double(), want.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(emb.grad.cpu().double(), ref.grad, rtol=1e-3, atol=1e-3)
    fx.triplet_loss(emb, labels, 0.5, squared=squared).backward()  # named mining over the same duplicates
    assert torch.isfinite(emb.grad).all()


# ---------------------------------------------------------------------------------------------------
# empty mining: 0, zero gradient, never NaN
# ---------------------------------------------------------------------------------------------------
@devices()
@pytest.mark.parametrize("mining", MINING + ["given"])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("labels", [[0], [4, 4, 4, 4], [0, 1, 2]], ids=["B=1", "one identity", "singletons"])
def test_empty_mining(device, mining, squared, reduction, labels):
    labels = torch.tensor(labels, device=device)
    emb = torch.randn(len(labels), 5, device=device, requires_grad=True)
    mining_arg = tuple(t.to(device) for t in EMPTY) if mining == "given" else mining
    out, stats = fx.triplet_loss(
        emb, labels, 0.2, mining=mining_arg, squared=squared, reduction=reduction, return_stats=True
    )
    if reduction == "none":
        assert out.shape == (0,)
        out = out.sum()
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))
    assert {k: v.item() for k, v in stats.items()} == {
        "num_triplets": 0,
        "active_fraction": 0.0,
        "mean_d_ap": 0.0,
        "mean_d_an": 0.0,
    }


@pytest.mark.parametrize("reduction", ["mean", "mean_active"])
def test_no_active_triplet_gives_zero_not_nan(reduction):
    emb, labels = torch.tensor([[0.0], [0.1], [5.0], [5.1]], requires_grad=True), torch.tensor([0, 0, 1, 1])
    loss = fx.triplet_loss(emb, labels, 0.2, mining="batch_hard", reduction=reduction)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(emb.grad, torch.zeros_like(emb))


# ---------------------------------------------------------------------------------------------------
# TF-Addons' triplet_semihard_loss, ported line by line to NumPy from its published source
# (tensorflow_addons/losses/triplet.py and metric_learning.py, v0.23; the package is end-of-life)
# ---------------------------------------------------------------------------------------------------
def tfa_pairwise_distance(feature, squared=False):
    pairwise_distances_squared = (
        np.sum(np.square(feature), axis=1, keepdims=True) + np.sum(np.square(feature.T), axis=0, keepdims=True)
    ) - 2.0 * (feature @ feature.T)
    # Deal with numerical inaccuracies. Set small negatives to zero.
    pairwise_distances_squared = np.maximum(pairwise_distances_squared, 0.0)
    # Get the mask where the zero distances are at.
    error_mask = pairwise_distances_squared <= 0.0
    if squared:
        pairwise_distances = pairwise_distances_squared
    else:
        pairwise_distances = np.sqrt(pairwise_distances_squared + error_mask.astype(feature.dtype) * 1e-16)
    # Undo conditionally adding 1e-16.
    pairwise_distances = pairwise_distances * (~error_mask).astype(feature.dtype)
    num_data = feature.shape[0]
    # Explicitly set diagonals to zero.
    mask_offdiagonals = np.ones_like(pairwise_distances) - np.diag(np.ones([num_data]))
    return pairwise_distances * mask_offdiagonals


def tfa_masked_maximum(data, mask, dim=1):
    axis_minimums = np.min(data, dim, keepdims=True)
    return np.max((data - axis_minimums) * mask, dim, keepdims=True) + axis_minimums


def tfa_masked_minimum(data, mask, dim=1):
    axis_maximums = np.max(data, dim, keepdims=True)
    return np.min((data - axis_maximums) * mask, dim, keepdims=True) + axis_maximums


def tfa_triplet_semihard_loss(y_true, y_pred, margin=1.0, distance_metric="L2"):
    """Returns the loss and, for inspection, the [B, B] matrix of the negative distance chosen per (a, p)."""
    labels = y_true.reshape(-1, 1)
    embeddings = y_pred
    if distance_metric == "L2":
        pdist_matrix = tfa_pairwise_distance(embeddings, squared=False)
    else:
        pdist_matrix = tfa_pairwise_distance(embeddings, squared=True)
    # Build pairwise binary adjacency matrix.
    adjacency = labels == labels.T
    # Invert so we can select negatives only.
    adjacency_not = ~adjacency
    batch_size = labels.size
    # Compute the mask.
    pdist_matrix_tile = np.tile(pdist_matrix, [batch_size, 1])
    mask = np.tile(adjacency_not, [batch_size, 1]) & (pdist_matrix_tile > pdist_matrix.T.reshape(-1, 1))
    mask_final = (np.sum(mask.astype(np.float64), 1, keepdims=True) > 0.0).reshape(batch_size, batch_size)
    mask_final = mask_final.T
    adjacency_not = adjacency_not.astype(np.float64)
    mask = mask.astype(np.float64)
    # negatives_outside: smallest D_an where D_an > D_ap.
    negatives_outside = tfa_masked_minimum(pdist_matrix_tile, mask).reshape(batch_size, batch_size)
    negatives_outside = negatives_outside.T
    # negatives_inside: largest D_an.
    negatives_inside = np.tile(tfa_masked_maximum(pdist_matrix, adjacency_not), [1, batch_size])
    semi_hard_negatives = np.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist_matrix - semi_hard_negatives
    mask_positives = adjacency.astype(np.float64) - np.diag(np.ones([batch_size]))
    # In lifted-struct, the authors multiply 0.5 for upper triangular
    #   in semihard, they take all positive pairs except the diagonal.
    num_positives = np.sum(mask_positives)
    triplet_loss = np.sum(np.maximum(loss_mat * mask_positives, 0.0)) / num_positives
    return triplet_loss, semi_hard_negatives


def assert_matches_tf_addons(emb, labels, margin, squared):
    metric = "squared-L2" if squared else "L2"
    want, negatives = tfa_triplet_semihard_loss(labels.numpy(), emb.double().numpy(), margin, metric)
    got = fx.triplet_loss(emb, labels, margin, mining="semihard", squared=squared, reduction="mean")
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    a, p, n = fx.semi_hard_triplets(emb, labels, squared=squared)
    d = fx.pairwise_sq_dist(emb).double()
    chosen = (d if squared else d.sqrt())[a, n].numpy()
    np.testing.assert_allclose(chosen, negatives[a.numpy(), p.numpy()], rtol=1e-5, atol=1e-6)


@given(
    batch=labelled_batches(scaled=False, dtype=torch.float32),
    margin=st.sampled_from([0.2, 0.5, 1.0, 2.0]),
    squared=st.booleans(),
)
def test_semi_hard_loss_matches_tf_addons_small_integers(batch, margin, squared):
    emb, labels, _ = batch
    labels = labels.long()
    # TF-Addons divides by the number of positive pairs (NaN when there is none) and, unlike DESIGN.md, keeps
    # anchors without negatives; both agree whenever there are positive pairs and two identities.
    assume(labels.unique().numel() >= 2 and (labels.unsqueeze(0) == labels.unsqueeze(1)).sum() > len(labels))
    assert_matches_tf_addons(emb, labels, margin, squared)


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_semi_hard_loss_matches_tf_addons_random(squared):
    # float64: the port's and the op's distances differ by ~1e-16, so no negative changes sides of D_ap.
    emb, labels = random_batch(batch=48, identities=6, dtype=torch.float64)
    assert_matches_tf_addons(emb, labels, 0.2, squared)


# ---------------------------------------------------------------------------------------------------
# dispatcher: opcheck and a compiled training step
# ---------------------------------------------------------------------------------------------------
@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_opcheck(device, dtype, squared):
    emb, labels = random_batch(batch=16, identities=3, dim=4, dtype=dtype, device=device)
    a, p, n = fx.all_semi_hard_triplets(emb, labels, 0.5)
    emb.requires_grad_(dtype in FULL)  # opcheck's autograd checks need a float64/float32 leaf
    torch.library.opcheck(ops.triplet_loss_forward.default, (emb, a, p, n, 0.5, squared))
    torch.library.opcheck(ops.triplet_loss_forward.default, (emb, *(t.to(device) for t in EMPTY), 0.5, squared))
    loss, d_ap, d_an = ops.triplet_loss_forward(emb.detach(), a, p, n, 0.5, squared)
    grad = torch.rand_like(loss)
    torch.library.opcheck(ops.triplet_loss_backward.default, (grad, emb.detach(), a, p, n, loss, d_ap, d_an, squared))
    # A transposed emb: both kernels return a packed gradient, and so must the fake kernel.
    emb_t = emb.detach().t().contiguous().t()
    torch.library.opcheck(ops.triplet_loss_backward.default, (grad, emb_t, a, p, n, loss, d_ap, d_an, squared))
    assert ops.triplet_loss_backward(grad, emb_t, a, p, n, loss, d_ap, d_an, squared).is_contiguous()


@devices()
@pytest.mark.parametrize("mining", MINING)
def test_compile_training_step_fullgraph(device, mining):
    """The fused loss inside a compiled forward (mining, loss and stats in one graph), then backward and an
    optimiser step: same loss, stats and parameters as eager."""
    # float64, so that compiled and eager arithmetic cannot differ enough to mine different triplets.
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).double().to(device)
    eager_model = (
        torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).double().to(device)
    )
    eager_model.load_state_dict(model.state_dict())

    def forward(net, x, labels):
        emb = F.normalize(net(x), dim=1)
        return fx.triplet_loss(emb, labels, 0.2, mining=mining, return_stats=True)

    compiled = torch.compile(forward, fullgraph=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    eager_opt = torch.optim.SGD(eager_model.parameters(), lr=0.1)
    for batch in (32, 48):  # two batch sizes: the triplet count is data dependent either way
        x = torch.randn(batch, 16, dtype=torch.float64, device=device)
        labels = torch.randint(4, (batch,), device=device)
        for net, fwd, o in ((model, compiled, opt), (eager_model, forward, eager_opt)):
            o.zero_grad()
            loss, stats = fwd(net, x, labels)
            loss.backward()
            o.step()
            if net is model:
                got = (loss.detach(), {k: v.item() for k, v in stats.items()})
            else:
                want = (loss.detach(), {k: v.item() for k, v in stats.items()})
        torch.testing.assert_close(got[0], want[0])
        assert got[1] == pytest.approx(want[1], rel=1e-9, abs=1e-12)
        for p, q in zip(model.parameters(), eager_model.parameters()):
            torch.testing.assert_close(p, q)


SEGMENT = 256  # csrc/cuda/geometry.h kTripletSegment (test_emulated_kernels checks the emulated build agrees)


@devices()
@pytest.mark.parametrize("entries", [SEGMENT, SEGMENT + 1, 2000])
def test_backward_sums_heavy_rows_in_segments(device, entries):
    """A row's entries summed in segments of kTripletSegment, each from 0, the segment sums then added in
    order (the association both backends use, so CUDA's per-segment warps give the CPU's bits): replayed
    here one float32 add at a time."""
    torch.manual_seed(entries)
    B, D = 30, 12
    emb = torch.randn(B, D)
    a, p = torch.randint(1, B, (entries,)), torch.randint(1, B, (entries,))
    n = torch.zeros(entries, dtype=torch.int64)  # row 0: the negative of every triplet, `entries` entries
    ops = torch.ops.facenet_ext
    loss, d_ap, d_an = ops.triplet_loss_forward(emb, a, p, n, 3.0, True)
    g = torch.rand(entries)
    grad = ops.triplet_loss_backward(
        g.to(device),
        emb.to(device),
        a.to(device),
        p.to(device),
        n.to(device),
        loss.to(device),
        d_ap.to(device),
        d_an.to(device),
        True,
    ).cpu()
    # Row 0's terms in CSR order (one per triplet): cn (x_a - x_n), cn = g * 2 for the squared distance.
    terms = [(g[t] * 2.0) * (emb[a[t]] - emb[0]) if loss[t] > 0 else None for t in range(entries)]
    want = torch.zeros(D)
    for s in range(0, entries, SEGMENT):
        seg = torch.zeros(D)
        for term in terms[s : s + SEGMENT]:
            if term is not None:
                seg = seg + term
        want = want + seg
    assert torch.equal(grad[0], want)
    if entries == 2000:  # the association matters: one running sum differs in some bit
        plain = torch.zeros(D)
        for term in terms:
            if term is not None:
                plain = plain + term
        assert not torch.equal(plain, want)
