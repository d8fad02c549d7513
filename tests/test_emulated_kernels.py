"""Every CUDA kernel, executed on the CPU under the emulator (tests/cuda_emulator.py, tests/emulated/), and
compared with the CPU op that the Python API runs on the same inputs.

Indices are compared exactly. Floats are compared exactly where both sides sum in the same order; where
they do not, the tolerance sits next to the reason. What only a GPU can show (the memory model, real
cub, timing, ATen's CUDA calls in the launchers) is in docs/architecture.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import facenet_ext  # noqa: F401  (registers torch.ops.facenet_ext)

import cuda_emulator as emu
from params import dtypes

ops = torch.ops.facenet_ext
KERNEL_DIR = Path(__file__).resolve().parents[1] / "csrc" / "cuda" / "kernels"

pytestmark = pytest.mark.skipif(emu.skip_reason() is not None, reason=str(emu.skip_reason()))

# Each kernel file and the tests that execute its kernels. A new kernel file without an entry fails
# test_every_kernel_file_is_emulated.
EMULATED = {
    "label_groups.cuh": ["test_label_groups", "test_label_groups_check_the_norms"],
    "semi_hard.cuh": [
        "test_semi_hard",
        "test_semi_hard_slots",
        "test_semi_hard_padded",
        "test_semi_hard_chunked_positives",
        "test_semi_hard_negative_distances",
    ],
    "batch_hard.cuh": ["test_batch_hard", "test_batch_hard_padded"],
    "all_semi_hard.cuh": ["test_all_semi_hard"],
    "all_semi_hard_loss.cuh": ["test_all_semi_hard_loss"],
    "pairwise_sq_dist.cuh": ["test_dist_epilogues"],
    "triplet_loss.cuh": ["test_triplet_loss", "test_triplet_loss_heavy_rows", "test_triplet_loss_out_of_range_index"],
    "triplet_csr.cuh": ["test_triplet_csr", "test_triplet_loss_out_of_range_index"],
    "l2_pool2d.cuh": ["test_l2_pool2d", "test_l2_pool2d_index_width_follows_every_term"],
}
MINER_FLOATS = (torch.float32, torch.float64)
SIZES = [1, 2, 33, 257, 1025, 1100]  # 1100: label groups span two 1024-thread tiles


def test_every_kernel_file_is_emulated():
    with_kernels = {p.name for p in KERNEL_DIR.glob("*.cuh") if re.search(r"__global__", p.read_text())}
    assert with_kernels == set(EMULATED), f"kernel files without emulated tests: {with_kernels - set(EMULATED)}"
    for names in EMULATED.values():
        for name in names:
            assert callable(globals().get(name)), name


# ---- inputs ------------------------------------------------------------------------------------------------
def identity_labels(B: int, group: int, shuffle: bool = True) -> torch.Tensor:
    labels = torch.arange(B) // max(group, 1)
    return labels[torch.randperm(B)] if shuffle else labels


def tied_matrix(B: int, N: int, dtype, low: int = 0, high: int = 6) -> torch.Tensor:
    """Small integers: every row full of ties."""
    return torch.randint(low, high, (B, N)).to(dtype)


def gram_matrix(B: int, dtype, integer: bool) -> torch.Tensor:
    emb = torch.randint(-2, 3, (B, 4)).to(dtype) if integer else torch.randn(B, 8, dtype=dtype)
    return ops.pairwise_sq_dist(emb, None)


def miner_cases():
    """(name, B, group) triples: sizes, one identity, all distinct, mixed group sizes."""
    for B in SIZES:
        yield f"B{B}-k4", B, 4
    yield "one-identity", 40, 40
    yield "all-distinct", 40, 1
    yield "pairs", 64, 2


def wider(d: torch.Tensor) -> torch.Tensor:
    """The same matrix as a view whose row stride is larger than its width."""
    big = torch.full((d.shape[0], d.shape[1] + 7), float("nan"), dtype=d.dtype)
    big[:, 3 : 3 + d.shape[1]] = d
    return big[:, 3 : 3 + d.shape[1]]


def cpu_or_error(fn, *args):
    try:
        return fn(*args), None
    except ValueError as e:
        return None, e


def assert_same_triplets(got, want):
    for g, w, name in zip(got, want, ("anchor", "positive", "negative")):
        assert torch.equal(g, w), f"{name}: emulated {g.tolist()[:20]} vs CPU {w.tolist()[:20]}"


# ---- label groups --------------------------------------------------------------------------------------------
def reference_groups(labels, ref_labels, exclude_self):
    order = sorted(range(len(ref_labels)), key=lambda i: (int(ref_labels[i]), i))
    members = torch.tensor(order, dtype=torch.int32)
    gid_of, starts = {}, []
    for pos, i in enumerate(order):
        lab = int(ref_labels[i])
        if lab not in gid_of:
            gid_of[lab] = len(starts)
            starts.append(pos)
    starts.append(len(order))
    slots = []
    for a in range(len(labels)):
        gid = gid_of.get(int(labels[a]), -1)
        size = starts[gid + 1] - starts[gid] if gid >= 0 else 0
        pos = 0 if gid < 0 else (size - 1 if exclude_self else size)
        slots.append(0 if size == len(ref_labels) else pos)
    anchor_gid = torch.tensor([gid_of.get(int(v), -1) for v in labels], dtype=torch.int32)
    offsets = torch.tensor([0, *torch.tensor(slots).cumsum(0).tolist()], dtype=torch.int64)
    return anchor_gid, members, torch.tensor(starts, dtype=torch.int32), offsets, slots


@pytest.mark.parametrize("B", SIZES + [2100])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_label_groups(B, exclude_self):
    labels = identity_labels(B, 3) * 7 - 5  # negative and sparse label values
    ref = labels if exclude_self else torch.cat([labels[: B // 2], torch.randint(-9, 9, (B // 3 + 1,))])
    g = emu.label_groups(labels, ref, exclude_self)
    anchor_gid, members, starts, offsets, slots = reference_groups(labels.tolist(), ref.tolist(), exclude_self)
    assert torch.equal(g.anchor_gid, anchor_gid)
    assert torch.equal(g.members, members)
    assert torch.equal(g.group_start[: len(starts)], starts)
    assert torch.equal(g.pair_offset, offsets)
    assert (g.num_pairs, g.max_positives, g.anchors_without_pairs) == (
        sum(slots),
        max(slots),
        sum(s == 0 for s in slots),
    )
    ref_gid = torch.empty_like(g.ref_gid)
    for gid in range(len(starts) - 1):
        ref_gid[members[starts[gid] : starts[gid + 1]].long()] = gid
    assert torch.equal(g.ref_gid, ref_gid)


@pytest.mark.parametrize("B", [1, 40, 1100])
@dtypes(*MINER_FLOATS)
def test_label_groups_check_the_norms(B, dtype):
    """The fused miners' embedding check inside the label-groups launch: a NaN, an Inf or a norm above
    max / 4 (a distance could overflow) flags the batch, in the summary or, for capacity=, as the error
    word's NaN/Inf bit; safe norms flag nothing. The same rule as the CPU's check."""
    labels = identity_labels(B, 3)
    limit = torch.finfo(dtype).max / 4
    for bad in (None, float("nan"), float("inf"), limit * 1.5, limit):
        norms = torch.rand(B, dtype=dtype)
        if bad is not None:
            norms[B // 2] = bad
        want = bad is not None and not bad <= limit
        assert emu.label_groups(labels, labels, True, norms).non_finite == want
        word = torch.zeros(1, dtype=torch.int32)
        g = emu.label_groups(labels, labels, True, norms, error_word=word)
        assert not g.non_finite and int(word) == (1 if want else 0)
    assert not emu.label_groups(labels, labels, True).non_finite  # no norms: not checked


# ---- the miners -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(miner_cases()), ids=lambda c: c[0])
@dtypes(*MINER_FLOATS)
@pytest.mark.parametrize("variant", ["plain", "margin-squared", "margin-plain", "drop", "wide-rows"])
def test_semi_hard(case, dtype, variant):
    _, B, group = case
    labels = identity_labels(B, group)
    d = gram_matrix(B, dtype, integer=B % 2 == 1)  # odd sizes: integer embeddings, so ties
    margin = {"margin-squared": 0.5, "margin-plain": 0.3}.get(variant)
    squared = variant != "margin-plain"
    drop = variant == "drop"
    if variant == "wide-rows":
        d = wider(d)
    got, flag = emu.semi_hard_from_sq_dist(d, labels, labels, True, margin, squared, drop)
    assert not flag
    assert_same_triplets(got, ops.semi_hard_from_sq_dist(d, labels, labels, True, margin, squared, drop))


@pytest.mark.parametrize("case", list(miner_cases()), ids=lambda c: c[0])
@dtypes(*MINER_FLOATS)
def test_semi_hard_slots(case, dtype):
    """Slot mode, as semi_hard_triplets runs it without margin or drop: every slot written, in order."""
    _, B, group = case
    labels = identity_labels(B, group)
    d = gram_matrix(B, dtype, integer=B % 2 == 1)
    got = emu.semi_hard_slots(d, labels)
    assert_same_triplets(got, ops.semi_hard_from_sq_dist(d, labels, labels, True, None, True, False))


def assert_padded(got, want, capacity):
    *slots, found = got
    t = want[0].numel()
    k = min(t, capacity)
    assert found.dim() == 0 and int(found) == t
    for g, w in zip(slots, want):
        assert g.shape == (capacity,)
        assert torch.equal(g[:k], w[:k])
        assert (g[k:] == -1).all()


def capacities(t: int):
    return sorted({0, 1, max(t - 1, 0), t, t + 5})


@pytest.mark.parametrize("case", [c for c in miner_cases() if c[1] <= 257], ids=lambda c: c[0])
@dtypes(*MINER_FLOATS)
@pytest.mark.parametrize("variant", ["plain", "margin", "drop"])
def test_semi_hard_padded(case, dtype, variant):
    """semi_hard_triplets(capacity=) on CUDA: slot mode with a capacity, or count + ordered fill, with no
    number read back; against the CPU's exact triplets, padded."""
    _, B, group = case
    labels = identity_labels(B, group)
    d = gram_matrix(B, dtype, integer=B % 2 == 1)
    margin = 0.5 if variant == "margin" else None
    drop = variant == "drop"
    want = ops.semi_hard_from_sq_dist(d, labels, labels, True, margin, True, drop)
    for schedule in ("forward", "shuffled"):
        emu.set_schedule(schedule, seed=B)
        try:
            for capacity in capacities(want[0].numel()):
                got = emu.semi_hard_triplets_padded(d, labels, margin, True, drop, capacity)
                assert_padded(got, want, capacity)
        finally:
            emu.set_schedule("forward")


