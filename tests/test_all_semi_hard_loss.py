"""triplet_loss(mining="all_semihard") with a reduction runs fused (the all_semi_hard_loss op): it never lists
its triplets, yet trains on exactly the triplets fx.all_semi_hard_triplets returns, with the materialised
path's value, statistics and gradient (within float rounding), deterministically, under compile, and
twice differentiable."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from test_triplet_loss import smooth_batch

import facenet_ext as fx
from facenet_ext.bench.memory import host_probe_supported

from params import ALL_FLOATS, devices, dtypes
from strategies import MARGINS, labelled_batches

REDUCTIONS = ["mean", "mean_active", "sum"]


def materialised(emb, labels, margin, squared, reduction):
    """The same loss through the listed triplets (the path the fused op replaces)."""
    triplets = fx.all_semi_hard_triplets(emb.detach(), labels, margin, squared=squared)
    return fx.triplet_loss(emb, None, margin, mining=triplets, squared=squared, reduction=reduction, return_stats=True)


def value_and_grad(loss_fn, emb):
    e = emb.detach().clone().requires_grad_()
    loss, stats = loss_fn(e)
    (grad,) = torch.autograd.grad(loss, e)
    return loss.detach(), {k: v.item() for k, v in stats.items()}, grad


def compare(emb, labels, margin, squared, reduction, tol):
    fused = value_and_grad(
        lambda e: fx.triplet_loss(
            e, labels, margin, mining="all_semihard", squared=squared, reduction=reduction, return_stats=True
        ),
        emb,
    )
    listed = value_and_grad(lambda e: materialised(e, labels, margin, squared, reduction), emb)
    (loss, stats, grad), (want, want_stats, want_grad) = fused, listed
    assert loss.dtype == want.dtype and grad.dtype == emb.dtype
    assert stats["num_triplets"] == want_stats["num_triplets"]
    assert stats == pytest.approx(want_stats, rel=tol, abs=tol)
    torch.testing.assert_close(loss, want, rtol=tol, atol=tol)
    # Each gradient entry sums up to B K terms ("sum" reduction): its rounding scales with the largest.
    # float16/bfloat16 gradients are rounded to their dtype: one unit in the last place may differ.
    scale = max(1.0, want_grad.abs().max().item())
    grad_tol = max(tol, torch.finfo(emb.dtype).eps)
    torch.testing.assert_close(grad.double(), want_grad.double(), rtol=grad_tol, atol=grad_tol * scale)
    assert torch.isfinite(grad).all()
    return stats


def clear_of_the_kink(emb, labels, margin, squared, tol=1e-5):
    """No listed triplet has D_ap - D_an + margin within ``tol`` of 0 (exactly, in float64, on the
    dtype-rounded embeddings). At the hinge's kink the gradient jumps by a whole triplet's share, and the
    two paths round the distances differently (the fused op decides "active" on its Gram distances, the
    materialised loss on distances recomputed from the differences): both are right within rounding there,
    and about one draw in 700 of the half-precision cases below lands a triplet that close."""
    a, p, n = fx.all_semi_hard_triplets(emb, labels, margin, squared=squared)
    x = emb.double()
    d_ap, d_an = (x[a] - x[p]).square().sum(1), (x[a] - x[n]).square().sum(1)
    if not squared:
        d_ap, d_an = d_ap.sqrt(), d_an.sqrt()
    return bool(((d_ap - d_an + margin).abs() >= tol).all())


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("batch, identities", [(60, 4), (97, 13), (31, 2)])
def test_matches_the_materialised_path(device, dtype, squared, reduction, batch, identities):
    labels = torch.randint(identities, (batch,), device=device)
    for _ in range(20):
        emb = F.normalize(torch.randn(batch, 16, dtype=torch.float64), dim=1).to(dtype).to(device)
        if clear_of_the_kink(emb, labels, 0.3, squared):
            break
    else:
        pytest.fail("20 draws in a row put a triplet at the hinge's kink")
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-4}[dtype]
    stats = compare(emb, labels, 0.3, squared, reduction, tol)
    assert stats["num_triplets"] > 0


@given(
    batch=labelled_batches(),
    margin=st.sampled_from(MARGINS),
    squared=st.booleans(),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_edge_cases_match_the_materialised_path(batch, margin, squared, reduction):
    """Small integer points (exact distances): ties, duplicates, one identity, identities with one image,
    distances exactly at the window's edges."""
    emb, labels, k = batch
    scale = 4.0**k if squared else 2.0**k
    compare(emb, labels, margin * scale, squared, reduction, 1e-5 * scale)


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_near_duplicates_keep_exact_distances(squared):
    """A positive 1e-4 away from its anchor: the Gram expansion's cancellation would give a distance off by
    far more than that (and a plain-distance gradient 1/d off by as much); the fused loss recomputes it."""
    torch.manual_seed(0)
    emb = F.normalize(torch.randn(24, 8), dim=1)
    emb[1] = emb[0] + 1e-4
    labels = torch.arange(24) % 6
    labels[1] = labels[0]
    compare(emb, labels, 0.5, squared, "sum", 1e-4)


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_twice_differentiable(squared):
    emb, labels = smooth_batch(1.0, squared)
    emb.requires_grad_()
    assert torch.autograd.gradgradcheck(
        lambda e: fx.triplet_loss(e, labels, 1.0, mining="all_semihard", squared=squared), (emb,)
    )


