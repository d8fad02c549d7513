"""What an engineer meets when using the library the ordinary ways: second-order gradients, torch.compile
with explicit mining and reference sets, torch.func, one meaning per argument, empty batches, NaN/Inf
anywhere on every path, and anchors that cannot form a triplet costing nothing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import facenet_ext as fx
from facenet_ext.bench.memory import proc_status_bytes, reset_peak_rss
from facenet_ext.oracle import triplet_loss_oracle

ops = torch.ops.facenet_ext


def batch(b=48, d=8, ids=6, dtype=torch.float32):
    emb = F.normalize(torch.randn(b, d, dtype=torch.float64), dim=1).to(dtype)
    return emb, torch.arange(b) % ids


def integer_batch(b=24, d=3, ids=4, dtype=torch.float64):
    return torch.randint(-3, 4, (b, d)).to(dtype), torch.arange(b) % ids


def plain_triplet_loss(emb, triplets, margin, squared):
    """The loss written in plain PyTorch on given triplets (autograd does every derivative)."""
    a, p, n = triplets
    d_ap, d_an = (emb[a] - emb[p]).square().sum(1), (emb[a] - emb[n]).square().sum(1)
    if not squared:
        d_ap, d_an = d_ap.sqrt(), d_an.sqrt()
    return (d_ap - d_an + margin).clamp_min(0).mean()


# ---------------------------------------------------------------------------------------------------
# second-order gradients
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_second_order_gradient_matches_plain_pytorch(squared):
    """The reported example: d/de of ||dL/de||^2. It was silently 0."""
    emb, labels = batch(dtype=torch.float64)
    triplets = fx.semi_hard_triplets(emb, labels)
    e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    (g1,) = torch.autograd.grad(fx.triplet_loss(e1, labels, squared=squared), e1, create_graph=True)
    g1.square().sum().backward()
    (g2,) = torch.autograd.grad(plain_triplet_loss(e2, triplets, 0.2, squared), e2, create_graph=True)
    g2.square().sum().backward()
    assert e2.grad.abs().sum() > 0
    torch.testing.assert_close(e1.grad, e2.grad)
    v = torch.randn_like(emb)
    hvp = torch.autograd.functional.hvp(lambda e: fx.triplet_loss(e, None, mining=triplets, squared=squared), emb, v)[1]
    want = torch.autograd.functional.hvp(lambda e: plain_triplet_loss(e, triplets, 0.2, squared), emb, v)[1]
    torch.testing.assert_close(hvp, want)


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_gradgradcheck(squared):
    emb, labels = integer_batch(b=12)
    emb = emb + 0.01 * torch.randn_like(emb)  # off the hinge's kinks
    triplets = fx.semi_hard_triplets(emb, labels)
    e = emb.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x: fx.triplet_loss(x, None, 5.0, mining=triplets, squared=squared), (e,))
    assert torch.autograd.gradgradcheck(
        lambda x, y: fx.pairwise_sq_dist(x, y), (e[:5], e[5:].detach().clone().requires_grad_())
    )
    assert torch.autograd.gradgradcheck(fx.pairwise_sq_dist, (e[:6],))


# ---------------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True): the common patterns
# ---------------------------------------------------------------------------------------------------
def compiled_equals_eager(fn, *args):
    want = fn(*args)
    got = torch.compile(fn, fullgraph=True, dynamic=False)(*args)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    return want


def test_compile_miner_then_loss():
    emb, labels = batch()
    for miner in (fx.batch_hard_triplets, fx.semi_hard_triplets, fx.all_semi_hard_triplets):
        compiled_equals_eager(lambda e, y, m=miner: fx.triplet_loss(e, None, mining=m(e, y)), emb, labels)


def test_compile_with_chunk_size_ref_emb_and_memory():
    emb, labels = batch()
    ref, ref_labels = batch(b=30)
    bank = fx.MemoryBank(64, emb.shape[1])
    bank.enqueue(ref, ref_labels)
    for mining in ("semihard", "batch_hard", "all_semihard"):
        compiled_equals_eager(lambda e, y, m=mining: fx.triplet_loss(e, y, mining=m, chunk_size=7), emb, labels)
        compiled_equals_eager(
            lambda e, y, r, ry, m=mining: fx.triplet_loss(e, y, mining=m, ref_emb=r, ref_labels=ry),
            emb,
            labels,
            ref,
            ref_labels,
        )
        compiled_equals_eager(lambda e, y, m=mining: fx.triplet_loss(e, y, mining=m, memory=bank), emb, labels)
        compiled_equals_eager(lambda e, y, m=mining: torch.cat(fx.semi_hard_triplets(e, y, memory=bank)), emb, labels)


def test_compiled_loss_backward_matches_eager():
    emb, labels = batch()
    e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    bank = _filled_bank(emb)
    fx.triplet_loss(e1, labels, memory=bank).backward()
    torch.compile(lambda e, y: fx.triplet_loss(e, y, memory=bank), fullgraph=True)(e2, labels).backward()
    assert e1.grad.abs().sum() > 0
    torch.testing.assert_close(e2.grad, e1.grad)


def _filled_bank(emb):
    bank = fx.MemoryBank(32, emb.shape[1])
    g = torch.Generator().manual_seed(1)
    bank.enqueue(torch.randn(32, emb.shape[1], generator=g), torch.randint(0, 6, (32,), generator=g))
    return bank


# ---------------------------------------------------------------------------------------------------
# torch.func
# ---------------------------------------------------------------------------------------------------
def test_func_grad_and_jacrev():
    emb, labels = batch(b=20, d=4, dtype=torch.float64)
    g = torch.func.grad(lambda x: fx.triplet_loss(x, labels))(emb)
    e = emb.clone().requires_grad_()
    fx.triplet_loss(e, labels).backward()
    torch.testing.assert_close(g, e.grad)
    jac = torch.func.jacrev(fx.pairwise_sq_dist)(emb[:5])
    torch.testing.assert_close(
        jac, torch.autograd.functional.jacobian(lambda x: torch.cdist(x, x).square(), emb[:5]), atol=1e-10, rtol=1e-7
    )


def test_vmap_pairwise():
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(torch.vmap(fx.pairwise_sq_dist)(x), torch.stack([fx.pairwise_sq_dist(t) for t in x]))


# ---------------------------------------------------------------------------------------------------
# one meaning per name
# ---------------------------------------------------------------------------------------------------
def test_loss_mines_what_its_miner_mines():
    """mining="all_semihard" mined squared distances while fx.all_semi_hard_triplets and PML mine plain.
    Integer embeddings and margin: distances exact on both sides, so the counts must agree exactly."""
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.miners import TripletMarginMiner

    emb, labels = integer_batch(b=96, d=3, ids=8, dtype=torch.float32)
    count = len(fx.all_semi_hard_triplets(emb, labels, 2.0)[0])
    pml_miner = TripletMarginMiner(2.0, type_of_triplets="semihard", distance=LpDistance(normalize_embeddings=False))
    pml = len(pml_miner(emb, labels)[0])
    _, stats = fx.triplet_loss(emb, labels, 2.0, mining="all_semihard", return_stats=True)
    assert count == pml == int(stats["num_triplets"]) > 0
    _, squared = fx.triplet_loss(emb, labels, 2.0, mining="all_semihard", squared=True, return_stats=True)
    assert int(squared["num_triplets"]) == len(fx.all_semi_hard_triplets(emb, labels, 2.0, squared=True)[0]) != count


@pytest.mark.parametrize("bad", [None, "no", 1, 0.0], ids=["None", "string", "int", "float"])
def test_booleans_must_be_booleans(bad):
    emb, labels = batch()
    with pytest.raises(TypeError, match="squared"):
        fx.semi_hard_triplets(emb, labels, 0.1, squared=bad)
    with pytest.raises(TypeError, match="squared"):
        fx.all_semi_hard_triplets(emb, labels, squared=bad)
    if bad is not None:  # None is the loss's "as the miner" default
        with pytest.raises(TypeError, match="squared"):
            fx.triplet_loss(emb, labels, squared=bad)
    assert fx.semi_hard_triplets(emb, labels, squared=np.bool_(False))[0].numel() > 0


@pytest.mark.parametrize(
    "margin", [np.float32(0.2), np.float64(0.2), torch.tensor(0.2), torch.tensor(0.2, dtype=torch.float64), 1]
)
def test_real_scalars_are_margins(margin):
    emb, labels = batch()
    want = fx.triplet_loss(emb, labels, float(margin))
    torch.testing.assert_close(fx.triplet_loss(emb, labels, margin), want)
    assert len(fx.all_semi_hard_triplets(emb, labels, margin)[0]) == len(
        fx.all_semi_hard_triplets(emb, labels, float(margin))[0]
    )


def test_unrepresentable_margin_is_refused():
    emb, labels = batch()
    with pytest.raises(ValueError, match="margin .* does not fit in torch.float32"):
        fx.triplet_loss(emb, labels, 1e300)
    # float16/bfloat16: against float32, the dtype their distances and loss are computed in (squared
    # distances of float16 rows can exceed float16's 65504, so a margin above it can be meaningful).
    with pytest.raises(ValueError, match="margin .* does not fit in torch.float32"):
        fx.triplet_loss(emb.half(), labels, 1e39)
    assert torch.isfinite(fx.triplet_loss(emb.half(), labels, 7e4))
    assert torch.isfinite(fx.triplet_loss(emb.double(), labels, 1e300))
    with pytest.raises(TypeError, match="margin"):
        fx.triplet_loss(emb, labels, torch.tensor([0.2, 0.3]))


def test_margin_tensor_requiring_grad_is_refused():
    """A margin is a constant: a learnable one would silently keep grad None, so it is refused."""
    emb, labels = batch()
    m = torch.tensor(0.2, requires_grad=True)
    for call in (
        lambda: fx.triplet_loss(emb, labels, m),
        lambda: fx.semi_hard_triplets(emb, labels, m),
        lambda: fx.all_semi_hard_triplets(emb, labels, m),
    ):
        with pytest.raises(ValueError, match=r"margin is a tensor that requires grad.*margin\.detach\(\)"):
            call()
    torch.testing.assert_close(fx.triplet_loss(emb, labels, m.detach()), fx.triplet_loss(emb, labels, 0.2))


@pytest.mark.parametrize(
    "call", ["semi_hard_triplets", "batch_hard_triplets", "all_semi_hard_triplets", "triplet_loss"]
)
def test_zero_width_embeddings_are_refused(call):
    """D = 0: every distance 0, every triplet a tie; it used to give triplets and a loss equal to the margin."""
    emb, labels = batch()
    with pytest.raises(ValueError, match=f"{call}: emb has width 0"):
        getattr(fx, call)(emb[:, :0], labels)


# ---------------------------------------------------------------------------------------------------
# empty batches
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mining", ["semihard", "batch_hard", "all_semihard"])
def test_empty_batch_gives_a_zero_loss_connected_to_the_graph(mining):
    """A drop_last=False loop's empty tail, as PML handles it."""
    model = torch.nn.Linear(4, 3)
    loss = fx.triplet_loss(model(torch.empty(0, 4)), torch.empty(0, dtype=torch.int64), mining=mining)
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() == 0
    for miner in (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets):
        assert all(
            t.numel() == 0 and t.dtype == torch.int64
            for t in miner(torch.empty(0, 3), torch.empty(0, dtype=torch.int64))
        )
    assert fx.pairwise_sq_dist(torch.empty(0, 3)).shape == (0, 0)


