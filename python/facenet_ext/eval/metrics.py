"""The headline metrics of one embedded, labelled evaluation set (:func:`evaluate_embeddings`) and its ROC
(:func:`roc_curve_points`), from the verification, identification and clustering modules."""

from __future__ import annotations

import numpy as np

from . import _inputs
from .clustering import check_threshold, clustering_scores
from .identification import identification_accuracy
from .pairs import IndexPairs, all_pairs_for, check_index_pairs, pair_sq_dist
from .verification import auc, eer, kfold_accuracy_for, roc, val_at_far

METRIC_KEYS = (
    "val_at_far_1e-3",
    "val_at_far_1e-2",
    "accuracy_10fold",
    "accuracy_10fold_std",
    "auc",
    "eer",
    "knn_top1",
    "cluster_f1",
    "cluster_nmi",
    "num_pairs_same",
    "num_pairs_diff",
)


def _pair_distances(fn: str, emb, labels, n_folds: int, seed: int, pairs: IndexPairs | None):
    """(normalised embeddings, label codes, pairs, squared distances of the pairs)."""
    e = _inputs.embeddings(fn, emb)
    codes = _inputs.labels(fn, labels, e.shape[0])
    if pairs is None:
        pairs = all_pairs_for(fn, codes, n_folds, seed)
    else:
        pairs = check_index_pairs(fn, pairs, codes)
    return e, codes, pairs, pair_sq_dist(e, pairs.idx1, pairs.idx2)


def _balanced(issame: np.ndarray, seed: int) -> np.ndarray:
    """Indices of every same pair and of an equal number of different pairs drawn without replacement
    (all of them if there are fewer), in pair order so the folds stay as assigned."""
    same, diff = np.flatnonzero(issame), np.flatnonzero(~issame)
    if diff.size > same.size:
        diff = np.random.default_rng(seed).choice(diff, same.size, replace=False)
    return np.sort(np.concatenate([same, diff]))


def evaluate_embeddings(
    emb,
    labels,
    *,
    n_folds: int = 10,
    seed: int = 0,
    pairs: IndexPairs | None = None,
    cluster_threshold: float | None = None,
) -> dict[str, float]:
    """Every headline metric of one embedded, labelled evaluation set, as plain floats (keys:
    :data:`METRIC_KEYS`).

    ``emb``: [N, D] tensor or array of any model (L2-normalised here); ``labels``: N identities (ints or
    names). Verification runs on ``pairs`` (an :class:`IndexPairs`, e.g. from :func:`index_pairs` of LFW's
    ``pairs.txt``, whose folds are then used and ``n_folds`` is ignored), or by default on all N(N-1)/2
    pairs with ``n_folds`` seeded stratified folds. Distances are squared Euclidean, in [0, 4].

    - ``val_at_far_1e-3`` / ``_1e-2``: :func:`val_at_far` on all pairs (threshold read off this ROC);
    - ``accuracy_10fold`` / ``_std``: :func:`kfold_accuracy` over the folds (there may be other than 10).
      Without ``pairs`` it runs on balanced pairs, as LFW's protocol does: every same pair and as many
      different pairs drawn at random (seeded). On all pairs the accuracy would mostly count the far more
      numerous different pairs (90% of them for 10 identities x 10 images: a constant answer scores 0.9);
    - ``auc``, ``eer``: of the ROC of all pairs;
    - ``knn_top1``: rank-1 :func:`identification_accuracy`, one gallery image per identity (seeded);
    - ``cluster_f1``, ``cluster_nmi``: :func:`clustering_scores` over all N items, average linkage, the
      tree cut into as many clusters as there are identities (by default; the count of identities is
      known to any evaluation, which item belongs to whom is not used), or at the Euclidean
      ``cluster_threshold`` when one is given (choose it on other data);
    - ``num_pairs_same``, ``num_pairs_diff``: the pair counts (as floats).
    """
    fn = "evaluate_embeddings"
    if cluster_threshold is not None:
        check_threshold(fn, cluster_threshold, "cluster_threshold")
    given_pairs = pairs
    e, codes, pairs, dist = _pair_distances(fn, emb, labels, n_folds, seed, pairs)
    balanced = _balanced(pairs.issame, seed) if given_pairs is None else slice(None)
    # Few same pairs can leave a fold's complement without one kind: the error then names this function.
    acc = kfold_accuracy_for(fn, dist[balanced], pairs.issame[balanced], pairs.fold[balanced])
    if cluster_threshold is None:
        clusters = clustering_scores(e, codes, n_clusters=int(np.unique(codes).size))
    else:
        clusters = clustering_scores(e, codes, threshold=cluster_threshold)
    return {
        "val_at_far_1e-3": val_at_far(dist, pairs.issame, 1e-3).val,
        "val_at_far_1e-2": val_at_far(dist, pairs.issame, 1e-2).val,
        "accuracy_10fold": acc.mean,
        "accuracy_10fold_std": acc.std,
        "auc": auc(dist, pairs.issame),
        "eer": eer(dist, pairs.issame),
        "knn_top1": identification_accuracy(e, codes, topk=(1,), seed=seed)[1],
        "cluster_f1": clusters["f1"],
        "cluster_nmi": clusters["nmi"],
        "num_pairs_same": float(pairs.issame.sum()),
        "num_pairs_diff": float((~pairs.issame).sum()),
    }


def roc_curve_points(emb, labels, *, pairs: IndexPairs | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(far, val) of the exact ROC over the same pairs as :func:`evaluate_embeddings`, for :func:`plot_roc`."""
    _, _, pairs, dist = _pair_distances("roc_curve_points", emb, labels, 2, 0, pairs)
    r = roc(dist, pairs.issame)
    return r.far, r.val