@pytest.mark.parametrize("schedule", ["forward", "reverse", "shuffled"])
@dtypes(*MINER_FLOATS)
def test_semi_hard_chunked_positives(dtype, schedule):
    """More than 1024 positives for one anchor: the kernel walks them in shared-memory chunks."""
    N = 1100
    ref = torch.zeros(N, dtype=torch.int64)
    ref[torch.randperm(N)[:50]] = torch.randint(1, 5, (50,))
    labels = torch.tensor([0, 0, 3, 0])
    d = tied_matrix(4, N, dtype, 0, 40)
    emu.set_schedule(schedule, seed=7)
    try:
        for drop in (False, True):
            got, _ = emu.semi_hard_from_sq_dist(d, labels, ref, False, None, True, drop)
            assert_same_triplets(got, ops.semi_hard_from_sq_dist(d, labels, ref, False, None, True, drop))
    finally:
        emu.set_schedule("forward")


@dtypes(*MINER_FLOATS)
def test_semi_hard_negative_distances(dtype):
    """The issue-23 case: a negative entry must order below zero (raw IEEE bits put it above every positive)."""
    d = torch.tensor([[0, -1, -0.5, 4], [1, 0, 2, 3], [2, 2, 0, 1], [4, 3, 1, 0]], dtype=dtype)
    labels = torch.tensor([0, 0, 1, 2])
    got, _ = emu.semi_hard_from_sq_dist(d, labels, labels, False)
    want = ops.semi_hard_from_sq_dist(d, labels, labels, False, None, True, False)
    assert_same_triplets(got, want)
    row = (got[0] == 0) & (got[1] == 1)
    assert got[2][row].tolist() == [2]  # the closest negative above -1 is -0.5, at index 2
    # The streaming pattern: a chunk's positives (and the anchor) at -1, below every negative.
    labels = identity_labels(60, 5)
    d = gram_matrix(60, dtype, integer=True)
    d[labels[:, None] == labels[None, :]] = -1
    for drop in (False, True):
        got, _ = emu.semi_hard_from_sq_dist(d, labels, labels, False, None, True, drop)
        assert_same_triplets(got, ops.semi_hard_from_sq_dist(d, labels, labels, False, None, True, drop))
    # Tied integer matrices with negative entries anywhere.
    for B in (9, 40):
        labels = identity_labels(B, 3)
        d = tied_matrix(B, B, dtype, -2, 4)
        for exclude_self, drop in ((True, False), (False, True)):
            got, _ = emu.semi_hard_from_sq_dist(d, labels, labels, exclude_self, None, True, drop)
            want = ops.semi_hard_from_sq_dist(d, labels, labels, exclude_self, None, True, drop)
            assert_same_triplets(got, want)


