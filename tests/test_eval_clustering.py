"""Clustering and identification metrics (facenet_ext.eval.clustering, .identification): hand cases,
brute force and scikit-learn references, threshold semantics, and bad input."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier

import facenet_ext.eval as fe
from facenet_ext.eval.clustering import (
    DEFAULT_CLUSTER_THRESHOLD,
    LINKAGES,
    best_f1_threshold,
    cluster,
    clustering_scores,
    cut_into,
    f1_sweep,
    pairwise_scores,
)
from facenet_ext.eval.identification import gallery_probe_split, identification_accuracy, rank_accuracy


@pytest.fixture
def rng(fresh_seed):
    return np.random.default_rng(fresh_seed)


def on_circle(degrees):
    """Unit vectors in the plane at these angles: Euclidean distance 2 sin(angle difference / 2)."""
    a = np.radians(degrees)
    return np.c_[np.cos(a), np.sin(a)]


def brute_pairwise(t, p):
    pairs = list(itertools.combinations(range(len(t)), 2))
    true = {(i, j) for i, j in pairs if t[i] == t[j]}
    pred = {(i, j) for i, j in pairs if p[i] == p[j]}
    tp = len(true & pred)
    prec = tp / len(pred) if pred else 0.0
    rec = tp / len(true) if true else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if tp else 0.0)


# ---------------------------------------------------------------------------------------------------
# pairwise precision / recall / F
# ---------------------------------------------------------------------------------------------------
def test_pairwise_scores_hand_case():
    # True pairs: (0,1) (0,2) (1,2) (3,4); predicted: (0,1) (2,3) (2,4) (3,4); both: (0,1) (3,4).
    assert pairwise_scores([0, 0, 0, 1, 1], [5, 5, 7, 7, 7]) == (0.5, 0.5, 0.5)
    # Everything in one cluster: all 10 pairs predicted, the 4 true ones among them.
    assert pairwise_scores([0, 0, 0, 1, 1], [0] * 5) == pytest.approx((0.4, 1.0, 2 * 0.4 / 1.4))


def test_pairwise_scores_all_singletons_is_zero():
    assert pairwise_scores([0, 0, 1, 1], [0, 1, 2, 3]) == (0.0, 0.0, 0.0)


def test_pairwise_scores_match_brute_force(rng):
    t, p = rng.integers(0, 5, 40), rng.integers(0, 6, 40)
    assert pairwise_scores(t, p) == pytest.approx(brute_pairwise(t, p))


def test_pairwise_scores_take_names():
    assert pairwise_scores(["ann", "ann", "bo"], np.array([3, 3, 1])) == (1.0, 1.0, 1.0)


# ---------------------------------------------------------------------------------------------------
# clustering
# ---------------------------------------------------------------------------------------------------
def test_cluster_threshold_is_euclidean_and_strict():
    # 0° and 30° are 2 sin 15° = 0.518 apart; 180° is far from both.
    emb = on_circle([0, 30, 180])
    gap = 2 * np.sin(np.radians(15))
    assert cluster(emb, threshold=gap + 1e-9).tolist() in ([0, 0, 1], [1, 1, 0])
    assert len(set(cluster(emb, threshold=gap - 1e-9).tolist())) == 3
    # Scaling a row changes nothing: embeddings are L2-normalised first.
    np.testing.assert_array_equal(cluster(emb * [[5.0], [0.1], [2.0]], threshold=0.6), cluster(emb, threshold=0.6))


def test_clustering_scores_separable(rng):
    labels = np.repeat(np.arange(6), 5)
    centres = np.linalg.qr(rng.normal(size=(16, 6)))[0].T
    emb = centres[labels] + 0.03 * rng.normal(size=(30, 16))
    s = clustering_scores(emb, labels)
    assert (s["precision"], s["recall"], s["f1"], s["n_clusters"]) == (1.0, 1.0, 1.0, 6)
    assert s["nmi"] == pytest.approx(1.0) and s["threshold"] == DEFAULT_CLUSTER_THRESHOLD


def test_clustering_scores_nmi_is_sklearns(rng):
    labels = rng.integers(0, 4, 30)
    emb = rng.normal(size=(30, 3))
    s = clustering_scores(emb, labels, threshold=0.8, linkage="complete")
    pred = cluster(emb, threshold=0.8, linkage="complete")
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(labels, pred))
    assert s["f1"] == pytest.approx(brute_pairwise(labels, pred)[2])


@pytest.mark.parametrize("linkage", LINKAGES)
def test_f1_sweep_matches_reclustering(rng, linkage):
    labels = rng.integers(0, 5, 40)
    emb = rng.normal(size=(5, 8))[labels] + 0.7 * rng.normal(size=(40, 8))
    thresholds, f1 = f1_sweep(emb, labels, linkage=linkage)
    assert np.all(np.diff(thresholds) > 0) and len(thresholds) == 40
    for t, f in zip(thresholds, f1):
        pred = cluster(emb, threshold=t, linkage=linkage)
        assert f == pytest.approx(pairwise_scores(labels, pred).f1, abs=1e-12), t
    assert f1[0] == 0.0 and f1[-1] == pytest.approx(brute_pairwise(labels, np.zeros(40))[2])


def test_f1_sweep_skips_unreachable_cuts():
    # Two exact duplicates merge at distance 0: no threshold > 0 keeps them apart.
    emb = on_circle([0, 0, 90, 200])
    thresholds, f1 = f1_sweep(emb, [0, 0, 1, 1])
    assert len(thresholds) == 3 and thresholds[0] > 0
    assert f1[0] == pytest.approx(2 / 3)  # the duplicates together: precision 1, recall 1/2


def test_best_f1_threshold_is_the_sweeps_best_and_optimistic(rng):
    labels = rng.integers(0, 5, 40)
    emb = rng.normal(size=(5, 8))[labels] + 0.7 * rng.normal(size=(40, 8))
    t, best = best_f1_threshold(emb, labels)
    assert best == f1_sweep(emb, labels)[1].max()
    oracle = clustering_scores(emb, labels, threshold=None)
    assert (oracle["threshold"], oracle["f1"]) == (t, pytest.approx(best))
    assert best >= clustering_scores(emb, labels)["f1"]


# ---------------------------------------------------------------------------------------------------
# identification
# ---------------------------------------------------------------------------------------------------
def test_rank_accuracy_hand_case():
    # Gallery: identity 0 at 0°, 1 at 90°, 2 at 180°. Probes: of identity 0 at 10° (nearest 0: rank 1)
    # and at 80° (1, then 0: rank 2); of identity 2 at 100° (1 at 10°, then 2 at 80°: rank 2).
    g = on_circle([0, 90, 180])
    p = on_circle([10, 80, 100])
    acc = rank_accuracy(p, [0, 0, 2], g, [0, 1, 2], topk=(1, 2, 3))
    assert acc == {1: pytest.approx(1 / 3), 2: 1.0, 3: 1.0}


def test_rank_accuracy_uses_the_nearest_gallery_image_per_identity():
    # Identity 1 has two gallery images; the probe is nearest to the second one.
    g = on_circle([0, 170, 45])
    assert rank_accuracy(on_circle([50]), [1], g, [0, 1, 1], topk=(1,)) == {1: 1.0}


def test_rank_accuracy_ties_count_against_the_probe():
    same = np.ones((4, 3))
    assert rank_accuracy(same[:2], [0, 1], same[2:], [0, 1], topk=(1, 2)) == {1: 0.0, 2: 1.0}


def test_identification_matches_1nn(rng):
    labels = np.repeat(np.arange(8), 6)
    emb = rng.normal(size=(8, 16))[labels] + 1.2 * rng.normal(size=(48, 16))
    gallery, probe = gallery_probe_split(labels, n_gallery=1, seed=4)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    knn = KNeighborsClassifier(n_neighbors=1).fit(unit[gallery], labels[gallery])
    expected = np.mean(knn.predict(unit[probe]) == labels[probe])
    assert identification_accuracy(emb, labels, topk=(1,), seed=4)[1] == pytest.approx(expected)


def test_gallery_probe_split():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    g, p = gallery_probe_split(labels, n_gallery=2, seed=0)
    assert sorted(np.r_[g, p].tolist()) == list(range(8))
    assert np.bincount(labels[g]).tolist() == [2, 2, 1]  # identity 2 has one item: gallery only
    g2, _ = gallery_probe_split(labels, n_gallery=2, seed=0)
    np.testing.assert_array_equal(g, g2)
    assert {tuple(gallery_probe_split(labels, n_gallery=2, seed=s)[0]) for s in range(20)} != {tuple(g)}


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: cluster(np.ones((3, 2)), linkage="median"), ValueError, "cluster: unknown linkage 'median'"),
        (lambda: cluster(np.ones((3, 2)), threshold=0), ValueError, "cluster: threshold must be a finite number > 0"),
        (lambda: cluster(np.ones((3, 2)), threshold=np.inf), ValueError, "threshold must be a finite number"),
        (lambda: pairwise_scores([0, 1], [0, 1, 2]), ValueError, "labels_pred has length 3 but there are 2"),
        (lambda: clustering_scores(np.ones((3, 2)), [0, 1]), ValueError, "labels has length 2 but there are 3"),
        (
            lambda: rank_accuracy(np.ones((1, 2)), [0], np.ones((1, 3)), [0]),
            ValueError,
            "gallery_emb has width 3 but probe_emb has 2",
        ),
        (
            lambda: rank_accuracy(np.ones((1, 2)), [5], np.ones((1, 2)), [0]),
            ValueError,
            "1 probe identities have no gallery image",
        ),
        (
            lambda: rank_accuracy(np.ones((1, 2)), [0], np.ones((2, 2)), [0]),
            ValueError,
            r"gallery_labels must be 1-D with one label per row \(2\)",
        ),
        (
            lambda: rank_accuracy(np.ones((1, 2)), [0], np.ones((1, 2)), [0], topk=(0,)),
            ValueError,
            r"topk\[0\] must be an int >= 1, got 0",
        ),
        (lambda: identification_accuracy(np.ones((3, 2)), [0, 1, 2]), ValueError, "no identity has more than"),
        (lambda: gallery_probe_split([0, 1], n_gallery=0), ValueError, "n_gallery must be an int >= 1"),
    ],
)
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


EMB6, LABELS6 = on_circle([0, 10, 100, 110, 200, 210]), [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "call, fn, msg",
    [
        (lambda: clustering_scores(EMB6, LABELS6, linkage="median"), "clustering_scores", "unknown linkage"),
        (lambda: clustering_scores(EMB6, LABELS6, threshold=None, linkage="x"), "clustering_scores", "unknown linkage"),
        (lambda: clustering_scores(EMB6, LABELS6, n_clusters=9), "clustering_scores", "n_clusters must be"),
        (lambda: clustering_scores(EMB6, LABELS6, threshold=-1), "clustering_scores", "threshold must be"),
        (lambda: best_f1_threshold(EMB6, LABELS6, linkage="x"), "best_f1_threshold", "unknown linkage"),
        (lambda: best_f1_threshold(EMB6[:, :0], LABELS6), "best_f1_threshold", "emb has zero width"),
        (lambda: identification_accuracy(EMB6, LABELS6, topk=(0,)), "identification_accuracy", r"topk\[0\] must be"),
        (lambda: identification_accuracy(EMB6, LABELS6, n_gallery=0), "identification_accuracy", "n_gallery must be"),
    ],
)
def test_errors_name_the_function_called(call, fn, msg):
    """Not the function it calls (cut_into, f1_sweep, rank_accuracy, gallery_probe_split, ...)."""
    with pytest.raises(ValueError, match=f"^{fn}: {msg}"):
        call()


def test_evaluate_embeddings_cuts_into_as_many_clusters_as_identities():
    # Four identities, perfectly separated (AUC 1, rank-1 1) but all within Euclidean distance 1 of each
    # other: a fixed cut at 1.0 put everything into one cluster (F 0.4, NMI 0); the cut by the number of
    # identities recovers them exactly.
    rng = np.random.default_rng(0)
    centre = np.r_[1.0, np.zeros(15)]
    directions = np.eye(16)[1:5] * 0.25
    emb = np.concatenate([centre + d + rng.normal(0, 0.005, (6, 16)) for d in directions])
    labels = np.repeat(np.arange(4), 6)
    m = fe.evaluate_embeddings(emb, labels)
    assert m["auc"] == 1.0 and m["knn_top1"] == 1.0
    assert m["cluster_f1"] == 1.0 and m["cluster_nmi"] == pytest.approx(1.0)
    fixed = clustering_scores(emb, labels, threshold=1.0)
    assert fixed["n_clusters"] == 1 and fixed["nmi"] == pytest.approx(0.0)
    pred, threshold = cut_into(emb, 4)
    assert len(set(pred.tolist())) == 4
    assert np.array_equal(cluster(emb, threshold=threshold), pred)  # the reported threshold reproduces the cut
    assert fe.evaluate_embeddings(emb, labels, cluster_threshold=1.0)["cluster_f1"] < 0.5
    with pytest.raises(ValueError, match="n_clusters"):
        cut_into(emb, 0)
