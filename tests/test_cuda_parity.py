"""CUDA kernels against the CPU kernels: identical indices on the same distance matrix, close values.

Skipped without a GPU, and on a CPU-only build of the extension even where a GPU is present (params.py
decides for the whole suite). Random inputs come from the suite's fresh_seed, so a failure prints the
FACENET_EXT_TEST_SEED that replays it. The CPU kernels are themselves checked against float64 references elsewhere, so
bit-identical mining here means the GPU runs the same rule (shared in csrc/common/).
"""

import pytest
import torch

import facenet_ext as fx

from params import CUDA_MARKS

pytestmark = CUDA_MARKS
ops = torch.ops.facenet_ext


def _labels(kind: str, B: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "balanced":  # FaceNet-style P x K
        return torch.arange(B // 40 + 1).repeat_interleave(40)[:B]
    if kind == "random":  # uneven identities, many singletons
        return torch.randint(0, max(B // 3, 1), (B,), generator=gen)
    if kind == "one_identity":
        return torch.zeros(B, dtype=torch.long)
    if kind == "two_big":  # > 1024 positives per anchor: the chunked shared-memory path
        return torch.arange(B) % 2
    raise ValueError(kind)


def _embeddings(kind: str, B: int, dtype, gen) -> torch.Tensor:
    if kind == "normal":
        return torch.nn.functional.normalize(torch.randn(B, 32, generator=gen, dtype=torch.float64), dim=1).to(dtype)
    # small integers: every distance exact in any summation order, ties everywhere
    return torch.randint(-2, 3, (B, 8), generator=gen).to(dtype)


CASES = [
    ("balanced", 1800, "normal"),
    ("balanced", 400, "ints"),
    ("random", 500, "normal"),
    ("random", 300, "ints"),
    ("one_identity", 50, "normal"),
    ("two_big", 2600, "ints"),
    ("two_big", 2600, "normal"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("labels_kind,B,emb_kind", CASES)
def test_miners_identical_on_same_distances(labels_kind, B, emb_kind, dtype, fresh_seed):
    gen = torch.Generator().manual_seed(fresh_seed)
    labels = _labels(labels_kind, B, gen)
    emb = _embeddings(emb_kind, B, dtype, gen)
    d_cpu = fx.pairwise_sq_dist(emb)
    d_gpu = d_cpu.cuda()
    lab_gpu = labels.cuda()
    variants = [
        ("semihard", (None, True, False)),
        ("semihard", (0.2, True, False)),
        ("semihard", (0.3, False, True)),
        ("batch_hard", ()),
        ("all_semihard", (0.2, False)),
    ]
    if B > 1000:  # all-semihard output grows as B*K*N; the small cases cover it
        variants = variants[:4]
    for name, extra in variants:
        op = {
            "semihard": ops.semihard_from_sq_dist,
            "batch_hard": ops.batch_hard_from_sq_dist,
            "all_semihard": ops.all_semihard_from_sq_dist,
        }[name]
        cpu = op(d_cpu, labels, labels, True, *extra)
        gpu = op(d_gpu, lab_gpu, lab_gpu, True, *extra)
        for c, g, part in zip(cpu, gpu, "apn"):
            assert g.dtype == torch.int64
            assert torch.equal(c, g.cpu()), f"{name}{extra} {part} differs ({labels_kind}, B={B}, {emb_kind}, {dtype})"


def test_end_to_end_exact_on_integer_embeddings(fresh_seed):
    gen = torch.Generator().manual_seed(fresh_seed)
    emb = torch.randint(-3, 4, (600, 16), generator=gen).float()
    labels = torch.randint(0, 30, (600,), generator=gen)
    for fn in (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets):
        cpu = fn(emb, labels)
        gpu = fn(emb.cuda(), labels.cuda())
        assert all(torch.equal(c, g.cpu()) for c, g in zip(cpu, gpu)), fn.__name__


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_pairwise_distances_match(dtype):
    x = torch.randn(700, 64, dtype=dtype)
    y = torch.randn(300, 64, dtype=dtype)
    for args in ((x,), (x, y)):
        cpu = fx.pairwise_sq_dist(*args)
        gpu = fx.pairwise_sq_dist(*(t.cuda() for t in args))
        tol = 1e-4 if dtype != torch.float64 else 1e-10
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol * 100)
    d = fx.pairwise_sq_dist(x.cuda())
    assert torch.equal(d, d.T) and bool((d.diagonal() == 0).all()) and bool((d >= 0).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("mining", ["semihard", "batch_hard", "all_semihard"])
def test_triplet_loss_matches_cpu_and_is_deterministic(dtype, squared, mining):
    emb = torch.nn.functional.normalize(torch.randn(240, 48, dtype=torch.float64), dim=1).to(dtype)
    labels = torch.arange(12).repeat_interleave(20)
    trip = fx.semi_hard_triplets(emb.float(), labels) if mining == "semihard" else mining
    if mining == "semihard":
        trip_gpu = tuple(t.cuda() for t in trip)
    else:
        trip_gpu = mining
    grads = []
    for dev, m in (("cpu", trip), ("cuda", trip_gpu), ("cuda", trip_gpu)):
        e = emb.detach().to(dev).requires_grad_()
        loss = fx.triplet_loss(e, labels.to(dev), 0.2, mining=m, squared=squared)
        loss.backward()
        grads.append((loss.detach().cpu(), e.grad.cpu()))
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    if mining == "semihard" or dtype in (torch.float32, torch.float64):
        torch.testing.assert_close(grads[1][0], grads[0][0], rtol=tol, atol=tol)
        torch.testing.assert_close(grads[1][1].double(), grads[0][1].double(), rtol=tol, atol=tol)
    assert torch.equal(grads[1][1], grads[2][1]), "CUDA backward is not bit-reproducible"


def test_empty_mining_gives_zero_loss_and_grad_on_cuda():
    emb = torch.randn(5, 8, device="cuda", requires_grad=True)
    labels = torch.arange(5, device="cuda")  # no positives: nothing to mine
    loss = fx.triplet_loss(emb, labels)
    loss.backward()
    assert loss.item() == 0.0 and bool((emb.grad == 0).all())


def test_compile_and_opcheck_on_cuda():
    emb = torch.nn.functional.normalize(torch.randn(64, 16, device="cuda"), dim=1)
    labels = torch.arange(8, device="cuda").repeat_interleave(8)
    d = fx.pairwise_sq_dist(emb)
    torch.library.opcheck(ops.pairwise_sq_dist, (emb, None))
    torch.library.opcheck(ops.semihard_from_sq_dist, (d, labels, labels, True, None, True, False))
    torch.library.opcheck(ops.batch_hard_from_sq_dist, (d, labels, labels, True))
    torch.library.opcheck(ops.all_semihard_from_sq_dist, (d, labels, labels, True, 0.2, False))
    torch.library.opcheck(ops.all_semihard_loss, (emb, labels, 0.2, False, True))

    def step(e, y):
        return fx.triplet_loss(e, y, 0.2)

    compiled = torch.compile(step, fullgraph=True)
    e = emb.clone().requires_grad_()
    torch.testing.assert_close(compiled(e, labels), step(e, labels))


# ---- small exact cases: tools/gpu_smoke.sh selects them with `-k smoke`, also under compute-sanitizer ----
# Integer embeddings in [-2, 2], D = 8: every squared distance is an integer <= 128, exact in fp16, bf16
# and any summation order, so CPU and CUDA must agree exactly on indices and closely on the loss.


def _exact_batch(B: int, labels: torch.Tensor | None = None, dtype=torch.float32):
    emb = torch.randint(-2, 3, (B, 8)).to(dtype)
    return emb, labels if labels is not None else torch.randint(0, max(B // 4, 1), (B,))


def _same_mining_and_loss(emb, labels, miners, dtype=torch.float32):
    for fn in miners:
        cpu, gpu = fn(emb, labels), fn(emb.cuda(), labels.cuda())
        assert all(torch.equal(c, g.cpu()) for c, g in zip(cpu, gpu)), fn.__name__
    losses = []
    for dev in ("cpu", "cuda"):
        e = emb.detach().to(dev).requires_grad_()
        loss = fx.triplet_loss(e, labels.to(dev), 0.2)
        loss.backward()
        losses.append((loss.detach().double().cpu(), e.grad.double().cpu()))
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)
    torch.testing.assert_close(losses[1], losses[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("B", [1, 2, 33, 257])
def test_smoke_small_batches(B):
    miners = (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets)
    _same_mining_and_loss(*_exact_batch(B), miners)


def test_smoke_more_than_1024_positives():
    # 1040 images of one identity: each of its anchors has 1039 positives (the chunked path), plus 160 others
    labels = (torch.arange(1200) >= 1040).long()
    _same_mining_and_loss(*_exact_batch(1200, labels), (fx.semi_hard_triplets, fx.batch_hard_triplets))


def test_smoke_strided_indices():
    emb, labels = _exact_batch(96, torch.arange(12).repeat_interleave(8))
    packed = fx.semi_hard_triplets(emb, labels)
    columns = torch.stack(packed, 1)  # columns[:, i] is a stride-3 view
    for dev in ("cpu", "cuda"):
        e = emb.to(dev)
        ref = fx.triplet_loss(e, None, 0.2, mining=tuple(t.to(dev) for t in packed))
        got = fx.triplet_loss(e, None, 0.2, mining=tuple(columns.to(dev).unbind(1)))
        torch.testing.assert_close(got.cpu(), ref.cpu(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_smoke_half_precision(dtype):
    emb, labels = _exact_batch(128, torch.arange(16).repeat_interleave(8), dtype)
    _same_mining_and_loss(emb, labels, (fx.semi_hard_triplets, fx.batch_hard_triplets), dtype)


@pytest.mark.parametrize("B", [2, 33, 257])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_smoke_fused_all_semihard_loss(B, squared):
    """The fused all-semi-hard loss (never lists its triplets): CPU and CUDA agree on the counts exactly and
    on the value and gradient closely, with capacity= and stats, and the CUDA gradient is bit-reproducible."""
    emb, labels = _exact_batch(B)
    runs = []
    for dev in ("cpu", "cuda", "cuda"):
        e = emb.detach().to(dev).requires_grad_()
        loss, stats = fx.triplet_loss(e, labels.to(dev), 2.0, mining="all_semihard", squared=squared, return_stats=True)
        loss.backward()
        runs.append((loss.detach().double().cpu(), {k: v.item() for k, v in stats.items()}, e.grad.cpu()))
    (cpu_loss, cpu_stats, cpu_grad), (gpu_loss, gpu_stats, gpu_grad) = runs[0], runs[1]
    assert gpu_stats["num_triplets"] == cpu_stats["num_triplets"]
    assert gpu_stats == pytest.approx(cpu_stats, rel=1e-5)
    torch.testing.assert_close(gpu_loss, cpu_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu_grad, cpu_grad, rtol=1e-4, atol=1e-4)
    assert torch.equal(runs[1][2], runs[2][2])
    a, p, n, found = fx.semi_hard_triplets(emb.cuda(), labels.cuda(), capacity=64)
    assert a.shape == (64,) and found.item() == len(fx.semi_hard_triplets(emb, labels)[0])


def test_direct_ops_with_mixed_devices_raise_value_error():
    """The CUDA launchers check their arguments before the device guard: a CPU tensor beside CUDA ones
    is a ValueError naming it, not an error from inside CUDAGuard."""
    emb_cpu, labels = torch.randn(8, 4), torch.arange(8, device="cuda") // 2
    d_cpu = torch.rand(8, 8)
    calls = [
        lambda: ops.semihard_from_sq_dist(d_cpu, labels, labels, True, None, True, False),
        lambda: ops.batch_hard_from_sq_dist(d_cpu, labels, labels, True),
        lambda: ops.all_semihard_from_sq_dist(d_cpu, labels, labels, True, 0.2, True),
        lambda: ops.semi_hard_triplets(emb_cpu, labels, None, True, False),
        lambda: ops.all_semihard_loss(emb_cpu, labels, 0.2, True, False),
        lambda: ops.pairwise_sq_dist(emb_cpu, emb_cpu.cuda()),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="is on"):
            call()


def test_tf32_does_not_change_the_distances_or_the_triplets():
    """With TF32 allowed globally, the miners' Gram GEMM still runs in full fp32 (at::NoTF32Guard), so
    CUDA chooses the CPU's triplets on random embeddings; the user's setting is left as it was."""
    emb = torch.nn.functional.normalize(torch.randn(512, 128), dim=1)
    labels = torch.arange(512) // 8
    want_d = fx.pairwise_sq_dist(emb.double()).float()
    want = fx.semi_hard_triplets(emb, labels)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        got_d = fx.pairwise_sq_dist(emb.cuda()).cpu()
        got = fx.semi_hard_triplets(emb.cuda(), labels.cuda())
        assert torch.backends.cuda.matmul.allow_tf32 and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.backends.cuda.matmul.allow_tf32, precision = before
        torch.set_float32_matmul_precision(precision)
    torch.testing.assert_close(got_d, want_d, rtol=0, atol=1e-5)  # fp32 rounding, not TF32's ~1e-3
    assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])
    # Two fp32 GEMMs (cuBLAS, the CPU's BLAS) round differently, so a near-tie may flip; TF32 would flip
    # a large share of the 3584 negatives.
    assert (got[2].cpu() != want[2]).sum() <= 4