@pytest.mark.parametrize("case", list(miner_cases()), ids=lambda c: c[0])
@dtypes(*MINER_FLOATS)
@pytest.mark.parametrize("exclude_self", [True, False])
def test_batch_hard(case, dtype, exclude_self):
    _, B, group = case
    labels = identity_labels(B, group)
    d = wider(gram_matrix(B, dtype, integer=True)) if B % 2 else gram_matrix(B, dtype, integer=False)
    got, flag = emu.batch_hard_from_sq_dist(d, labels, labels, exclude_self)
    assert not flag
    assert_same_triplets(got, ops.batch_hard_from_sq_dist(d, labels, labels, exclude_self))


@pytest.mark.parametrize("case", list(miner_cases()), ids=lambda c: c[0])
@dtypes(*MINER_FLOATS)
def test_batch_hard_padded(case, dtype):
    """batch_hard_triplets(capacity=) on CUDA: the per-anchor slots compacted by scan and binary search."""
    _, B, group = case
    labels = identity_labels(B, group)
    d = gram_matrix(B, dtype, integer=B % 2 == 1)
    want = ops.batch_hard_from_sq_dist(d, labels, labels, True)
    for capacity in capacities(want[0].numel()):
        assert_padded(emu.batch_hard_triplets_padded(d, labels, capacity), want, capacity)


