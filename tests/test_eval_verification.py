"""Verification metrics (facenet_ext.eval.verification) and evaluate_embeddings: against scikit-learn and
SciPy on random data, against hand-computed tiny cases, and bad input."""

import importlib
import types

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

import facenet_ext.eval as fe
from facenet_ext.eval import verification as ver
from facenet_ext.eval.pairs import all_pairs, pair_sq_dist

# Four pairs: same at 0.1 and 0.3, different at 0.2 and 0.4.
DIST = np.array([0.1, 0.2, 0.3, 0.4])
SAME = np.array([True, False, True, False])


def random_pairs(rng, n=400, ties=False):
    issame = rng.random(n) < 0.3
    dist = rng.normal(size=n) + np.where(issame, 0.0, 1.0)
    if ties:
        dist = np.round(dist, 1)  # many exactly equal distances, of both kinds
    issame[:2] = [True, False]
    return dist, issame


@pytest.fixture
def rng(fresh_seed):
    return np.random.default_rng(fresh_seed)


# ---------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------
def test_roc_hand_case():
    r = ver.roc(DIST, SAME)
    np.testing.assert_array_equal(r.thresholds, [-np.inf, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(r.far, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_array_equal(r.val, [0, 0.5, 0.5, 1, 1])
    assert (r.n_same, r.n_diff) == (2, 2)


@pytest.mark.parametrize(
    "threshold, val, far", [(0.05, 0, 0), (0.1, 0.5, 0), (0.25, 0.5, 0.5), (0.3, 1, 0.5), (9, 1, 1)]
)
def test_val_far_hand_case(threshold, val, far):
    assert ver.val_far(DIST, SAME, threshold) == (val, far)


def test_auc_and_eer_hand_case():
    # Of the 4 (same, different) combinations, the same pair is nearer in 3: 0.1<0.2, 0.1<0.4, 0.3<0.4.
    assert ver.auc(DIST, SAME) == pytest.approx(0.75)
    # At d in [0.2, 0.3): FAR = 1/2 and VAL = 1/2, so FRR = 1/2 = FAR.
    assert ver.eer(DIST, SAME) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "target, val, far, threshold",
    [
        (0.0, 0.5, 0.0, 0.1),  # the largest threshold with no false accept: the nearest different pair stays out
        (0.25, 0.5, 0.0, 0.15),  # FAR goes 0 -> 0.5 between d = 0.1 and 0.2: a quarter is halfway
        (0.5, 1.0, 0.5, 0.3),
        (1.0, 1.0, 1.0, 0.4),
    ],
)
def test_val_at_far_hand_case(target, val, far, threshold):
    point = ver.val_at_far(DIST, SAME, target)
    assert (point.val, point.far) == (val, far)
    assert point.threshold == pytest.approx(threshold)


def test_val_at_far_below_the_nearest_pair_accepts_nothing():
    point = ver.val_at_far([0.1, 0.2], [False, True], 0.0)
    assert (point.val, point.far) == (0.0, 0.0)
    assert point.threshold < 0.1


def test_kfold_accuracy_hand_case():
    # Fold 0: same 0.1, different 0.5; fold 1: same 0.2, different 0.3. Trained on fold 1 the threshold
    # is 0.25 (halfway between its pairs) and gets fold 0 right; trained on fold 0 it is 0.3, which
    # accepts fold 1's different pair.
    res = ver.kfold_accuracy([0.1, 0.5, 0.2, 0.3], [True, False, True, False], [0, 0, 1, 1])
    np.testing.assert_allclose(res.thresholds, [0.25, 0.3])
    np.testing.assert_array_equal(res.per_fold, [1.0, 0.5])
    assert (res.mean, res.std) == (0.75, 0.25)


# ---------------------------------------------------------------------------------------------------
# against scikit-learn, SciPy and brute force on random data
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_roc_matches_sklearn(rng, ties):
    dist, issame = random_pairs(rng, ties=ties)
    r = ver.roc(dist, issame)
    fpr, tpr, thr = roc_curve(issame, -dist, drop_intermediate=False)
    np.testing.assert_allclose(r.far, fpr)
    np.testing.assert_allclose(r.val, tpr)
    np.testing.assert_allclose(r.thresholds[1:], -thr[1:])


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_roc_counts_the_pairs_at_or_below_each_distinct_distance(rng, ties):
    """Independently of scikit-learn: one vertex per distinct distance (tied pairs enter together), with
    the numbers of same and different pairs at or below it."""
    dist, issame = random_pairs(rng, n=300, ties=ties)
    r = ver.roc(dist, issame)
    u = np.unique(dist)
    np.testing.assert_array_equal(r.thresholds, np.r_[-np.inf, u])
    np.testing.assert_array_equal(r.ta, [0] + [np.sum(issame & (dist <= t)) for t in u])
    np.testing.assert_array_equal(r.fa, [0] + [np.sum(~issame & (dist <= t)) for t in u])
    assert (r.n_same, r.n_diff) == (issame.sum(), (~issame).sum())


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_auc_matches_sklearn_and_mann_whitney(rng, ties):
    dist, issame = random_pairs(rng, ties=ties)
    got = ver.auc(dist, issame)
    diff = dist[issame][:, None] - dist[~issame][None, :]
    mann_whitney = np.mean((diff < 0) + 0.5 * (diff == 0))
    assert got == pytest.approx(roc_auc_score(issame, -dist), abs=1e-12)
    assert got == pytest.approx(mann_whitney, abs=1e-12)


def test_eer_matches_root_finding(rng):
    # The usual recipe: brentq on 1 - x - TPR(x), TPR linearly interpolated on sklearn's ROC.
    dist, issame = random_pairs(rng)
    fpr, tpr, _ = roc_curve(issame, -dist)
    expected = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert ver.eer(dist, issame) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("target", [1e-3, 1e-2, 0.1, 0.37])
def test_val_at_far_is_the_best_val_within_the_far_budget(rng, target):
    dist, issame = random_pairs(rng, n=3000, ties=True)
    point = ver.val_at_far(dist, issame, target)
    vf = np.array([ver.val_far(dist, issame, t) for t in np.unique(dist)])
    allowed = vf[:, 1] <= target
    best_val, best_far = vf[allowed].max(axis=0) if allowed.any() else (0.0, 0.0)  # both rise with d
    assert (point.val, point.far) == (best_val, best_far)
    assert point.far <= target
    assert (point.val, point.far) == ver.val_far(dist, issame, point.threshold)


@pytest.mark.parametrize("n, ties", [(40, False), (400, False), (400, True)], ids=["few", "distinct", "ties"])
@pytest.mark.parametrize("target", [0.0, 1e-3, 0.02, 0.1, 0.37, 1.0])
def test_threshold_at_far_matches_a_float64_reference(rng, n, ties, target):
    """Plain float64 NumPy, distance by distance: FAR counted at every distinct distance u; the largest
    acceptance set within the budget is every pair nearer than the first u whose FAR exceeds the target, and
    the threshold sits in that step where FAR, linear between the two vertices, reaches the target."""
    dist, issame = random_pairs(rng, n=n, ties=ties)
    t = ver.threshold_at_far(dist, issame, target)
    u = np.unique(dist)
    far = np.array([np.count_nonzero(~issame & (dist <= x)) for x in u]) / np.count_nonzero(~issame)
    over = np.flatnonzero(far > target)
    np.testing.assert_array_equal(dist <= t, dist < u[over[0]] if over.size else np.ones(n, bool))
    if over.size == 0:  # everything accepted: the largest distance
        assert t == u[-1]
    elif over[0] == 0:  # nothing accepted: just below the smallest distance
        assert t == np.nextafter(u[0], -np.inf)
    else:
        k = over[0] - 1
        w = (target - far[k]) / (far[k + 1] - far[k])
        assert t == pytest.approx(min(u[k] + w * (u[k + 1] - u[k]), np.nextafter(u[k + 1], -np.inf)), rel=1e-12)
    assert ver.val_at_far(dist, issame, target).threshold == t


def test_kfold_accuracy_chooses_the_best_training_threshold(rng):
    dist, issame = random_pairs(rng, n=300, ties=True)
    fold = rng.integers(0, 5, dist.size)
    fold[:10] = np.arange(10) % 5
    res = ver.kfold_accuracy(dist, issame, fold)
    candidates = np.r_[dist.min() - 1, np.unique(dist)]
    for k, t in enumerate(res.thresholds):
        train = fold != k
        best = max(np.mean((dist[train] <= c) == issame[train]) for c in candidates)
        assert np.mean((dist[train] <= t) == issame[train]) == best
        assert res.per_fold[k] == np.mean((dist[~train] <= t) == issame[~train])
    assert res.mean == pytest.approx(res.per_fold.mean()) and res.std == pytest.approx(res.per_fold.std())


def test_kfold_accuracy_separable_is_one_and_random_is_a_coin(rng):
    n = 2000
    issame = np.arange(n) < n // 2
    fold = rng.permutation(np.arange(n) % 10)
    separable = np.where(issame, rng.uniform(0, 1, n), rng.uniform(1.5, 4, n))
    assert ver.kfold_accuracy(separable, issame, fold)[:2] == (1.0, 0.0)
    random = rng.uniform(0, 4, n)
    assert 0.4 < ver.kfold_accuracy(random, issame, fold).mean < 0.6  # mean 0.49, std 0.017 over seeds


def test_val_at_far_kfold_uses_training_thresholds(rng):
    dist, issame = random_pairs(rng, n=2000)
    fold = np.arange(dist.size) % 4
    val, far = ver.val_at_far_kfold(dist, issame, fold, 0.05)
    for k in range(4):
        train = fold != k
        assert val.thresholds[k] == ver.val_at_far(dist[train], issame[train], 0.05).threshold
        assert val.per_fold[k] == ver.val_far(dist[~train], issame[~train], val.thresholds[k])[0]
    assert 0.0 < far < 0.1


# ---------------------------------------------------------------------------------------------------
# evaluate_embeddings
# ---------------------------------------------------------------------------------------------------
def blobs(rng, ids=10, per=10, dim=32, spread=0.02):
    labels = np.repeat(np.arange(ids), per)
    centres = np.linalg.qr(rng.normal(size=(dim, ids)))[0].T  # orthonormal: every two are sqrt(2) apart
    return centres[labels] + spread * rng.normal(size=(ids * per, dim)), labels


def test_evaluate_embeddings_keys_and_separable_scores(rng):
    emb, labels = blobs(rng)
    m = fe.evaluate_embeddings(torch.tensor(emb, dtype=torch.float32), torch.tensor(labels))
    assert tuple(m) == fe.METRIC_KEYS
    assert all(type(v) is float for v in m.values())
    assert (m["num_pairs_same"], m["num_pairs_diff"]) == (450.0, 4500.0)
    for key in (
        "val_at_far_1e-3",
        "val_at_far_1e-2",
        "accuracy_10fold",
        "auc",
        "knn_top1",
        "cluster_f1",
        "cluster_nmi",
    ):
        assert m[key] == pytest.approx(1.0), key
    assert m["eer"] == 0.0 and m["accuracy_10fold_std"] == 0.0


def test_evaluate_embeddings_random_embeddings_are_chance(rng):
    labels = np.repeat(np.arange(20), 10)
    m = fe.evaluate_embeddings(rng.normal(size=(200, 64)), labels)
    assert 0.45 < m["auc"] < 0.55
    assert 0.4 < m["eer"] < 0.6
    assert m["knn_top1"] < 0.25  # chance is 1/20
    assert m["val_at_far_1e-2"] < 0.1


def test_evaluate_embeddings_is_scale_invariant_and_takes_names(rng):
    emb, labels = blobs(rng, spread=0.5)
    names = np.array([f"person_{k}" for k in labels])
    a = fe.evaluate_embeddings(emb, labels, seed=3)
    b = fe.evaluate_embeddings(emb * rng.uniform(0.1, 10, (len(emb), 1)), names, seed=3)
    assert a == pytest.approx(b)


def test_evaluate_embeddings_with_given_pairs(rng):
    emb, labels = blobs(rng, ids=4, per=3, spread=0.5)
    i = np.array([0, 3, 6, 0, 1, 5, 9, 2])
    j = np.array([1, 4, 7, 3, 6, 10, 11, 8])
    pairs = fe.IndexPairs(i, j, labels[i] == labels[j], np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    m = fe.evaluate_embeddings(emb, labels, pairs=pairs)
    assert (m["num_pairs_same"], m["num_pairs_diff"]) == (4.0, 4.0)
    dist = pair_sq_dist(emb / np.linalg.norm(emb, axis=1, keepdims=True), i, j)
    assert m["auc"] == pytest.approx(ver.auc(dist, pairs.issame))
    assert m["accuracy_10fold"] == pytest.approx(ver.kfold_accuracy(dist, pairs.issame, pairs.fold).mean)


def test_all_pairs_folds_are_stratified_and_seeded():
    labels = np.repeat(np.arange(10), 10)
    p = all_pairs(labels, n_folds=10, seed=1)
    assert len(p) == 4950 and np.all(p.idx1 < p.idx2)
    for f in range(10):
        assert (p.issame & (p.fold == f)).sum() == 45 and (~p.issame & (p.fold == f)).sum() == 450
    assert np.array_equal(p.fold, all_pairs(labels, n_folds=10, seed=1).fold)
    assert not np.array_equal(p.fold, all_pairs(labels, n_folds=10, seed=2).fold)


def test_pair_sq_dist_matches_row_differences(rng):
    emb = rng.normal(size=(50, 6))
    i, j = rng.integers(0, 50, 300), rng.integers(0, 50, 300)
    expected = np.sum((emb[i] - emb[j]) ** 2, axis=1)
    np.testing.assert_allclose(pair_sq_dist(emb, i, j, block=7), expected, atol=1e-12)
    assert np.all(pair_sq_dist(emb, i, i) == 0.0)  # exact zeros, not Gram-trick rounding noise
    near = emb[i] + 1e-6 * rng.normal(size=(300, 6))
    both = np.r_[emb, near]
    np.testing.assert_allclose(
        pair_sq_dist(both, i, np.arange(50, 350)), np.sum((emb[i] - near) ** 2, axis=1), rtol=1e-6
    )


def test_collapsed_embeddings_score_chance_exactly(rng):
    # All embeddings equal (FaceNet's collapse): every distance is exactly 0, so nothing separates pairs.
    m = fe.evaluate_embeddings(np.tile(rng.normal(size=64), (40, 1)), np.repeat(np.arange(4), 10))
    assert (m["auc"], m["eer"], m["val_at_far_1e-3"], m["knn_top1"], m["cluster_nmi"]) == (0.5, 0.5, 0.0, 0.0, 0.0)
    precision = 180 / 780  # one cluster: all 780 pairs predicted, the 4 x 45 same ones true
    assert m["cluster_f1"] == pytest.approx(2 * precision / (precision + 1))


def test_roc_curve_points_match_sklearn(rng):
    emb, labels = blobs(rng, spread=1.0)
    far, val = fe.roc_curve_points(emb, labels)
    p = all_pairs(labels)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    score = -np.sum((e[p.idx1] - e[p.idx2]) ** 2, axis=1)
    fpr, tpr, _ = roc_curve(p.issame, score, drop_intermediate=False)
    np.testing.assert_allclose(far, fpr)
    np.testing.assert_allclose(val, tpr)


def test_the_package_exports_its_small_surface_and_submodules_only():
    public = {name for name in dir(fe) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(fe, name), types.ModuleType)}
    assert public - modules == set(fe.__all__)
    assert modules <= {"clustering", "identification", "lfw_pairs", "metrics", "pairs", "plots", "verification"}


@pytest.mark.parametrize("name", ["auc", "roc", "val_at_far", "kfold_accuracy", "all_pairs", "cluster", "LFW_PATTERN"])
def test_names_that_moved_to_submodules_still_resolve_with_a_warning(name):
    """Code written against the earlier, larger surface keeps working and is told where the name lives."""
    module = importlib.import_module(f"facenet_ext.eval.{fe._MOVED[name]}")
    with pytest.warns(DeprecationWarning, match=rf"facenet_ext\.eval\.{name} moved to {module.__name__}"):
        assert getattr(fe, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_metric'"):
        _ = fe.not_a_metric


def test_plot_roc_writes_a_png(tmp_path):
    path = fe.plot_roc(
        {"a": (ver.roc(DIST, SAME).far, ver.roc(DIST, SAME).val), "b": ([0, 1], [0, 1])}, tmp_path / "roc.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="curves is empty"):
        fe.plot_roc({}, tmp_path / "empty.png")


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
BAD_PAIR_INPUTS = [
    ("2-D dist", [[0.1, 0.2]], [True, False], ValueError, "dist must be 1-D"),
    ("NaN dist", [0.1, np.nan], [True, False], ValueError, "dist contains NaN"),
    ("Inf dist", [0.1, np.inf], [True, False], ValueError, "dist contains NaN"),
    ("empty", [], [], ValueError, "dist is empty"),
    ("lengths", [0.1, 0.2, 0.3], [True, False], ValueError, "issame has length 2 but there are 3"),
    ("float issame", [0.1, 0.2], [0.5, 1.0], TypeError, "issame must be bool"),
    ("no same", [0.1, 0.2], [False, False], ValueError, "issame has no same pairs"),
    ("no different", [0.1, 0.2], [1, 1], ValueError, "issame has no different pairs"),
    ("string dist", ["a", "b"], [True, False], TypeError, "dist must hold real numbers"),
]


@pytest.mark.parametrize(
    "dist, issame, exc, msg", [p[1:] for p in BAD_PAIR_INPUTS], ids=[p[0] for p in BAD_PAIR_INPUTS]
)
@pytest.mark.parametrize("call", ["roc", "auc", "eer", "val_at_far"])
def test_bad_pair_inputs(call, dist, issame, exc, msg):
    with pytest.raises(exc, match=f"{call}: {msg}"):
        getattr(ver, call)(np.array(dist), issame)


@pytest.mark.parametrize(
    "target, exc",
    [
        (-0.1, ValueError),
        (1.5, ValueError),
        (float("nan"), ValueError),
        ("0.1", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_bad_far_target(target, exc):
    """Wrong type TypeError, wrong value ValueError (one rule for every scalar argument)."""
    with pytest.raises(exc, match="val_at_far: far_target must be a"):
        ver.val_at_far(DIST, SAME, target)


def test_bad_folds():
    with pytest.raises(ValueError, match="kfold_accuracy: fold has 1 fold"):
        ver.kfold_accuracy(DIST, SAME, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="the pairs outside fold 0 are all same"):
        ver.kfold_accuracy(DIST, SAME, [1, 0, 0, 0])
    with pytest.raises(TypeError, match="fold must be integers"):
        ver.kfold_accuracy(DIST, SAME, [0.0, 1.0, 0.0, 1.0])


BAD_EVAL_INPUTS = [
    ("1-D emb", np.ones(6), [0, 0, 1, 1, 2, 2], ValueError, "emb must be 2-D"),
    ("NaN emb", np.where(np.eye(6, 3) == 1, np.nan, 1.0), [0, 0, 1, 1, 2, 2], ValueError, "emb contains NaN"),
    ("zero row", np.r_[np.zeros((1, 3)), np.ones((5, 3))], [0, 0, 1, 1, 2, 2], ValueError, "emb row 0 is all zeros"),
    ("label length", np.eye(6, 3) + 1, [0, 0, 1, 1, 2], ValueError, "labels has length 5 but there are 6"),
    ("2-D labels", np.eye(6, 3) + 1, [[0, 0, 1, 1, 2, 2]], ValueError, "labels must be 1-D"),
    ("float labels", np.eye(6, 3) + 1, [0.0, 0, 1, 1, 2, 2], TypeError, "labels must be integers or strings"),
    ("one identity", np.eye(6, 3) + 1, [0] * 6, ValueError, "labels has 1 identities; need at least 2"),
    ("no same pair", np.eye(6, 3) + 1, [0, 1, 2, 3, 4, 5], ValueError, "no identity in labels has two items"),
    ("one same pair", np.eye(6, 3) + 1, [0, 0, 1, 2, 3, 4], ValueError, "the pairs outside fold 0 are all different"),
]


@pytest.mark.parametrize("emb, labels, exc, msg", [p[1:] for p in BAD_EVAL_INPUTS], ids=[p[0] for p in BAD_EVAL_INPUTS])
def test_bad_evaluate_inputs(emb, labels, exc, msg):
    """Every error names evaluate_embeddings, never a function it calls."""
    with pytest.raises(exc, match=f"^evaluate_embeddings: .*{msg}"):
        fe.evaluate_embeddings(emb, labels)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        ({"n_folds": 1}, ValueError, "n_folds must be an int >= 2"),
        ({"cluster_threshold": -1.0}, ValueError, "cluster_threshold must be a finite number > 0"),
        ({"cluster_threshold": "1"}, TypeError, "cluster_threshold must be a real number"),
    ],
)
def test_bad_evaluate_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=f"^evaluate_embeddings: {msg}"):
        fe.evaluate_embeddings(np.eye(6, 3) + 1, [0, 0, 1, 1, 2, 2], **kwargs)


def test_roc_curve_points_errors_name_it():
    with pytest.raises(ValueError, match="^roc_curve_points: no identity in labels has two items"):
        fe.roc_curve_points(np.eye(3) + 1, [0, 1, 2])


def test_bad_given_pairs():
    emb, labels = np.eye(6, 3) + 1, np.array([0, 0, 1, 1, 2, 2])
    i, j = np.array([0, 2, 0, 1]), np.array([1, 3, 2, 5])
    ok = dict(idx1=i, idx2=j, issame=np.array([True, True, False, False]), fold=np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match=r"pairs.issame\[2\] = True but labels\[0\] and labels\[2\] are different"):
        fe.evaluate_embeddings(emb, labels, pairs=fe.IndexPairs(**{**ok, "issame": np.array([1, 1, 1, 0])}))
    with pytest.raises(ValueError, match=r"pairs.idx2 has values in \[1, 6\], outside \[0, 6\)"):
        fe.evaluate_embeddings(emb, labels, pairs=fe.IndexPairs(**{**ok, "idx2": np.array([1, 3, 2, 6])}))
    with pytest.raises(TypeError, match="pairs must be an IndexPairs"):
        fe.evaluate_embeddings(emb, labels, pairs=(i, j))


def test_evaluate_embeddings_accuracy_uses_balanced_pairs():
    """Ten identities x 10 items: 90% of all pairs are different, so a constant answer would score 0.9 on
    all pairs; the balanced 10-fold accuracy of an embedding that cannot separate anything is ~0.5."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    m = fe.evaluate_embeddings(rng.normal(size=(100, 16)), labels)
    assert 0.35 < m["accuracy_10fold"] < 0.65
    assert m["num_pairs_same"] == 450 and m["num_pairs_diff"] == 4500


def test_val_at_far_warns_when_the_pairs_cannot_show_that_far(rng):
    """Fewer than 1/far_target different pairs: the smallest non-zero FAR is above the target, so VAL is
    read at FAR 0 (on a small, easy held-out split, 1.0); it warns instead of printing that silently."""
    issame = np.array([True] * 50 + [False] * 999)
    dist = rng.random(issame.size)
    with pytest.warns(ver.TooFewPairsWarning, match="999 different pairs are too few for FAR = 0.001"):
        ver.val_at_far(dist, issame, 1e-3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ver.val_at_far(dist, issame, 1e-2)  # 999 pairs show FAR 0.01 (in steps of 1/999)
        ver.val_at_far(np.append(dist, 0.5), np.append(issame, False), 1e-3)  # 1000 pairs: enough
