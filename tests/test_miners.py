"""The three miners: exact agreement with the float64 reference (on the op's own distance matrix and end to
end on small-integer embeddings), hand-worked examples, properties, edge cases, pytorch-metric-learning,
opcheck and compile."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import facenet_ext as fx
from facenet_ext.mining import MINING
from facenet_ext.oracle import (
    MINING_ORACLES,
    all_semi_hard_from_sq_dist_oracle,
    all_semi_hard_triplets_oracle,
    batch_hard_from_sq_dist_oracle,
    batch_hard_triplets_oracle,
    semi_hard_from_sq_dist_oracle,
    semi_hard_triplets_oracle,
)

from params import ALL_FLOATS, FULL, devices, dtypes, requires_cuda
from strategies import MARGINS, labelled_batches

ops = torch.ops.facenet_ext


def rows(triplets):
    """(a, p, n) tensors -> list of (a, p, n) tuples, after checking the output contract."""
    a, p, n = triplets
    for t in (a, p, n):
        assert t.dtype == torch.int64 and t.dim() == 1 and t.shape == a.shape
    return list(zip(a.tolist(), p.tolist(), n.tolist()))


def assert_same(got, want):
    assert rows(got) == rows(want)


def test_the_oracle_table_matches_the_mining_table():
    """The float64 oracles keep their own table of mining kinds (so oracle.py and mining.py import neither
    the other): the same kinds, each with the same rule on whether the loss's margin selects."""
    assert list(MINING_ORACLES) == list(MINING)
    for kind, (_, margin_selects) in MINING_ORACLES.items():
        assert margin_selects == MINING[kind].margin_selects, kind


def random_batch(kind, batch, identities, dim, dtype, device):
    """Fresh each run. "gaussian": unit vectors, no ties. "integers": coordinates in {-2..2}, ties everywhere."""
    labels = torch.randint(identities, (batch,), device=device)
    if kind == "gaussian":
        emb = F.normalize(torch.randn(batch, dim, dtype=torch.float64), dim=1)
    else:
        emb = torch.randint(-2, 3, (batch, dim)).double()
    return emb.to(dtype).to(device), labels


def scaled(margin, k, squared):
    """The margin that makes the same decisions on embeddings scaled by 2**k."""
    return None if margin is None else margin * (4.0**k if squared else 2.0**k)


# ---------------------------------------------------------------------------------------------------
# exact agreement with the reference on the matrix the op mined on
# ---------------------------------------------------------------------------------------------------
@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("kind", ["gaussian", "integers"])
@pytest.mark.parametrize("margin", [None, 0.0, 0.2, 1.0])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("fallback", ["easiest", "drop"])
def test_semi_hard_matches_reference(device, dtype, kind, margin, squared, fallback):
    emb, labels = random_batch(kind, 48, 6, 8, dtype, device)
    got = fx.semi_hard_triplets(emb, labels, margin, squared=squared, fallback=fallback)
    d = fx.pairwise_sq_dist(emb)
    assert_same(got, semi_hard_from_sq_dist_oracle(d, labels, margin, squared=squared, fallback=fallback))


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("kind", ["gaussian", "integers"])
def test_batch_hard_matches_reference(device, dtype, kind):
    emb, labels = random_batch(kind, 48, 6, 8, dtype, device)
    got = fx.batch_hard_triplets(emb, labels)
    assert_same(got, batch_hard_from_sq_dist_oracle(fx.pairwise_sq_dist(emb), labels))


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("kind", ["gaussian", "integers"])
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_all_semi_hard_matches_reference(device, dtype, kind, margin, squared):
    emb, labels = random_batch(kind, 40, 5, 8, dtype, device)
    got = fx.all_semi_hard_triplets(emb, labels, margin, squared=squared)
    d = fx.pairwise_sq_dist(emb)
    assert_same(got, all_semi_hard_from_sq_dist_oracle(d, labels, margin, squared=squared))