@pytest.mark.parametrize("case", [c for c in miner_cases() if c[1] <= 257], ids=lambda c: c[0])
@dtypes(*MINER_FLOATS)
@pytest.mark.parametrize("squared", [True, False])
def test_all_semi_hard(case, dtype, squared):
    _, B, group = case
    labels = identity_labels(B, group)
    d = gram_matrix(B, dtype, integer=B % 2 == 1)
    margin = 2.0 if B % 2 else 0.4
    for exclude_self in (True, False):
        got, flag = emu.all_semi_hard_from_sq_dist(d, labels, labels, exclude_self, margin, squared)
        assert not flag
        assert_same_triplets(got, ops.all_semi_hard_from_sq_dist(d, labels, labels, exclude_self, margin, squared))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["diagonal", "positive", "negative", "no-pair-row"])
@pytest.mark.parametrize("miner", ["semihard", "batch_hard", "all_semihard"])
@dtypes(*MINER_FLOATS)
def test_miners_flag_non_finite_like_the_cpu(miner, where, value, dtype):
    """The flag is set exactly when the CPU op raises: every entry of a row that mines is checked."""
    d = gram_matrix(8, dtype, integer=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 3, 3, 3])
    row, col = {"diagonal": (0, 0), "positive": (0, 1), "negative": (2, 5), "no-pair-row": (4, 6)}[where]
    d[row, col] = value
    for exclude_self in (True, False):
        if miner == "semihard":
            cpu = (ops.semi_hard_from_sq_dist, d, labels, labels, exclude_self, None, True, False)
            _, flag = emu.semi_hard_from_sq_dist(d, labels, labels, exclude_self)
        elif miner == "batch_hard":
            cpu = (ops.batch_hard_from_sq_dist, d, labels, labels, exclude_self)
            _, flag = emu.batch_hard_from_sq_dist(d, labels, labels, exclude_self)
        else:
            cpu = (ops.all_semi_hard_from_sq_dist, d, labels, labels, exclude_self, 0.5, True)
            _, flag = emu.all_semi_hard_from_sq_dist(d, labels, labels, exclude_self, 0.5, True)
        _, error = cpu_or_error(*cpu)
        assert flag == (error is not None), (exclude_self, error)
        # With self-exclusion row 4 (label 2) has no positive: it mines nothing and is not checked, on
        # either device. Without it, the anchor is its own positive and its row is checked.
        if where == "no-pair-row":
            assert flag == (not exclude_self)


