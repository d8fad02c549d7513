"""CUDA kernels against the CPU kernels: identical indices on the same distance matrix, close values.

Skipped without a GPU, and on a CPU-only build of the extension even where a GPU is present (params.py
decides for the whole suite). Random inputs come from the suite's fresh_seed, so a failure prints the
FACENET_EXT_TEST_SEED that replays it; the fixture is repeated below, so that also holds under
``pytest --noconftest`` (tools/gpu_smoke.sh runs that way where hypothesis is missing). The CPU kernels
are themselves checked against float64 references elsewhere, so bit-identical mining here means the GPU
runs the same rule (shared in csrc/rules/).

The smoke tests (``-k smoke``: tools/gpu_smoke.sh, also under compute-sanitizer) compare the CPU with
TARGET, the device under test: "cuda", or "cpu" when FACENET_EXT_PARITY_DEVICE=cpu (the smoke's CPU
rehearsal: the same code paths CPU against CPU, which proves nothing about a GPU; the other tests skip).
"""

import os
import random

import pytest
import torch

import facenet_ext as fx

from params import CUDA_MARKS

REHEARSAL = os.environ.get("FACENET_EXT_PARITY_DEVICE", "cuda") == "cpu"
TARGET = "cpu" if REHEARSAL else "cuda"
pytestmark = [pytest.mark.cuda] if REHEARSAL else CUDA_MARKS
ops = torch.ops.facenet_ext


@pytest.fixture(autouse=True)
def fresh_seed(request):
    """conftest.py's fresh_seed, here too so that the seed is set, printed and replayable under
    --noconftest: FACENET_EXT_TEST_SEED=<n> replays the one a failure printed. In the CPU rehearsal only
    the smoke tests run."""
    if REHEARSAL and "smoke" not in request.node.name:
        pytest.skip("FACENET_EXT_PARITY_DEVICE=cpu rehearses only the smoke tests")
    seed = int(os.environ.get("FACENET_EXT_TEST_SEED", random.randrange(2**31)))
    torch.manual_seed(seed)
    print(f"{request.node.nodeid}: FACENET_EXT_TEST_SEED={seed}")
    return seed


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
            "semihard": ops.semi_hard_from_sq_dist,
            "batch_hard": ops.batch_hard_from_sq_dist,
            "all_semihard": ops.all_semi_hard_from_sq_dist,
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
    torch.library.opcheck(ops.semi_hard_from_sq_dist, (d, labels, labels, True, None, True, False))
    torch.library.opcheck(ops.batch_hard_from_sq_dist, (d, labels, labels, True))
    torch.library.opcheck(ops.all_semi_hard_from_sq_dist, (d, labels, labels, True, 0.2, False))
    torch.library.opcheck(ops.all_semi_hard_loss, (emb, labels, 0.2, False, True))

    def step(e, y):
        return fx.triplet_loss(e, y, 0.2)

    compiled = torch.compile(step, fullgraph=True)
    e = emb.clone().requires_grad_()
    torch.testing.assert_close(compiled(e, labels), step(e, labels))


# ---- small exact cases: tools/gpu_smoke.sh selects them with `-k smoke`, also under compute-sanitizer ----
# Integer embeddings in [-2, 2], D = 8: every squared distance is an integer <= 128, exact in fp16, bf16
# and any summation order, so CPU and TARGET must agree exactly on indices and closely on the loss.
# Between them they call every facenet_ext op on TARGET; tools/smoke_coverage.py checks that they did.


