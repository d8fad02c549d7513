r"""Clustering of embeddings (FaceNet §5.5): agglomerative clustering at a distance threshold, scored
against the true identities with pairwise precision / recall / F-score and NMI.

Embeddings are L2-normalised and clustered on their *Euclidean* distances (scikit-learn's
``AgglomerativeClustering``; the cut keeps merges at linkage distance < threshold). For single and
complete linkage a Euclidean threshold t cuts where a squared-distance verification threshold t²
would; average linkage averages the unsquared distances.

Pairwise scores count the N(N-1)/2 unordered item pairs: a pair is *predicted* together when its items
share a cluster and *truly* together when they share an identity.

.. math::
    P = \frac{|\mathrm{pred} \cap \mathrm{true}|}{|\mathrm{pred}|}, \quad
    R = \frac{|\mathrm{pred} \cap \mathrm{true}|}{|\mathrm{true}|}, \quad F = \frac{2PR}{P + R},

with 0 in place of 0/0 (all singletons: P = R = F = 0).
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import pair_confusion_matrix

from .._checks import check_choice, check_int, check_real
from . import _inputs

LINKAGES = ("average", "complete", "single", "ward")

#: A fixed cut, in Euclidean distance of unit vectors: 1.0 = squared distance 1.0 = cosine similarity 0.5
#: (60°); ``cluster``'s default. ``evaluate_embeddings`` instead cuts the tree into as many clusters as
#: there are identities (:func:`clustering_scores` with ``n_clusters``): a fixed distance means different
#: things for different models (an untrained network puts every face within it: one cluster).
DEFAULT_CLUSTER_THRESHOLD = 1.0


class PairScores(NamedTuple):
    precision: float
    recall: float
    f1: float


def check_threshold(fn: str, threshold: object, name: str = "threshold") -> float:
    """A Euclidean cut: a finite number > 0."""
    return check_real(fn, name, threshold, low=0, low_open=True, finite=True)


def _scores(tp: float, pred: float, true: float) -> PairScores:
    p = tp / pred if pred else 0.0
    r = tp / true if true else 0.0
    return PairScores(float(p), float(r), float(2 * p * r / (p + r)) if tp else 0.0)


def pairwise_scores(labels_true, labels_pred) -> PairScores:
    """Pairwise precision, recall and F-score of a clustering ``labels_pred`` against identities
    ``labels_true`` (see the module doc)."""
    fn = "pairwise_scores"
    t = _inputs.labels(fn, labels_true, name="labels_true", min_classes=1)
    p = _inputs.labels(fn, labels_pred, t.shape[0], name="labels_pred", min_classes=1)
    c = pair_confusion_matrix(t, p) // 2  # counts ordered pairs: halve to unordered
    return _scores(c[1, 1], c[0, 1] + c[1, 1], c[1, 0] + c[1, 1])


def cluster(emb, *, threshold: float = DEFAULT_CLUSTER_THRESHOLD, linkage: str = "average") -> np.ndarray:
    """Cluster ids (0..C-1) from agglomerative clustering of the L2-normalised embeddings, merging while
    the linkage distance is below ``threshold`` (Euclidean)."""
    return _cluster("cluster", emb, threshold, linkage)


# The private twins of the public functions take the name of the public function the user called, for errors.
def _cluster(fn: str, emb, threshold: float, linkage: str) -> np.ndarray:
    check_choice(fn, "linkage", linkage, LINKAGES)
    threshold = check_threshold(fn, threshold)
    e = _inputs.embeddings(fn, emb)
    if e.shape[0] == 1:
        return np.zeros(1, dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, linkage=linkage)
    return model.fit_predict(e).astype(np.int64)


def cut_into(emb, n_clusters: int, *, linkage: str = "average") -> tuple[np.ndarray, float]:
    """(cluster ids, Euclidean threshold) of the merge tree cut into ``n_clusters`` clusters, or fewer
    where merges of equal height straddle the cut: ties cannot be split without an arbitrary choice, so
    they are all kept (a collapsed model, every distance 0, gives one cluster). The threshold lies halfway
    between the last merge kept and the first one undone, and ``cluster(emb, threshold=...)`` gives the
    same clusters."""
    return _cut_into("cut_into", emb, n_clusters, linkage)


def _cut_into(fn: str, emb, n_clusters: int, linkage: str) -> tuple[np.ndarray, float]:
    check_choice(fn, "linkage", linkage, LINKAGES)
    e = _inputs.embeddings(fn, emb)
    n = e.shape[0]
    n_clusters = check_int(fn, "n_clusters", n_clusters, low=1, high=n)
    if n == 1:
        return np.zeros(1, dtype=np.int64), DEFAULT_CLUSTER_THRESHOLD
    h = AgglomerativeClustering(n_clusters=1, linkage=linkage, compute_distances=True).fit(e).distances_
    kept = n - int(n_clusters)  # merges below the cut; h is non-decreasing for these linkages
    lo = float(h[kept - 1]) if kept > 0 else 0.0
    while kept < h.size and h[kept] <= lo:  # a tie at the cut: keep the whole tie
        kept += 1
    threshold = (lo + float(h[kept])) / 2 if kept < h.size else float(np.nextafter(lo, np.inf))
    threshold = max(threshold, float(np.nextafter(0.0, 1.0)))
    return _cluster(fn, e, threshold, linkage), threshold


def clustering_scores(
    emb,
    labels,
    *,
    threshold: float | None = DEFAULT_CLUSTER_THRESHOLD,
    linkage: str = "average",
    n_clusters: int | None = None,
) -> dict[str, float | int]:
    """Cluster at ``threshold`` (or into ``n_clusters`` clusters when given) and score: {precision,
    recall, f1, nmi, n_clusters, threshold}.

    ``threshold=None`` without ``n_clusters`` uses :func:`best_f1_threshold` on these same labels: an
    *oracle* cut, optimistic by construction (it peeks at the answer), for "how good could it get",
    never for a reported number. ``n_clusters`` (e.g. the number of identities) uses only how many
    identities there are, not which item is whose. NMI is scikit-learn's
    ``normalized_mutual_info_score`` (arithmetic normalisation)."""
    fn = "clustering_scores"
    codes = _inputs.labels(fn, labels, _inputs.embeddings(fn, emb).shape[0], min_classes=1)
    # The raw emb goes on: normalising twice could move distances by an ulp and so a cut.
    if n_clusters is not None:
        pred, threshold = _cut_into(fn, emb, n_clusters, linkage)
    else:
        if threshold is None:
            threshold = _best_f1_threshold(fn, emb, codes, linkage)[0]
        pred = _cluster(fn, emb, threshold, linkage)
    p = pairwise_scores(codes, pred)
    return {
        "precision": p.precision,
        "recall": p.recall,
        "f1": p.f1,
        "nmi": float(normalized_mutual_info_score(codes, pred)),
        "n_clusters": int(pred.max() + 1),
        "threshold": float(threshold),
    }


def f1_sweep(emb, labels, *, linkage: str = "average") -> tuple[np.ndarray, np.ndarray]:
    """Pairwise F-score at every distinct cut of the merge tree: (thresholds, f1), thresholds increasing.

    One tree is built; merges are replayed in order, updating the pair counts by the merged clusters'
    identity histograms (O(N · identities per cluster)), instead of re-clustering per threshold. Each
    threshold sits halfway between consecutive distinct merge heights (the first halfway from 0, the
    last just above the top merge), so ``cluster(emb, threshold=t)`` reproduces the cut."""
    return _f1_sweep("f1_sweep", emb, labels, linkage)


def _f1_sweep(fn: str, emb, labels, linkage: str) -> tuple[np.ndarray, np.ndarray]:
    check_choice(fn, "linkage", linkage, LINKAGES)
    e = _inputs.embeddings(fn, emb)
    codes = _inputs.labels(fn, labels, e.shape[0], min_classes=1)
    n = e.shape[0]
    if n == 1:
        return np.array([DEFAULT_CLUSTER_THRESHOLD]), np.array([0.0])
    tree = AgglomerativeClustering(n_clusters=1, linkage=linkage, compute_distances=True).fit(e)
    heights = tree.distances_
    members: list[Counter] = [Counter([c]) for c in codes.tolist()]
    true = sum(k * (k - 1) // 2 for k in Counter(codes.tolist()).values())
    tp = pred = 0
    f1 = [0.0]  # before any merge: all singletons
    for a, b in tree.children_:
        ca, cb = members[a], members[b]
        if len(ca) < len(cb):
            ca, cb = cb, ca
        tp += sum(k * ca[c] for c, k in cb.items())
        pred += sum(ca.values()) * sum(cb.values())
        ca.update(cb)
        members.append(ca)
        f1.append(_scores(tp, pred, true).f1)
    f1 = np.array(f1)
    # Cut m (m merges applied) is reachable only where heights[m-1] < heights[m].
    upper = np.r_[heights, np.inf]
    lower = np.r_[0.0, heights]
    keep = lower < upper
    keep[0] = upper[0] > 0
    mid = np.where(np.isinf(upper), np.nextafter(lower, np.inf), (lower + upper) / 2)
    return mid[keep], f1[keep]


def best_f1_threshold(emb, labels, *, linkage: str = "average") -> tuple[float, float]:
    """(threshold, F-score) of the cut with the highest pairwise F-score on these labels (the smallest
    such threshold). Optimistic: see :func:`clustering_scores`."""
    return _best_f1_threshold("best_f1_threshold", emb, labels, linkage)


def _best_f1_threshold(fn: str, emb, labels, linkage: str) -> tuple[float, float]:
    t, f1 = _f1_sweep(fn, emb, labels, linkage)
    k = int(np.argmax(f1))
    return float(t[k]), float(f1[k])