# ---- the fused all-semi-hard loss ----------------------------------------------------------------------------
@pytest.mark.parametrize("B,group", [(1, 1), (2, 1), (33, 3), (64, 8), (257, 4)])
@dtypes(*MINER_FLOATS)
@pytest.mark.parametrize("squared", [True, False])
def test_all_semi_hard_loss(B, group, dtype, squared):
    labels = identity_labels(B, group)
    # Inputs whose norms and Gram terms are exact in any summation order (small integers; sixteenths): the
    # launcher's norms are an ATen sum and the CPU op's an index-order loop, so float inputs would give
    # distances a rounding apart, and a triplet at a window edge could then count on one side only.
    emb = torch.randint(-2, 3, (B, 6)).to(dtype) if B % 2 else torch.randint(-8, 9, (B, 16)).to(dtype) / 16
    margin = 1.0 if B % 2 else 0.2
    sums, counts, coef = emu.all_semi_hard_loss(emb, labels, margin, squared, True)
    want_sums, want_counts, want_coef = ops.all_semi_hard_loss(emb, labels, margin, squared, True)
    assert torch.equal(counts, want_counts)  # the same window tests on the same distances
    # The per-anchor sums run in a different order (threads, then a block reduction, then ATen's sum).
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(sums, want_sums, rtol=rtol, atol=rtol)
    # One coefficient per pair, from the same counts and distance: the CPU kernel may reach it through
    # another operation order for plain distances (sqrt of a refined sum).
    torch.testing.assert_close(coef, want_coef, rtol=rtol, atol=rtol)


# ---- distances ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("B,N", [(1, 1), (2, 3), (33, 33), (65, 40), (257, 31)])
@dtypes(*MINER_FLOATS)
def test_dist_epilogues(B, N, dtype):
    x = torch.randn(B, 8, dtype=dtype)
    y = torch.randn(N, 8, dtype=dtype)
    # Elementwise, bit for bit: the same rule (rules/pairwise_rules.h) on the same Gram matrix and norms.
    for other in (None, y):
        ya = x if other is None else other
        gram, xn, yn = x @ ya.T, x.square().sum(1), ya.square().sum(1)
        want = (xn[:, None] + yn[None, :] - 2 * gram).clamp_min(0)
        if other is None:  # the upper triangle, mirrored; an exact zero diagonal
            want = want.triu(1) + want.triu(1).T
        assert torch.equal(emu.pairwise_sq_dist(x, other), want)
    # Against the CPU op: its norms are summed in another order.
    torch.testing.assert_close(emu.pairwise_sq_dist(x, y), ops.pairwise_sq_dist(x, y), rtol=1e-5, atol=1e-5)
    ints = torch.randint(-3, 4, (B, 5)).to(dtype)
    assert torch.equal(emu.pairwise_sq_dist(ints), ops.pairwise_sq_dist(ints, None))