# ---------------------------------------------------------------------------------------------------
# NaN/Inf: anywhere, every path, the same message compiled or not
# ---------------------------------------------------------------------------------------------------
PATHS = {
    "plain": {},
    "reference set": "ref",
    "streaming": {"chunk_size": 5},
    "memory bank": "bank",
}


def _kwargs(path, ref, ref_labels):
    if path == "reference set":
        return {"ref_emb": ref, "ref_labels": ref_labels}
    if path == "memory bank":
        bank = fx.MemoryBank(40, ref.shape[1], dtype=ref.dtype)
        bank.enqueue(ref, ref_labels)  # a bank never holds NaN: enqueue refuses it (tested below)
        return {"memory": bank}
    return dict(PATHS[path])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("where", ["emb", "reference"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_anywhere_raises_on_every_path(path, where, value):
    if where == "reference" and path in ("plain", "streaming"):
        pytest.skip("the reference set is the batch")
    for _ in range(3):  # three random places each time
        emb, labels = batch(b=16, d=4, ids=4)
        ref, ref_labels = batch(b=20, d=4, ids=4)
        target = emb if where == "emb" else ref
        target[torch.randint(target.shape[0], ()), torch.randint(target.shape[1], ())] = value
        if path == "memory bank" and where == "reference":
            with pytest.raises(ValueError, match="MemoryBank.enqueue: emb contains NaN or Inf"):
                _kwargs(path, ref, ref_labels)
            continue
        kw = _kwargs(path, ref, ref_labels)
        for call in (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets, fx.triplet_loss):
            with pytest.raises(ValueError, match="NaN or Inf"):
                call(emb, labels, **kw)


@pytest.mark.parametrize("op", ["semi_hard_from_sq_dist", "batch_hard_from_sq_dist", "all_semi_hard_from_sq_dist"])
def test_non_finite_distance_anywhere_raises(op):
    """In any element a mining op reads (every row of an anchor that can form a triplet): not only row 0
    and column 0, which is all the CUDA path used to sample."""
    emb, labels = integer_batch(b=10, ids=3)
    d = fx.pairwise_sq_dist(emb)
    extra = {
        "semi_hard_from_sq_dist": (None, True, False),
        "batch_hard_from_sq_dist": (),
        "all_semi_hard_from_sq_dist": (0.5, True),
    }[op]
    for i in range(10):
        for j in range(10):
            bad = d.clone()
            bad[i, j] = float("nan")
            with pytest.raises(ValueError, match=f"{op}: sq_dist contains NaN or Inf"):
                getattr(ops, op)(bad, labels, labels, True, *extra)


def test_non_finite_message_is_the_same_compiled():
    emb, labels = batch()
    emb[7, 2] = float("nan")
    messages = []
    for fn in (lambda e, y: fx.triplet_loss(e, y), torch.compile(lambda e, y: fx.triplet_loss(e, y), fullgraph=True)):
        with pytest.raises(ValueError) as err:
            fn(emb, labels)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == "semi_hard_triplets: emb contains NaN or Inf"


def test_explicit_triplets_on_non_finite_rows_raise():
    emb, labels = batch()
    a, p, n = fx.semi_hard_triplets(emb, labels)
    emb[p[0]] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        fx.triplet_loss(emb, None, mining=(a, p, n))


def test_overflowing_norms_are_named():
    emb, labels = batch()
    with pytest.raises(ValueError, match="squared norm that overflows"):
        fx.semi_hard_triplets(emb * 1e20, labels)


# ---------------------------------------------------------------------------------------------------
# anchors that cannot form a triplet cost nothing
# ---------------------------------------------------------------------------------------------------
def _reset_peak_rss() -> int:
    """Start a fresh peak (VmHWM := VmRSS) and return the resident set it starts from, so that the peak
    read later is this test's, whatever earlier tests of the run allocated."""
    try:
        return reset_peak_rss()
    except OSError:
        pytest.skip("no /proc/self/status or /proc/self/clear_refs")


def test_one_identity_of_65536_mines_nothing_in_bounded_memory():
    """Every anchor has positives and no negative: no pair slot, no distance matrix (16 GiB here), no
    mining pass. The peak resident memory may grow by the inputs and little more."""
    emb = torch.zeros(65536, 8)
    labels = torch.zeros(65536, dtype=torch.int64)
    before = _reset_peak_rss()
    for miner in (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets):
        assert all(t.numel() == 0 for t in miner(emb, labels))
    loss = fx.triplet_loss(emb.requires_grad_(), labels)
    loss.backward()
    assert loss.item() == 0
    assert proc_status_bytes("VmHWM") - before < 256 * 2**20


@pytest.mark.parametrize("mining", ["semihard", "batch_hard", "all_semihard"])
def test_one_lone_image_beside_one_big_identity(mining):
    """Identities of 1 and B - 1 images: the lone image has no positive (no anchor), every other anchor has
    exactly one negative, the lone image. Checked against the float64 reference."""
    b = 257
    emb = torch.randn(b, 4, dtype=torch.float64)
    labels = torch.zeros(b, dtype=torch.int64)
    labels[100] = 1
    e = emb.clone().requires_grad_()
    loss = fx.triplet_loss(e, labels, mining=mining)
    want = triplet_loss_oracle(emb, labels, mining=mining, squared=mining != "all_semihard")
    torch.testing.assert_close(loss, want)
    a, p, n = {
        "semihard": fx.semi_hard_triplets,
        "batch_hard": fx.batch_hard_triplets,
        "all_semihard": fx.all_semi_hard_triplets,
    }[mining](emb, labels)
    assert (n == 100).all() and not (a == 100).any()
