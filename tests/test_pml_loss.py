"""facenet_ext.pml.TripletMarginLoss against pytorch-metric-learning's on the same inputs: loss and
gradient, with an indices_tuple from each miner and without one (every triplet: the fused window loss),
each fused distance and reducer, reference sets, odd layouts, and a short training run."""

import subprocess
import sys

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers, regularizers
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from facenet_ext import pml

from params import devices
from pml_cases import DISTANCES, batch, layouts

# Stated tolerances. float64: the two sum the same terms in other orders (and we recompute distances from
# the rows): agreement to ~1e-12. float32: rounding of distances (cdist vs Gram expansion) and sums.
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-6)}
GRAD_TOL = {torch.float64: dict(rtol=1e-8, atol=1e-12), torch.float32: dict(rtol=1e-3, atol=3e-5)}

MINERS = {
    "none": lambda: None,
    "semihard": lambda: pml_miners.TripletMarginMiner(0.2, "semihard"),
    "hard": lambda: pml_miners.TripletMarginMiner(0.2, "hard"),
    "all": lambda: pml_miners.TripletMarginMiner(0.2, "all"),
    "batch_hard": lambda: pml_miners.BatchHardMiner(),
}


def _loss_and_grad(loss_fn, emb, labels, indices=None, ref=None):
    x = emb.detach().clone().requires_grad_()
    args = (x, labels, indices) if ref is None else (x, labels, indices, *ref)
    loss = loss_fn(*args)
    loss.backward()
    return loss.detach(), x.grad


def _compare(theirs_fn, ours_fn, emb, labels, indices=None, ref=None):
    want, want_grad = _loss_and_grad(theirs_fn, emb, labels, indices, ref)
    got, got_grad = _loss_and_grad(ours_fn, emb, labels, indices, ref)
    torch.testing.assert_close(got, want, **TOL[emb.dtype])
    torch.testing.assert_close(got_grad, want_grad, **GRAD_TOL[emb.dtype])
    return want


@devices()
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("distance", list(DISTANCES))
@pytest.mark.parametrize("miner", list(MINERS))
def test_loss_equals_pml(miner, distance, dtype, device):
    emb, labels = batch(b=36, dtype=dtype, device=device)
    emb = emb * 0.5  # unnormalised rows near the margin too
    mined = MINERS[miner]()
    indices = None if mined is None else mined(emb, labels)
    kwargs = dict(margin=0.2, distance=DISTANCES[distance]())
    want = _compare(pml_losses.TripletMarginLoss(**kwargs), pml.TripletMarginLoss(**kwargs), emb, labels, indices)
    assert want > 0


@pytest.mark.parametrize("reducer", ["avg_non_zero", "mean", "sum"])
@pytest.mark.parametrize("with_indices", [False, True], ids=["all_triplets", "indices"])
def test_reducers(reducer, with_indices):
    make = {"avg_non_zero": reducers.AvgNonZeroReducer, "mean": reducers.MeanReducer, "sum": reducers.SumReducer}
    emb, labels = batch(b=30)
    indices = pml_miners.TripletMarginMiner(0.3, "all")(emb, labels) if with_indices else None
    theirs = pml_losses.TripletMarginLoss(0.3, reducer=make[reducer]())
    ours = pml.TripletMarginLoss(0.3, reducer=make[reducer]())
    _compare(theirs, ours, emb, labels, indices)


def test_other_reducer_with_indices_is_pmls():
    """With an indices_tuple the per-triplet losses go to PML's own reducer, whichever it is."""
    emb, labels = batch(b=30)
    indices = pml_miners.TripletMarginMiner(0.3, "all")(emb, labels)
    reducer = reducers.ThresholdReducer(low=0.05)
    _compare(
        pml_losses.TripletMarginLoss(0.3, reducer=reducer),
        pml.TripletMarginLoss(0.3, reducer=reducer),
        emb,
        labels,
        indices,
    )


def test_embedding_regularizer():
    emb, labels = batch(b=30)
    kwargs = dict(margin=0.2, embedding_regularizer=regularizers.LpRegularizer())
    for indices in (None, pml_miners.BatchHardMiner()(emb, labels)):
        _compare(pml_losses.TripletMarginLoss(**kwargs), pml.TripletMarginLoss(**kwargs), emb, labels, indices)


def test_pairs_indices_tuple():
    """A 4-tuple of pairs is converted to triplets by PML's own rule."""
    emb, labels = batch(b=24)
    pairs = lmu.get_all_pairs_indices(labels)
    _compare(pml_losses.TripletMarginLoss(0.2), pml.TripletMarginLoss(0.2), emb, labels, pairs)


@pytest.mark.parametrize("miner", ["none", "semihard"])
@pytest.mark.parametrize("shared_labels", [False, True], ids=["other_labels", "ref_labels_is_labels"])
def test_reference_set(miner, shared_labels):
    emb, labels = batch(b=20)
    ref_emb, ref_labels = batch(b=20 if shared_labels else 28)
    ref_labels = labels if shared_labels else ref_labels
    mined = MINERS[miner]()
    indices = None if mined is None else mined(emb, labels, ref_emb, ref_labels)
    _compare(
        pml_losses.TripletMarginLoss(0.2), pml.TripletMarginLoss(0.2), emb, labels, indices, ref=(ref_emb, ref_labels)
    )