# ---- triplet loss -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("B,D,T", [(2, 1, 1), (9, 33, 40), (64, 128, 500), (40, 300, 2000), (8, 7, 0)])
@dtypes(torch.float32, torch.float64, torch.float16, torch.bfloat16)
@pytest.mark.parametrize("squared", [True, False])
def test_triplet_loss(B, D, T, dtype, squared):
    emb = torch.randn(B, D).to(dtype)
    a, p, n = (torch.randint(0, B, (T,)) for _ in range(3))
    if T:
        a[: T // 4] = 0  # a heavy row: one embedding in many triplets
        p[T // 4 : T // 2] = a[T // 4 : T // 2]  # duplicates: a zero distance (zero-safe gradient)
    margin = 0.5
    got = emu.triplet_forward(emb, a, p, n, margin, squared)
    want = ops.triplet_loss_forward(emb, a, p, n, margin, squared)
    # Warp butterfly sums against the CPU's sequential ones: each distance within a few ulps, and the
    # loss d_ap - d_an + margin within the same absolute error (it cancels, so no relative bound).
    tol = {torch.float64: 1e-12}.get(dtype, 1e-5)
    scale = max(1.0, float(torch.cat(want[1:]).abs().max())) if T else 1.0
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=tol, atol=tol * scale)
    grad_loss = torch.rand(T, dtype=want[0].dtype).expand(T) if T else torch.zeros(0, dtype=want[0].dtype)
    got_grad = emu.triplet_backward(grad_loss, emb, a, p, n, *want, squared)
    want_grad = ops.triplet_loss_backward(grad_loss, emb, a, p, n, *want, squared)
    # The same CSR order per row and dimension, both without contraction (-ffp-contract=off): same bits.
    assert torch.equal(got_grad, want_grad)


def reference_csr(a, p, n, B):
    """The CSR by a stable argsort: rows outside [0, B) take key B (after every row)."""
    rows = torch.stack([a, p, n], 1).reshape(-1)
    key = torch.where((rows >= 0) & (rows < B), rows, torch.full_like(rows, B))
    entry = torch.argsort(key, stable=True)
    return torch.searchsorted(key[entry], torch.arange(B + 1)), entry


# (B, T): one row; one radix pass (B <= 255) and two (B = 256: 9 key bits); B = 1800 (FaceNet's batch, two
# passes); three passes (17 bits); 3T over one 256-thread block of tiles (T = 30000: 352 tiles); T = 0.
CSR_CASES = [(1, 1), (1, 300), (7, 50), (255, 400), (256, 400), (1800, 2000), (70000, 3000), (1800, 30000), (5, 0)]


@pytest.mark.parametrize("B,T", CSR_CASES)
@pytest.mark.parametrize("schedule", ["forward", "reverse", "shuffled"])
def test_triplet_csr(B, T, schedule):
    a, p, n = (torch.randint(0, B, (T,)) for _ in range(3))
    if T > 10:
        n[: T // 2] = B - 1  # a heavy row: several tiles, and (with 3T / 2 > 256) several backward segments
        a[T // 2 : T // 2 + 3] = torch.tensor([-1, B, 2**40])  # out of range: key B, after every row
        n[-1] = -(2**63)
    emu.set_schedule(schedule, seed=11)
    try:
        word = torch.zeros(1, dtype=torch.int32)
        row_ptr, entry = emu.triplet_csr(a, p, n, B, word)
    finally:
        emu.set_schedule("forward")
    want_ptr, want_entry = reference_csr(a, p, n, B)
    assert torch.equal(row_ptr, want_ptr)
    assert torch.equal(entry, want_entry)
    assert int(word) == (2 if T > 10 else 0)  # kErrorIndexRange, set by the first pass only when an index is bad
    plan = emu.triplet_csr_plan(T, B)
    assert (1 << (plan["digit_bits"] * plan["passes"])) > B  # the digits cover key B


@pytest.mark.parametrize("schedule", ["forward", "reverse", "shuffled"])
@dtypes(torch.float32, torch.float64, torch.float16)
@pytest.mark.parametrize("squared", [True, False])
def test_triplet_loss_heavy_rows(schedule, dtype, squared):
    """Rows of 0, 1, S, S + 1 and 2000 (8 segments) entries, S = kTripletSegment: each segment on its own
    warp, the segments added in order, the same bits as the CPU, under every thread order."""
    S = emu.triplet_segment()
    assert S == 256  # tests/test_triplet_loss.py's SEGMENT replays the CPU's association with this length
    B, D, T = 60, 40, 2000
    emb = torch.randn(B, D).to(dtype)
    a, p, n = torch.randint(2, B, (T,)), torch.randint(2, B, (T,)), torch.full((T,), 1)  # row 1: 2000 entries
    a[:S] = 0  # row 0: S entries as anchor (one segment, the boundary)
    p[S : S + 1] = 0  # ... and one more as positive: S + 1 entries, two segments
    a[S + 1 :: 3] = 59  # several other heavy rows with 2-3 segments
    fwd = ops.triplet_loss_forward(emb, a, p, n, 1.5, squared)
    grad_loss = torch.rand(T, dtype=fwd[0].dtype)
    want = ops.triplet_loss_backward(grad_loss, emb, a, p, n, *fwd, squared)
    assert (emu.triplet_seg_ptr(reference_csr(a, p, n, B)[0]).diff() > 3).any()
    emu.set_schedule(schedule, seed=5)
    try:
        got = emu.triplet_backward(grad_loss, emb, a, p, n, *fwd, squared)
    finally:
        emu.set_schedule("forward")
    assert torch.equal(got, want)
    assert torch.all(want[1] != 0) and torch.all(want[B - 1] != 0)


@pytest.mark.parametrize("schedule", ["forward", "reverse", "shuffled"])
def test_triplet_loss_out_of_range_index(schedule):
    """An index outside [0, B): no assert, no read out of range. The forward sets kErrorIndexRange and
    writes NaN for that triplet; the backward gives NaN on the bad triplet's in-range rows, and every other
    row the CPU's bits for the good triplets alone."""
    B, D = 9, 10
    emb = torch.randn(B, D, dtype=torch.float64)
    a, p, n = torch.randint(2, B, (40,)), torch.randint(2, B, (40,)), torch.randint(2, B, (40,))
    a[5], p[5], n[5] = 0, 1, B  # rows 0 and 1 in range, the negative out
    a[17], p[17], n[17] = -1, B, 2**40  # no row in range
    bad = torch.zeros(40, dtype=torch.bool)
    bad[[5, 17]] = True
    emu.set_schedule(schedule, seed=3)
    try:
        word = torch.zeros(1, dtype=torch.int32)
        loss, d_ap, d_an = emu.triplet_forward(emb, a, p, n, 0.5, True, word)
        assert int(word) == 2
        for t in (loss, d_ap, d_an):
            assert t[bad].isnan().all() and not t[~bad].isnan().any()
        want_fwd = ops.triplet_loss_forward(emb, a[~bad], p[~bad], n[~bad], 0.5, True)
        for got_t, want_t in zip((loss, d_ap, d_an), want_fwd):
            torch.testing.assert_close(got_t[~bad], want_t, rtol=1e-12, atol=1e-12)  # warp butterfly order
        g = torch.rand(40, dtype=torch.float64)
        # The good triplets' forward values from the CPU, so the gradient can be compared bit for bit.
        for got_t, want_t in zip((loss, d_ap, d_an), want_fwd):
            got_t[~bad] = want_t
        word.zero_()
        grad = emu.triplet_backward(g, emb, a, p, n, loss, d_ap, d_an, True, word)
        assert int(word) == 2  # the backward reports it too (a direct backward call may come alone)
    finally:
        emu.set_schedule("forward")
    assert grad[:2].isnan().all()
    want = ops.triplet_loss_backward(g[~bad], emb, a[~bad], p[~bad], n[~bad], *want_fwd, True)
    assert torch.equal(grad[2:], want[2:])
    clean = torch.zeros(1, dtype=torch.int32)
    emu.triplet_forward(emb, a[~bad], p[~bad], n[~bad], 0.5, True, clean)
    emu.triplet_backward(g[~bad], emb, a[~bad], p[~bad], n[~bad], *want_fwd, True, clean)
    assert int(clean) == 0


# ---- L2 pooling ---------------------------------------------------------------------------------------------
POOL_CASES = [
    # (N, C, H, W), kernel, stride, padding, ceil_mode
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), False),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), False),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), True),
    ((1, 4, 10, 6), (2, 3), (1, 2), (1, 0), True),
    ((3, 2, 5, 5), (5, 5), (1, 1), (2, 2), False),
    ((1, 2, 17, 12), (3, 2), (3, 2), (0, 1), True),
]