@devices()
@dtypes(*FULL)
@pytest.mark.parametrize("reference_set", ["self", "same labels, no self-exclusion", "other set"])
@pytest.mark.parametrize("layout", ["contiguous", "row-padded", "transposed"])
def test_dispatcher_ops_on_arbitrary_matrices(device, dtype, reference_set, layout):
    """The *_from_sq_dist ops on integer matrices that need not be symmetric or zero on the diagonal (ties
    everywhere), against a reference set, with strided layouts and strided labels."""
    batch = 30
    n_ref = batch if reference_set != "other set" else 37
    labels = torch.randint(5, (2 * batch,), device=device)[::2]
    if reference_set == "self":
        ref_labels, exclude_self, ref_for_reference = labels, True, None
    elif reference_set == "same labels, no self-exclusion":
        ref_labels, exclude_self, ref_for_reference = labels, False, labels
    else:  # labels 0..6 include identities the anchors lack, and anchors whose identity has no reference
        ref_labels = torch.randint(1, 7, (n_ref,), device=device)
        exclude_self, ref_for_reference = False, ref_labels
    d = torch.randint(0, 12, (batch, n_ref + 3), device=device).to(dtype)
    if layout == "row-padded":
        d = d[:, :n_ref]
    elif layout == "transposed":
        d = d[:, :n_ref].t().contiguous().t()
    else:
        d = d[:, :n_ref].contiguous()
    for margin in (None, 0.0, 2.0):
        for squared in (True, False):
            for drop in (False, True):
                got = ops.semi_hard_from_sq_dist(d, labels, ref_labels, exclude_self, margin, squared, drop)
                want = semi_hard_from_sq_dist_oracle(
                    d,
                    labels,
                    margin,
                    squared=squared,
                    fallback="drop" if drop else "easiest",
                    ref_labels=ref_for_reference,
                )
                assert_same(got, want)
    for margin in (0.0, 1.0, 3.0):
        for squared in (True, False):
            got = ops.all_semi_hard_from_sq_dist(d, labels, ref_labels, exclude_self, margin, squared)
            want = all_semi_hard_from_sq_dist_oracle(d, labels, margin, squared=squared, ref_labels=ref_for_reference)
            assert_same(got, want)
    got = ops.batch_hard_from_sq_dist(d, labels, ref_labels, exclude_self)
    assert_same(got, batch_hard_from_sq_dist_oracle(d, labels, ref_labels=ref_for_reference))


@devices()
@dtypes(*FULL)
@pytest.mark.parametrize("exclude_self", [True, False])
def test_dispatcher_ops_order_negative_entries(device, dtype, exclude_self):
    """Negative entries order below zero on every device (docs/semantics.md): the streaming and cross-batch
    paths write -1 on purpose, and a (distance, index) key built from raw IEEE bits would put every
    negative value above every positive one."""
    labels = torch.randint(4, (40,), device=device)
    d = torch.randint(-4, 6, (40, 40), device=device).to(dtype)
    for margin in (None, 1.0):
        for drop in (False, True):
            got = ops.semi_hard_from_sq_dist(d, labels, labels, exclude_self, margin, True, drop)
            ref = None if exclude_self else labels
            fallback = "drop" if drop else "easiest"
            assert_same(got, semi_hard_from_sq_dist_oracle(d, labels, margin, fallback=fallback, ref_labels=ref))
    got = ops.all_semi_hard_from_sq_dist(d, labels, labels, exclude_self, 2.0, True)
    ref = None if exclude_self else labels
    assert_same(got, all_semi_hard_from_sq_dist_oracle(d, labels, 2.0, squared=True, ref_labels=ref))
    got = ops.batch_hard_from_sq_dist(d, labels, labels, exclude_self)
    assert_same(got, batch_hard_from_sq_dist_oracle(d, labels, ref_labels=ref))


def test_many_positives_per_anchor():
    """Over 64 positives per anchor: the semi-hard kernel switches from counting thresholds linearly to
    binary search (count_below); both must give the reference's buckets, ties included."""
    labels = torch.randperm(150) % 2  # 75 images per identity, shuffled
    emb = torch.randint(-2, 3, (150, 3)).float()
    d = fx.pairwise_sq_dist(emb)
    for kwargs in ({}, {"fallback": "drop", "margin": 1.0, "squared": False}):
        assert_same(fx.semi_hard_triplets(emb, labels, **kwargs), semi_hard_from_sq_dist_oracle(d, labels, **kwargs))