def _exact_batch(B: int, labels: torch.Tensor | None = None, dtype=torch.float32):
    emb = torch.randint(-2, 3, (B, 8)).to(dtype)
    return emb, labels if labels is not None else torch.randint(0, max(B // 4, 1), (B,))


def _same_mining_and_loss(emb, labels, miners, dtype=torch.float32):
    for fn in miners:
        cpu, got = fn(emb, labels), fn(emb.to(TARGET), labels.to(TARGET))
        assert all(torch.equal(c, g.cpu()) for c, g in zip(cpu, got)), fn.__name__
    losses = []
    for dev in ("cpu", TARGET):
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
    # 1040 images of one identity: each of its anchors has 1039 positives (the chunked path), plus 160 others.
    # O(K^2) per identity under racecheck: tools/gpu_smoke.sh leaves it out of that run (by this name).
    labels = (torch.arange(1200) >= 1040).long()
    _same_mining_and_loss(*_exact_batch(1200, labels), (fx.semi_hard_triplets, fx.batch_hard_triplets))


def test_smoke_strided_indices():
    emb, labels = _exact_batch(96, torch.arange(12).repeat_interleave(8))
    packed = fx.semi_hard_triplets(emb, labels)
    columns = torch.stack(packed, 1)  # columns[:, i] is a stride-3 view
    for dev in ("cpu", TARGET):
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
def test_smoke_fused_all_semi_hard_loss(B, squared):
    """The fused all-semi-hard loss (never lists its triplets): CPU and TARGET agree on the counts exactly
    and on the value and gradient closely, with capacity= and stats, and TARGET's gradient is
    bit-reproducible."""
    emb, labels = _exact_batch(B)
    runs = []
    for dev in ("cpu", TARGET, TARGET):
        e = emb.detach().to(dev).requires_grad_()
        loss, stats = fx.triplet_loss(e, labels.to(dev), 2.0, mining="all_semihard", squared=squared, return_stats=True)
        loss.backward()
        runs.append((loss.detach().double().cpu(), {k: v.item() for k, v in stats.items()}, e.grad.cpu()))
    (cpu_loss, cpu_stats, cpu_grad), (got_loss, got_stats, got_grad) = runs[0], runs[1]
    assert got_stats["num_triplets"] == cpu_stats["num_triplets"]
    assert got_stats == pytest.approx(cpu_stats, rel=1e-5)
    torch.testing.assert_close(got_loss, cpu_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_grad, cpu_grad, rtol=1e-4, atol=1e-4)
    assert torch.equal(runs[1][2], runs[2][2])
    a, p, n, found = fx.semi_hard_triplets(emb.to(TARGET), labels.to(TARGET), capacity=64)
    assert a.shape == (64,) and found.item() == len(fx.semi_hard_triplets(emb, labels)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_smoke_from_sq_dist_ops(dtype):
    """The three *_from_sq_dist ops called directly, on the batch (exclude_self) and on a reference set
    of another size, with and without a margin, with the drop fallback, squared and plain."""
    emb, labels = _exact_batch(70, dtype=dtype)
    ref, ref_labels = _exact_batch(45, dtype=dtype)
    variants = [
        (ops.semi_hard_from_sq_dist, (None, True, False)),
        (ops.semi_hard_from_sq_dist, (2.5, True, True)),  # margin, drop the anchors without a semi-hard negative
        (ops.semi_hard_from_sq_dist, (2.0, False, False)),
        (ops.batch_hard_from_sq_dist, ()),
        (ops.all_semi_hard_from_sq_dist, (4.0, True)),
        (ops.all_semi_hard_from_sq_dist, (1.0, False)),
    ]
    matrices = [
        (fx.pairwise_sq_dist(emb), labels, labels, True),
        (fx.pairwise_sq_dist(emb, ref), labels, ref_labels, False),
    ]
    for d, lab, ref_lab, exclude_self in matrices:
        for op, extra in variants:
            cpu = op(d, lab, ref_lab, exclude_self, *extra)
            got = op(d.to(TARGET), lab.to(TARGET), ref_lab.to(TARGET), exclude_self, *extra)
            name = f"{op._qualified_op_name}{extra} exclude_self={exclude_self}"
            assert cpu[0].numel() > 0, f"{name}: nothing mined, the comparison would prove nothing"
            for c, g, part in zip(cpu, got, "apn"):
                assert g.dtype == torch.int64 and g.device.type == TARGET
                assert torch.equal(c, g.cpu()), f"{name}: {part} differs ({dtype})"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_smoke_pairwise_sq_dist_with_and_without_y(dtype):
    x, _ = _exact_batch(40, dtype=dtype)
    y, _ = _exact_batch(25, dtype=dtype)
    for args in ((x,), (x, y)):
        cpu = fx.pairwise_sq_dist(*args)
        got = fx.pairwise_sq_dist(*(t.to(TARGET) for t in args))
        assert got.dtype == cpu.dtype and got.device.type == TARGET and got.shape == cpu.shape
        assert torch.equal(got.cpu(), cpu), f"y={'given' if len(args) == 2 else 'None'}"  # integers: exact


MINING_NAME = {
    "semi_hard_triplets": "semihard",
    "batch_hard_triplets": "batch_hard",
    "all_semi_hard_triplets": "all_semihard",
}


@pytest.mark.parametrize("miner", list(MINING_NAME))
def test_smoke_reference_set_streaming_and_memory_bank(miner):
    """Mining beyond one batch on TARGET: a reference set, streaming in column chunks, a memory bank;
    the same triplets as the CPU, and the loss through the same path (forward and backward) as close."""
    fn = getattr(fx, miner)
    emb, labels = _exact_batch(48)
    ref, ref_labels = _exact_batch(64)
    banks = {}
    for dev in ("cpu", TARGET):
        banks[dev] = fx.MemoryBank(80, 8, device=dev)
        banks[dev].enqueue(ref.to(dev), ref_labels.to(dev))
    cases = {
        "reference set": lambda dev: {"ref_emb": ref.to(dev), "ref_labels": ref_labels.to(dev)},
        "streaming": lambda dev: {"chunk_size": 16},
        "memory bank": lambda dev: {"memory": banks[dev]},
    }
    for case, options in cases.items():
        want = fn(emb, labels, **options("cpu"))
        got = fn(emb.to(TARGET), labels.to(TARGET), **options(TARGET))
        assert want[0].numel() > 0, f"{miner} {case}: nothing mined"
        for c, g, part in zip(want, got, "apn"):
            assert torch.equal(c, g.cpu()), f"{miner} {case}: {part} differs"
        losses = []
        for dev in ("cpu", TARGET):
            e = emb.detach().to(dev).requires_grad_()
            loss = fx.triplet_loss(e, labels.to(dev), 0.5, mining=MINING_NAME[miner], **options(dev))
            loss.backward()
            losses.append((loss.detach().double().cpu(), e.grad.double().cpu()))
        torch.testing.assert_close(
            losses[1], losses[0], rtol=1e-5, atol=1e-5, msg=lambda m, case=case: f"{miner} {case}: {m}"
        )


@pytest.mark.parametrize("miner", list(MINING_NAME))
def test_smoke_capacity_pads_and_counts_as_the_cpu(miner):
    """capacity= (static shapes, for CUDA graphs): the same padded triplets and count as the CPU, for a
    capacity below and above the number found."""
    fn = getattr(fx, miner)
    emb, labels = _exact_batch(40)
    found = fn(emb, labels)[0].numel()
    assert found > 1
    for capacity in (found // 2, found + 7):
        want = fn(emb, labels, capacity=capacity)
        got = fn(emb.to(TARGET), labels.to(TARGET), capacity=capacity)
        assert want[0].shape == (capacity,) and want[3].item() == found
        for w, g, part in zip(want, got, ("anchor", "positive", "negative", "found")):
            assert g.device.type == TARGET and torch.equal(w, g.cpu()), f"{miner} capacity={capacity}: {part} differs"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=["float32", "float64", "float16"])
def test_smoke_l2_pool2d_forward_and_backward(dtype):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64).to(dtype)
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2}[dtype]
    for kernel, stride, padding, ceil_mode in ((3, 2, 1, False), ((2, 3), 1, 0, True)):
        want = fx.l2_pool2d(x, kernel, stride, padding, ceil_mode)
        grad = torch.randn(want.shape, dtype=torch.float64).to(dtype)
        runs = []
        for dev in ("cpu", TARGET):
            xi = x.detach().to(dev).requires_grad_()
            out = fx.l2_pool2d(xi, kernel, stride, padding, ceil_mode)
            out.backward(grad.to(dev))
            assert out.device.type == dev and out.dtype == dtype
            runs.append((out.detach().double().cpu(), xi.grad.double().cpu()))
        torch.testing.assert_close(runs[1], runs[0], rtol=tol, atol=tol)


def test_smoke_error_word_is_clean_after_clean_ops():
    """take_errors (CUDA only) on the device's error word after clean ops: int32 [1], zero, and
    check_errors() returns None. On cpu there is no word (CPU ops raise at once): check_errors returns None."""
    emb, labels = _exact_batch(33)
    fx.semi_hard_triplets(emb.to(TARGET), labels.to(TARGET), capacity=16)
    fx.batch_hard_triplets(emb.to(TARGET), labels.to(TARGET), capacity=16)
    fx.triplet_loss(emb.to(TARGET), labels.to(TARGET), 0.2, capacity=16)
    if TARGET == "cuda":
        word = ops.take_errors(torch.empty(0, device=TARGET))
        assert word.dtype == torch.int32 and word.shape == (1,) and word.device.type == "cuda"
        assert word.item() == 0, f"error bits {word.item():#x} set by clean ops"
    assert fx.check_errors(TARGET) is None


def test_direct_ops_with_mixed_devices_raise_value_error():
    """The CUDA launchers check their arguments before the device guard: a CPU tensor beside CUDA ones
    is a ValueError naming it, not an error from inside CUDAGuard."""
    emb_cpu, labels = torch.randn(8, 4), torch.arange(8, device="cuda") // 2
    d_cpu = torch.rand(8, 8)
    calls = [
        lambda: ops.semi_hard_from_sq_dist(d_cpu, labels, labels, True, None, True, False),
        lambda: ops.batch_hard_from_sq_dist(d_cpu, labels, labels, True),
        lambda: ops.all_semi_hard_from_sq_dist(d_cpu, labels, labels, True, 0.2, True),
        lambda: ops.semi_hard_triplets(emb_cpu, labels, None, True, False),
        lambda: ops.all_semi_hard_loss(emb_cpu, labels, 0.2, True, False),
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