def pool_id(case) -> str:
    shape, k, _, _, ceil_mode = case
    return "x".join(map(str, shape)) + f"-k{k[0]}{k[1]}-c{int(ceil_mode)}"


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
@dtypes(torch.float32, torch.float64, torch.float16, torch.bfloat16)
@pytest.mark.parametrize("index64", [False, True], ids=["i32", "i64"])
def test_l2_pool2d(case, dtype, index64):
    shape, k, s, pad, ceil_mode = case
    x = torch.randn(shape).to(dtype)
    x[..., 0, :] = 0  # an all-zero window somewhere: the zero-safe gradient
    y = emu.l2_pool2d(x, k, s, pad, ceil_mode, index64)
    want = ops.l2_pool2d(x, list(k), list(s), list(pad), ceil_mode)
    # Column by column, each column's rows first: the CPU's separable order, so the same bits.
    assert torch.equal(y, want)
    g_full = torch.randn(want.shape).to(dtype)
    grads = {
        "packed": g_full,
        "expanded": torch.randn(1, 1, 1, 1).to(dtype).expand(want.shape),  # stride 0
        "sliced": torch.randn(want.shape[0], want.shape[1], want.shape[2], 2 * want.shape[3]).to(dtype)[..., ::2],
        "transposed": g_full.transpose(2, 3).contiguous().transpose(2, 3),
    }
    for name, g in grads.items():
        dx = emu.l2_pool2d_backward(g, x, want, k, s, pad, ceil_mode, index64)
        want_dx = ops.l2_pool2d_backward(g, x, want, list(k), list(s), list(pad), ceil_mode)
        # The same windows in the same order; the CPU kernel packs grad_out first, which changes no value.
        assert torch.equal(dx, want_dx), name


def test_l2_pool2d_index_width_follows_every_term():
    """32-bit offsets only when the window arithmetic fits too: a stride of 2^32 on a tiny tensor used to
    become 0 in int32 (a division by zero); now it takes the 64-bit kernel and matches the CPU."""
    fits = emu.l2_pool_fits_int32
    assert fits(30, 10, (3, 2, 2, 2, 1), (5, 3, 2, 2, 1))
    assert not fits(30, 2, (3, 1, 2, 2**32, 1), (5, 3, 2, 2, 1))  # the stride alone
    assert not fits(30, 2, (3, 1, 2, 2**31 - 2, 0), (5, 1, 2, 2, 0))  # in + out * s + k overflows
    assert fits(30, 2, (3, 1, 2, 2**31 - 8, 0), (5, 1, 2, 2, 0))  # just fits
    assert not fits(2**31, 10, (3, 2, 2, 2, 1), (5, 3, 2, 2, 1))  # the element count
    x = torch.randn(1, 2, 3, 5)
    for k, s, pad, ceil_mode in (((2, 2), (2**32, 2**32), (1, 1), False), ((2, 2), (2**31 + 5, 3), (0, 0), True)):
        want = ops.l2_pool2d(x, list(k), list(s), list(pad), ceil_mode)
        assert torch.equal(emu.l2_pool2d(x, k, s, pad, ceil_mode), want)
        g = torch.randn(want.shape)
        want_dx = ops.l2_pool2d_backward(g, x, want, list(k), list(s), list(pad), ceil_mode)
        assert torch.equal(emu.l2_pool2d_backward(g, x, want, k, s, pad, ceil_mode), want_dx)