@pytest.mark.parametrize("per_identity", [2, 13, 40, 70])
@pytest.mark.parametrize("spread", ["clustered", "mixed"])
def test_semi_hard_row_split_on_larger_tied_matrices(per_identity, spread):
    """The CPU row pass splits each row's negatives at its smallest and largest positive distance and
    counts buckets only in between, eight or sixteen lanes at a time: rows of 203 (lane tails), integer
    distances (ties at both split points, inside and beyond them), clustered identities (most negatives
    beyond the farthest positive) and mixed ones (most in between), against the float64 reference."""
    n = 203
    labels = torch.randperm(n) % max(2, n // per_identity)
    same = labels[:, None] == labels[None, :]
    if spread == "clustered":
        d = torch.where(same, torch.randint(0, 8, (n, n)), torch.randint(6, 20, (n, n)))
    else:
        d = torch.randint(0, 12, (n, n))
    for dtype in (torch.float32, torch.float64):
        m = d.to(dtype)
        for margin, squared, drop in ((None, True, False), (None, True, True), (2.0, False, False), (0.0, True, True)):
            got = ops.semi_hard_from_sq_dist(m, labels, labels, True, margin, squared, drop)
            fallback = "drop" if drop else "easiest"
            assert_same(got, semi_hard_from_sq_dist_oracle(m, labels, margin, squared=squared, fallback=fallback))


@pytest.mark.parametrize("shape", [(3, 0), (0, 4), (0, 0)], ids=["no reference", "no anchors", "both empty"])
def test_dispatcher_ops_on_empty_matrices(shape):
    d = torch.zeros(shape)
    labels, ref_labels = torch.arange(shape[0]) % 2, torch.arange(shape[1]) % 2
    for triplets in (
        ops.semi_hard_from_sq_dist(d, labels, ref_labels, False, None, True, False),
        ops.batch_hard_from_sq_dist(d, labels, ref_labels, False),
        ops.all_semi_hard_from_sq_dist(d, labels, ref_labels, False, 0.2, False),
    ):
        assert rows(triplets) == []


@requires_cuda
def test_cuda_indices_identical_to_cpu_on_the_same_matrix():
    emb, labels = random_batch("integers", 300, 8, 4, torch.float32, "cpu")
    d = fx.pairwise_sq_dist(emb)
    dc, lc = d.cuda(), labels.cuda()
    for margin, squared, drop in ((None, True, False), (0.5, False, True)):
        cpu = ops.semi_hard_from_sq_dist(d, labels, labels, True, margin, squared, drop)
        assert_same(tuple(t.cpu() for t in ops.semi_hard_from_sq_dist(dc, lc, lc, True, margin, squared, drop)), cpu)
    assert_same(
        tuple(t.cpu() for t in ops.batch_hard_from_sq_dist(dc, lc, lc, True)),
        ops.batch_hard_from_sq_dist(d, labels, labels, True),
    )
    got = ops.all_semi_hard_from_sq_dist(dc, lc, lc, True, 1.0, False)
    assert_same(tuple(t.cpu() for t in got), ops.all_semi_hard_from_sq_dist(d, labels, labels, True, 1.0, False))


# ---------------------------------------------------------------------------------------------------
# end to end on small-integer embeddings (hypothesis): B = 1, one identity, singletons, duplicates,
# all-equal points, huge and tiny norms, every float dtype
# ---------------------------------------------------------------------------------------------------
@given(
    batch=labelled_batches(),
    margin=st.sampled_from((None,) + MARGINS),
    squared=st.booleans(),
    fallback=st.sampled_from(["easiest", "drop"]),
)
def test_semi_hard_end_to_end(batch, margin, squared, fallback):
    emb, labels, k = batch
    m = scaled(margin, k, squared)
    got = fx.semi_hard_triplets(emb, labels, m, squared=squared, fallback=fallback)
    assert_same(got, semi_hard_triplets_oracle(emb, labels, m, squared=squared, fallback=fallback))
    d = fx.pairwise_sq_dist(emb)
    assert_same(got, semi_hard_from_sq_dist_oracle(d, labels, m, squared=squared, fallback=fallback))


@given(batch=labelled_batches())
def test_batch_hard_end_to_end(batch):
    emb, labels, _ = batch
    got = fx.batch_hard_triplets(emb, labels)
    assert_same(got, batch_hard_triplets_oracle(emb, labels))
    assert_same(got, batch_hard_from_sq_dist_oracle(fx.pairwise_sq_dist(emb), labels))


@given(batch=labelled_batches(), margin=st.sampled_from(MARGINS), squared=st.booleans())
def test_all_semi_hard_end_to_end(batch, margin, squared):
    emb, labels, k = batch
    m = scaled(margin, k, squared)
    got = fx.all_semi_hard_triplets(emb, labels, m, squared=squared)
    assert_same(got, all_semi_hard_triplets_oracle(emb, labels, m, squared=squared))
    d = fx.pairwise_sq_dist(emb)
    assert_same(got, all_semi_hard_from_sq_dist_oracle(d, labels, m, squared=squared))


def test_margin_decisions_on_integer_distances_agree_in_float32_and_float64():
    """What the end-to-end tests rely on: for integer squared distances up to 300 (the strategies stay below
    108) and the margins they draw, float32 and float64 make the same margin decisions, so the float32 op
    and the float64 reference must agree exactly."""
    n = torch.arange(301, dtype=torch.float64)
    for margin in MARGINS:
        for squared in (True, False):
            m64 = n if squared else n.sqrt()
            m32 = n.float() if squared else n.float().sqrt()
            inside64 = m64.unsqueeze(1) < m64.unsqueeze(0) + margin
            inside32 = m32.unsqueeze(1) < m32.unsqueeze(0) + torch.tensor(margin)
            assert torch.equal(inside64, inside32)
            diff64, diff32 = m64.unsqueeze(1) - m64.unsqueeze(0), m32.unsqueeze(1) - m32.unsqueeze(0)
            assert torch.equal((diff64 > 0) & (diff64 <= margin), (diff32 > 0) & (diff32 <= torch.tensor(margin)))


@given(batch=labelled_batches(scaled=False), seed=st.integers(0, 2**31 - 1))
def test_only_label_equality_matters(batch, seed):
    """Relabelling identities injectively (negative and huge int64 values included) changes nothing."""
    emb, labels, _ = batch
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(-(2**62), 2**62, (4,), generator=g).unique()
    if values.numel() < 4:
        return
    relabelled = values[labels.long()]
    for miner in (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets):
        assert_same(miner(emb, relabelled), miner(emb, labels))


# ---------------------------------------------------------------------------------------------------
# hand-worked example: points on a line, worked out on paper from DESIGN.md's definitions
# ---------------------------------------------------------------------------------------------------
LINE = torch.tensor([[0.0], [1.0], [2.0], [5.0], [3.0]])
LINE_LABELS = torch.tensor([0, 0, 1, 1, 0])


@pytest.mark.parametrize(
    "kwargs, want",
    [
        ({}, [(0, 1, 2), (0, 4, 3), (1, 0, 3), (1, 4, 3), (2, 3, 0), (3, 2, 1), (4, 0, 3), (4, 1, 3)]),
        # (1, 0): D_ap = 1 and negative 2 is at exactly 1, not farther: negative 3 is the semi-hard one.
        # (4, 1): D_ap = 4 and negative 3 is at exactly 4: no semi-hard negative, so the pair falls back.
        ({"fallback": "drop"}, [(0, 1, 2), (0, 4, 3), (1, 0, 3), (1, 4, 3), (3, 2, 1)]),
        ({"margin": 8.0}, [(0, 1, 2), (2, 3, 0), (3, 2, 1), (4, 0, 3), (4, 1, 3)]),
        ({"margin": 7.0}, [(0, 1, 2), (2, 3, 0), (4, 0, 3), (4, 1, 3)]),  # (3, 2, 1): 16 < 9 + 7 fails
        ({"margin": 1.0, "squared": False}, [(2, 3, 0), (4, 0, 3), (4, 1, 3)]),  # (0, 1, 2): 2 < 1 + 1 fails
    ],
)
def test_semi_hard_by_hand(kwargs, want):
    assert rows(fx.semi_hard_triplets(LINE, LINE_LABELS, **kwargs)) == want


def test_batch_hard_by_hand():
    # Anchor 2's closest negatives 1 and 4 tie at squared distance 1: the smaller index wins.
    want = [(0, 4, 2), (1, 4, 2), (2, 3, 1), (3, 2, 4), (4, 0, 2)]
    assert rows(fx.batch_hard_triplets(LINE, LINE_LABELS)) == want


@pytest.mark.parametrize(
    "margin, want",
    [
        (1.0, [(0, 1, 2), (3, 2, 1)]),  # D_an - D_ap = 1 exactly is inside (<= margin)
        (2.0, [(0, 1, 2), (0, 4, 3), (1, 4, 3), (3, 2, 0), (3, 2, 1)]),
        (0.0, []),
    ],
)
def test_all_semi_hard_by_hand(margin, want):
    assert rows(fx.all_semi_hard_triplets(LINE, LINE_LABELS, margin)) == want


# ---------------------------------------------------------------------------------------------------
# properties checked on the op's output directly, without the reference
# ---------------------------------------------------------------------------------------------------
@devices()
@pytest.mark.parametrize("kind", ["gaussian", "integers"])
def test_semi_hard_properties(device, kind):
    emb, labels = random_batch(kind, 60, 6, 4, torch.float32, device)
    d = fx.pairwise_sq_dist(emb).cpu()
    labels_c = labels.cpu()
    a, p, n = (t.cpu() for t in fx.semi_hard_triplets(emb, labels))
    same = labels_c.unsqueeze(1) == labels_c.unsqueeze(0)
    assert (same[a, p] & (a != p) & ~same[a, n]).all()
    has_negative = (~same).any(1)
    pairs = same & ~torch.eye(60, dtype=torch.bool) & has_negative.unsqueeze(1)
    assert len(a) == pairs.sum()  # one triplet per ordered anchor-positive pair whose anchor has a negative
    d_ap, d_an = d[a, p], d[a, n]
    for t in range(len(a)):
        negatives = ~same[a[t]]
        farther = negatives & (d[a[t]] > d_ap[t])
        if farther.any():  # semi-hard: farther than the positive, and the closest such, smallest index on ties
            assert d_an[t] > d_ap[t]
            assert d_an[t] == d[a[t]][farther].min()
            assert n[t] == farther.nonzero()[(d[a[t]][farther] == d_an[t]).nonzero()[0]].item()
        else:  # fallback: the farthest negative
            assert d_an[t] == d[a[t]][negatives].max()
    drop = fx.semi_hard_triplets(emb, labels, fallback="drop")
    assert (d[drop[0].cpu(), drop[2].cpu()] > d[drop[0].cpu(), drop[1].cpu()]).all()


@devices()
def test_batch_hard_properties(device):
    emb, labels = random_batch("integers", 60, 6, 4, torch.float32, device)
    d = fx.pairwise_sq_dist(emb).cpu()
    labels_c = labels.cpu()
    a, p, n = (t.cpu() for t in fx.batch_hard_triplets(emb, labels))
    same = labels_c.unsqueeze(1) == labels_c.unsqueeze(0)
    eligible = (same & ~torch.eye(60, dtype=torch.bool)).any(1) & (~same).any(1)
    assert torch.equal(a, eligible.nonzero().squeeze(1))
    pos_d = torch.where(same & ~torch.eye(60, dtype=torch.bool), d, -1.0)
    neg_d = torch.where(~same, d, float("inf"))
    assert torch.equal(d[a, p], pos_d[a].max(1).values) and torch.equal(d[a, n], neg_d[a].min(1).values)
    assert ((pos_d[a] == d[a, p].unsqueeze(1)).int().argmax(1) == p).all()  # first index of the maximum
    assert ((neg_d[a] == d[a, n].unsqueeze(1)).int().argmax(1) == n).all()


@devices()
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_all_semi_hard_properties(device, squared):
    emb, labels = random_batch("integers", 30, 4, 3, torch.float32, device)
    margin = 1.5
    d = fx.pairwise_sq_dist(emb).cpu()
    metric = d if squared else d.sqrt()
    labels_c = labels.cpu()
    got = set(rows(fx.all_semi_hard_triplets(emb, labels, margin, squared=squared)))
    want = {
        (a, p, n)
        for a in range(30)
        for p in range(30)
        for n in range(30)
        if p != a and labels_c[p] == labels_c[a] != labels_c[n] and 0 < metric[a, n] - metric[a, p] <= margin
    }
    assert got == want


@devices()
@dtypes(*FULL)
def test_outputs_sorted_int64_on_input_device(device, dtype):
    emb, labels = random_batch("integers", 50, 5, 3, dtype, device)
    for miner, key_len in ((fx.semi_hard_triplets, 2), (fx.batch_hard_triplets, 1), (fx.all_semi_hard_triplets, 3)):
        triplets = miner(emb, labels)
        assert all(t.device == emb.device for t in triplets)
        keys = [r[:key_len] for r in rows(triplets)]
        assert len(keys) > 0 and keys == sorted(keys) and len(set(keys)) == len(keys)  # strictly increasing


def test_selection_does_not_depend_on_squared():
    emb, labels = random_batch("integers", 50, 5, 3, torch.float32, "cpu")
    for fallback in ("easiest", "drop"):
        assert_same(
            fx.semi_hard_triplets(emb, labels, squared=True, fallback=fallback),
            fx.semi_hard_triplets(emb, labels, squared=False, fallback=fallback),
        )


def test_batch_hard_takes_no_squared():
    """Its selection cannot depend on the distance's monotone transform, so `squared` is refused rather
    than silently ignored."""
    emb, labels = random_batch("integers", 20, 4, 3, torch.float32, "cpu")
    with pytest.raises(TypeError, match="squared"):
        fx.batch_hard_triplets(emb, labels, squared=False)


# ---------------------------------------------------------------------------------------------------
# degenerate batches
# ---------------------------------------------------------------------------------------------------
MINERS = [fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets]


@devices()
@pytest.mark.parametrize("miner", MINERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "labels",
    [[0], [3, 3, 3, 3], [0, 1, 2, 3], [7, 9]],
    ids=["B=1", "one identity", "all singletons", "two singletons"],
)
def test_nothing_to_mine(device, miner, labels):
    labels = torch.tensor(labels, device=device)
    emb = torch.randn(len(labels), 4, device=device)
    assert rows(miner(emb, labels)) == []


def test_all_equal_embeddings():
    emb, labels = torch.ones(6, 3), torch.tensor([0, 0, 1, 1, 0, 1])
    # No negative is farther than any positive: every pair falls back, to the first negative (ties).
    assert rows(fx.semi_hard_triplets(emb, labels)) == [
        (a, p, 2 if labels[a] == 0 else 0) for a in range(6) for p in range(6) if p != a and labels[p] == labels[a]
    ]
    assert rows(fx.semi_hard_triplets(emb, labels, fallback="drop")) == []
    assert rows(fx.semi_hard_triplets(emb, labels, 0.0)) == []  # D_an < D_ap + 0 fails at equality
    assert rows(fx.batch_hard_triplets(emb, labels)) == [
        (0, 1, 2),
        (1, 0, 2),
        (2, 3, 0),
        (3, 2, 0),
        (4, 0, 2),
        (5, 2, 0),
    ]
    assert rows(fx.all_semi_hard_triplets(emb, labels, 1.0)) == []


# ---------------------------------------------------------------------------------------------------
# pytorch-metric-learning's TripletMarginMiner(type_of_triplets="semihard")
# ---------------------------------------------------------------------------------------------------
def pml_semihard(emb, labels, margin):
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.miners import TripletMarginMiner

    miner = TripletMarginMiner(
        margin=margin, type_of_triplets="semihard", distance=LpDistance(normalize_embeddings=False)
    )
    return sorted(rows(tuple(t.long() for t in miner(emb, labels))))


@given(batch=labelled_batches(scaled=False, dtype=torch.float32), margin=st.sampled_from(MARGINS))
def test_all_semi_hard_matches_pytorch_metric_learning(batch, margin):
    emb, labels, _ = batch
    assert rows(fx.all_semi_hard_triplets(emb, labels, margin)) == pml_semihard(emb, labels.long(), margin)


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
def test_all_semi_hard_matches_pytorch_metric_learning_larger_batch(margin):
    # B > 25 takes torch.cdist's matrix-multiply path inside the library; small integers keep it exact.
    emb, labels = random_batch("integers", 64, 6, 3, torch.float32, "cpu")
    got = rows(fx.all_semi_hard_triplets(emb, labels, margin))
    assert len(got) > 0 and got == pml_semihard(emb, labels, margin)


# ---------------------------------------------------------------------------------------------------
# dispatcher: opcheck and torch.compile
# ---------------------------------------------------------------------------------------------------
@devices()
@dtypes(*FULL)
@pytest.mark.parametrize("exclude_self", [True, False])
def test_opcheck(device, dtype, exclude_self):
    emb, labels = random_batch("integers", 24, 4, 3, dtype, device)
    d = fx.pairwise_sq_dist(emb)
    for args in ((None, True, False), (0.5, False, True)):
        torch.library.opcheck(ops.semi_hard_from_sq_dist.default, (d, labels, labels, exclude_self, *args))
    torch.library.opcheck(ops.batch_hard_from_sq_dist.default, (d, labels, labels, exclude_self))
    torch.library.opcheck(ops.all_semi_hard_from_sq_dist.default, (d, labels, labels, exclude_self, 1.0, False))


@devices()
@pytest.mark.parametrize("miner", MINERS, ids=lambda f: f.__name__)
def test_compile_fullgraph(device, miner):
    compiled = torch.compile(miner, fullgraph=True, backend="aot_eager")
    for batch in (20, 33):  # a second shape: the data-dependent output size stays symbolic
        emb, labels = random_batch("integers", batch, 4, 3, torch.float32, device)
        assert_same(compiled(emb, labels), miner(emb, labels))
