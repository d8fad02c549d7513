"""facenet_ext.pml's miners against pytorch-metric-learning's on the same inputs: in float64 the same
triplets in the same order; PML's own bookkeeping (num_triplets, collect_stats, ref_emb/ref_labels)."""

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.miners import BaseMiner

import facenet_ext as fx
from facenet_ext import pml

from params import devices
from pml_cases import DISTANCES, assert_same_triplets, batch, layouts

TYPES = ("semihard", "hard", "all", "easy")


@devices()
@pytest.mark.parametrize("distance", list(DISTANCES))
@pytest.mark.parametrize("kind", TYPES)
def test_triplet_margin_miner_equals_pml(kind, distance, device):
    emb, labels = batch(b=40, device=device)
    emb = emb * 0.6  # unnormalised distances near the margin too, so every window is populated
    margin = 0.3
    theirs = pml_miners.TripletMarginMiner(margin, kind, distance=DISTANCES[distance]())(emb, labels)
    miner = pml.TripletMarginMiner(margin, kind, distance=DISTANCES[distance]())
    ours = miner(emb, labels)
    assert theirs[0].numel() > 0
    assert_same_triplets(ours, theirs)
    assert isinstance(miner, BaseMiner) and miner.num_triplets == theirs[0].numel()


@devices()
@pytest.mark.parametrize("distance", list(DISTANCES))
def test_batch_hard_miner_equals_pml(distance, device):
    emb, labels = batch(b=40, device=device)
    theirs = pml_miners.BatchHardMiner(distance=DISTANCES[distance]())(emb, labels)
    miner = pml.BatchHardMiner(distance=DISTANCES[distance]())
    assert_same_triplets(miner(emb, labels), theirs)
    assert miner.num_triplets == theirs[0].numel() == 40


@pytest.mark.parametrize("kind", ("semihard", "all"))
@pytest.mark.parametrize("shared_labels", [False, True], ids=["other_labels", "ref_labels_is_labels"])
def test_reference_set_equals_pml(kind, shared_labels):
    """PML drops (i, i) from the positives exactly when ``ref_labels is labels``."""
    emb, labels = batch(b=24)
    ref_emb, ref_labels = batch(b=24 if shared_labels else 30)
    ref_labels = labels if shared_labels else ref_labels
    for miner_cls, ours_cls in (
        (pml_miners.TripletMarginMiner, pml.TripletMarginMiner),
        (pml_miners.BatchHardMiner, pml.BatchHardMiner),
    ):
        kwargs = {"type_of_triplets": kind} if miner_cls is pml_miners.TripletMarginMiner else {}
        theirs = miner_cls(**kwargs)(emb, labels, ref_emb, ref_labels)
        ours = ours_cls(**kwargs)(emb, labels, ref_emb, ref_labels)
        assert_same_triplets(ours, theirs)


def test_explicit_ref_of_the_batch_is_the_batch():
    emb, labels = batch()
    miner = pml.TripletMarginMiner(type_of_triplets="semihard")
    assert_same_triplets(miner(emb, labels, emb, labels), miner(emb, labels))


@pytest.mark.parametrize("kind", TYPES)
def test_layouts(kind):
    """Every tensor argument in transposed / strided storage gives the contiguous result."""
    emb, labels = batch(b=30)
    ref_emb, ref_labels = batch(b=26)
    miner = pml.TripletMarginMiner(0.3, kind)
    want = miner(emb, labels)
    want_ref = miner(emb, labels, ref_emb, ref_labels)
    for e in layouts(emb).values():
        for y in layouts(labels).values():
            assert_same_triplets(miner(e, y), want)
        for r in layouts(ref_emb).values():
            for ry in layouts(ref_labels).values():
                assert_same_triplets(miner(e, labels, r, ry), want_ref)
    bh = pml.BatchHardMiner()
    want = bh(emb, labels)
    for e in layouts(emb).values():
        for y in layouts(labels).values():
            assert_same_triplets(bh(e, y), want)