# ---- every kernel under the other thread orders ----------------------------------------------------------
@pytest.mark.parametrize("schedule", ["reverse", "shuffled"])
def test_every_kernel_under_other_schedules(schedule):
    """One mid-size case of each kernel with threads run in reverse order and in a seeded shuffle: a barrier
    missing anywhere shows up as a difference from the CPU op under some order."""
    emu.set_schedule(schedule, seed=2026)
    try:
        B = 70
        labels = identity_labels(B, 4)
        emb = torch.randint(-2, 3, (B, 6)).double()
        d = ops.pairwise_sq_dist(emb, None)
        assert torch.equal(emu.pairwise_sq_dist(emb), d)
        y = torch.randint(-2, 3, (33, 6)).double()
        assert torch.equal(emu.pairwise_sq_dist(emb, y), ops.pairwise_sq_dist(emb, y))
        got, _ = emu.semi_hard_from_sq_dist(d, labels, labels, True, None, True, False)
        assert_same_triplets(got, ops.semi_hard_from_sq_dist(d, labels, labels, True, None, True, False))
        got, _ = emu.batch_hard_from_sq_dist(d, labels, labels, True)
        assert_same_triplets(got, ops.batch_hard_from_sq_dist(d, labels, labels, True))
        got, _ = emu.all_semi_hard_from_sq_dist(d, labels, labels, True, 2.0, True)
        assert_same_triplets(got, ops.all_semi_hard_from_sq_dist(d, labels, labels, True, 2.0, True))
        sums, counts, coef = emu.all_semi_hard_loss(emb, labels, 1.0, True, True)
        want_sums, want_counts, want_coef = ops.all_semi_hard_loss(emb, labels, 1.0, True, True)
        assert torch.equal(counts, want_counts)
        torch.testing.assert_close(sums, want_sums, rtol=1e-12, atol=1e-12)  # block reduction order
        torch.testing.assert_close(coef, want_coef, rtol=1e-12, atol=1e-12)
        a, p, n = ops.all_semi_hard_from_sq_dist(d, labels, labels, True, 2.0, True)
        fwd = ops.triplet_loss_forward(emb, a, p, n, 0.5, True)
        g = torch.rand(a.numel(), dtype=torch.float64)
        grad = emu.triplet_backward(g, emb, a, p, n, *fwd, True)
        assert torch.equal(grad, ops.triplet_loss_backward(g, emb, a, p, n, *fwd, True))
        for got_t, want_t in zip(emu.triplet_forward(emb, a, p, n, 0.5, True), fwd):
            torch.testing.assert_close(got_t, want_t, rtol=1e-12, atol=1e-12)  # warp butterfly order
        x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
        y_pool = ops.l2_pool2d(x, [3, 3], [2, 2], [1, 1], True)
        assert torch.equal(emu.l2_pool2d(x, (3, 3), (2, 2), (1, 1), True), y_pool)
        gy = torch.randn(y_pool.shape, dtype=torch.float64)
        want_dx = ops.l2_pool2d_backward(gy, x, y_pool, [3, 3], [2, 2], [1, 1], True)
        assert torch.equal(emu.l2_pool2d_backward(gy, x, y_pool, (3, 3), (2, 2), (1, 1), True), want_dx)
        # The label groups themselves, across two 1024-thread tiles.
        big = identity_labels(1500, 3)
        g_emu = emu.label_groups(big, big, True)
        anchor_gid, members, starts, offsets, _ = reference_groups(big.tolist(), big.tolist(), True)
        assert torch.equal(g_emu.members, members) and torch.equal(g_emu.pair_offset, offsets)
        assert torch.equal(g_emu.anchor_gid, anchor_gid)
        assert torch.equal(g_emu.group_start[: len(starts)], starts)
    finally:
        emu.set_schedule("forward")