def test_no_triplets_gives_zero_and_zero_gradient():
    emb = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.zeros(8, dtype=torch.int64)  # one identity: no negatives
    for indices in (None, pml.TripletMarginMiner()(emb, labels)):
        loss, grad = _loss_and_grad(pml.TripletMarginLoss(), emb, labels, indices)
        assert loss.item() == 0 and torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("miner", ["none", "semihard"])
def test_layouts(miner):
    """Embeddings, labels and each index tensor in transposed / strided storage: same loss and gradient."""
    emb, labels = batch(b=30)
    mined = MINERS[miner]()
    indices = None if mined is None else mined(emb, labels)
    loss_fn = pml.TripletMarginLoss(0.2)
    want, want_grad = _loss_and_grad(loss_fn, emb, labels, indices)
    index_layouts = [None] if indices is None else [tuple(layouts(t)["strided"] for t in indices)]
    for e in layouts(emb).values():
        for y in layouts(labels).values():
            for idx in index_layouts + ([indices] if indices is not None else []):
                got, grad = _loss_and_grad(loss_fn, e, y, idx)
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
                torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)


_PEAK_SCRIPT = """
import resource, torch
from facenet_ext import pml
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def step(b):
    x = torch.randn(b, 16).requires_grad_()
    pml.TripletMarginLoss(0.2)(x, torch.arange(b) % 8).backward()
step(64)  # thread pools, allocator: the baseline
before = peak_mib()
step(1024)
print(peak_mib() - before)
"""


def test_window_loss_memory_is_quadratic():
    """No B x B x B tensor: at B = 1024 with 8 identities (117M triplets) PML's all-triplets path builds a
    1 GiB B x B x B mask; the fused loss, forward and backward, must peak at under a quarter of that
    (measured: about 90 MiB, ~85 bytes per entry of the B x B matrix). Peak RSS of a fresh process."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 256


def _train(loss_fn, miner_fn, steps=25):
    """A small MLP on fixed clustered batches, float64, SGD: the same run for both libraries."""
    gen = torch.Generator().manual_seed(1234)
    centres = torch.randn(10, 12, generator=gen, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        labels = torch.randint(0, 10, (40,), generator=gen)
        x = centres[labels] + 0.7 * torch.randn(40, 12, generator=gen, dtype=torch.float64)
        emb = model(x)
        indices = None if miner_fn is None else miner_fn(emb, labels)
        loss = loss_fn(emb, labels, indices)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("kind", ["semihard", None], ids=["semihard_miner", "all_triplets"])
def test_short_training_run_ends_equal(kind):
    def miner(lib):
        return None if kind is None else lib.TripletMarginMiner(0.2, kind)

    want_losses, want_params = _train(pml_losses.TripletMarginLoss(0.2), miner(pml_miners))
    got_losses, got_params = _train(pml.TripletMarginLoss(0.2), miner(pml))
    assert want_losses[-1] < want_losses[0]  # it trains
    torch.testing.assert_close(torch.tensor(got_losses), torch.tensor(want_losses), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(got_params, want_params, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("distance", ["lp_normalized", "cosine"])
@pytest.mark.parametrize("miner", ["none", "all", "batch_hard"])
def test_half_precision_gives_float32_losses(miner, distance, dtype):
    """Half-precision embeddings: float32 losses (as documented), the gradient in the embeddings' dtype,
    and the float32 loss of the same (rounded) values up to half-precision rounding of the distances."""
    emb, labels = batch(b=30, dtype=torch.float32)
    half = emb.to(dtype)
    mined = MINERS[miner]()
    indices = None if mined is None else mined(half.float(), labels)
    loss_fn = pml.TripletMarginLoss(0.2, distance=DISTANCES[distance]())
    loss, grad = _loss_and_grad(loss_fn, half, labels, indices)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    want = loss_fn(half.float(), labels, indices)
    torch.testing.assert_close(loss, want.detach(), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("miner", ["none", "semihard"])
def test_reference_set_layouts(miner):
    """ref_emb and ref_labels in transposed / strided storage: the contiguous loss and gradient."""
    emb, labels = batch(b=20)
    ref_emb, ref_labels = batch(b=26)
    mined = MINERS[miner]()
    indices = None if mined is None else mined(emb, labels, ref_emb, ref_labels)
    loss_fn = pml.TripletMarginLoss(0.2)
    want, want_grad = _loss_and_grad(loss_fn, emb, labels, indices, ref=(ref_emb, ref_labels))
    for r in layouts(ref_emb).values():
        for ry in layouts(ref_labels).values():
            got, grad = _loss_and_grad(loss_fn, emb, labels, indices, ref=(r, ry))
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-14)