def test_float32_agrees_up_to_window_edges():
    """In float32 the two compute the distances differently (cdist vs our Gram expansion): only triplets
    within rounding of a window edge may differ."""
    emb, labels = batch(b=64, d=16, dtype=torch.float32)
    theirs = pml_miners.TripletMarginMiner(0.2, "semihard")(emb, labels)
    ours = pml.TripletMarginMiner(0.2, "semihard")(emb, labels)
    key = lambda t: set(zip(*(x.tolist() for x in t)))  # noqa: E731
    differ = key(theirs) ^ key(ours)
    assert len(differ) <= 1e-3 * len(key(theirs)) + 2


@pytest.mark.parametrize("distance", ["lp_normalized", "lp_raw", "cosine"])
def test_collect_stats_match_pml(distance):
    """PML's recordable statistics: the means over every triplet (computed from pair sums here)."""
    emb, labels = batch(b=30)
    theirs = pml_miners.TripletMarginMiner(0.2, "all", distance=DISTANCES[distance](), collect_stats=True)
    ours = pml.TripletMarginMiner(0.2, "all", distance=DISTANCES[distance](), collect_stats=True)
    theirs(emb, labels)
    ours(emb, labels)
    for name in ("pos_pair_dist", "neg_pair_dist", "avg_triplet_margin"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-10, abs=1e-12), name
    theirs = pml_miners.BatchHardMiner(distance=DISTANCES[distance](), collect_stats=True)
    ours = pml.BatchHardMiner(distance=DISTANCES[distance](), collect_stats=True)
    theirs(emb, labels)
    ours(emb, labels)
    for name in ("hardest_triplet", "easiest_triplet", "hardest_pos_pair", "easiest_neg_pair"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-10, abs=1e-12), name


def test_miner_output_feeds_pml_loss():
    """Our indices_tuple is PML's: PML's own loss takes it and gives what PML's miner leads to."""
    emb, labels = batch()
    want = pml_losses.TripletMarginLoss(0.2)(emb, labels, pml_miners.TripletMarginMiner(0.2, "semihard")(emb, labels))
    got = pml_losses.TripletMarginLoss(0.2)(emb, labels, pml.TripletMarginMiner(0.2, "semihard")(emb, labels))
    assert torch.equal(got, want)


def _facenet_rule(mat, labels, margin, inverted):
    """FaceNet eq. 4 by brute force on PML's distance matrix: per ordered positive pair, the closest
    negative farther than the positive, else the farthest negative; with a margin, only d_an < d_ap + m."""
    d = -mat if inverted else mat
    out = []
    for a in range(len(labels)):
        negs = (labels != labels[a]).nonzero().flatten()
        for p in (labels == labels[a]).nonzero().flatten().tolist():
            if p == a or negs.numel() == 0:
                continue
            farther = negs[d[a, negs] > d[a, p]]
            n = farther[d[a, farther].argmin()] if farther.numel() else negs[d[a, negs].argmax()]
            if margin is None or d[a, n] < d[a, p] + margin:
                out.append((a, p, int(n)))
    return out


@pytest.mark.parametrize("distance", list(DISTANCES))
@pytest.mark.parametrize("margin", [None, 0.1])
def test_facenet_per_pair_miner(distance, margin):
    emb, labels = batch(b=30)
    dist = DISTANCES[distance]()
    miner = pml.FaceNetPerPairSemiHardMiner(margin=margin, distance=dist)
    got = list(zip(*(t.tolist() for t in miner(emb, labels))))
    assert got == _facenet_rule(dist(emb), labels, margin, dist.is_inverted)
    assert miner.num_triplets == len(got)


def test_facenet_per_pair_is_not_pml_semihard():
    """The naming trap the class name guards against: one negative per pair against every negative."""
    emb, labels = batch(b=40)
    x = torch.nn.functional.normalize(emb, dim=1)
    per_pair = pml.FaceNetPerPairSemiHardMiner()(emb, labels)
    assert_same_triplets(per_pair, fx.semi_hard_triplets(x, labels, squared=False))
    every = pml.TripletMarginMiner(0.2, "semihard")(emb, labels)
    assert_same_triplets(every, fx.all_semi_hard_triplets(x, labels, 0.2))
    positive_pairs = sum(int((labels == c).sum()) * (int((labels == c).sum()) - 1) for c in labels.unique())
    assert per_pair[0].numel() == positive_pairs != every[0].numel()