def test_compiles_without_graph_breaks():
    torch.manual_seed(0)
    emb = F.normalize(torch.randn(40, 8), dim=1)
    labels = torch.arange(40) % 5

    def loss(e, y):
        return fx.triplet_loss(e, y, 0.3, mining="all_semihard", return_stats=True)

    compiled = value_and_grad(lambda e: torch.compile(loss, fullgraph=True, dynamic=False)(e, labels), emb)
    eager = value_and_grad(lambda e: loss(e, labels), emb)
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-6, atol=1e-7)
    assert compiled[1] == pytest.approx(eager[1], rel=1e-6)
    torch.testing.assert_close(compiled[2], eager[2], rtol=1e-6, atol=1e-7)


@devices()
def test_deterministic(device):
    emb = F.normalize(torch.randn(300, 32, device=device), dim=1)
    labels = torch.randint(8, (300,), device=device)
    runs = [
        value_and_grad(lambda e: fx.triplet_loss(e, labels, mining="all_semihard", return_stats=True), emb)
        for _ in range(3)
    ]
    for loss, stats, grad in runs[1:]:
        assert torch.equal(loss, runs[0][0]) and stats == runs[0][1] and torch.equal(grad, runs[0][2])


@pytest.mark.skipif(not host_probe_supported(), reason="needs /proc/self/status and /proc/self/clear_refs")
def test_never_lists_its_triplets():
    """Two identities of 750 images: about a billion triplets in the window, whose list alone would take
    gigabytes (24 bytes each). The fused loss and its gradient stay within 64 MiB of extra peak memory.
    Run in a fresh process, its peak reset just before the call."""
    code = textwrap.dedent("""
        import torch, torch.nn.functional as F, facenet_ext as fx
        from facenet_ext.bench.memory import proc_status_bytes, reset_peak_rss
        torch.manual_seed(0)
        emb = F.normalize(torch.randn(1500, 16), dim=1).requires_grad_()
        labels = torch.arange(1500) % 2
        fx.triplet_loss(emb[:8], labels[:8], mining="all_semihard").backward()  # warm up the allocator
        before = reset_peak_rss()  # the peak from here on: this call's, not the imports'
        loss, stats = fx.triplet_loss(emb, labels, 0.2, mining="all_semihard", return_stats=True)
        loss.backward()
        after = proc_status_bytes("VmHWM")
        print(stats["num_triplets"].item(), (after - before) / 2**20, bool(torch.isfinite(emb.grad).all()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    triplets, growth_mib, finite = int(out[0]), float(out[1]), out[2] == "True"
    assert triplets * 24 > 2**30, "the case must be one whose triplet list would not fit in 1 GiB"
    assert finite
    assert growth_mib < 64, f"peak memory grew by {growth_mib:.0f} MiB"


@pytest.mark.parametrize("with_grad", [True, False])
def test_opcheck(with_grad):
    emb = F.normalize(torch.randn(30, 8), dim=1)
    labels = torch.arange(30) % 4
    torch.library.opcheck(torch.ops.facenet_ext.all_semi_hard_loss, (emb, labels, 0.3, False, with_grad))
