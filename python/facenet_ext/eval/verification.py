r"""Face verification metrics (FaceNet §4): VAL and FAR at a distance threshold, the ROC, AUC, EER,
VAL at a target FAR, and k-fold accuracy in the LFW protocol.

A pair is *accepted* (predicted "same person") when its distance is at most the threshold ``d``:

.. math::
    \mathrm{VAL}(d) = \frac{|\{(i,j) \in P_\mathrm{same} : D_{ij} \le d\}|}{|P_\mathrm{same}|}, \qquad
    \mathrm{FAR}(d) = \frac{|\{(i,j) \in P_\mathrm{diff} : D_{ij} \le d\}|}{|P_\mathrm{diff}|}.

Every function takes ``dist`` (one distance per pair, any monotone distance; :func:`facenet_ext.eval.
evaluate_embeddings` uses squared Euclidean distances of L2-normalised embeddings, in [0, 4]) and
``issame`` (True for a same-identity pair). Thresholds are exact: they come from the sorted distances
themselves, not from a fixed grid such as ``np.arange(0, 4, 0.01)``, so no result depends on a grid
step or on the range of the distances.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.metrics import auc as _trapezoid
from sklearn.metrics import roc_curve

from .._checks import check_real
from . import _inputs


@dataclass(frozen=True)
class Roc:
    """The exact ROC: one vertex per distinct distance, plus the accept-nothing vertex first.

    ``thresholds[k]`` is the k-th smallest distinct distance (``thresholds[0] = -inf``); ``ta[k]`` and
    ``fa[k]`` count the same and different pairs with distance ``<= thresholds[k]``, so ``val = ta /
    n_same`` and ``far = fa / n_diff`` are the curve. Any threshold in ``[thresholds[k], thresholds[k+1])``
    gives exactly the counts of vertex ``k``.
    """

    thresholds: np.ndarray
    ta: np.ndarray
    fa: np.ndarray
    n_same: int
    n_diff: int

    @property
    def val(self) -> np.ndarray:
        return self.ta / self.n_same

    @property
    def far(self) -> np.ndarray:
        return self.fa / self.n_diff

    def threshold_in_step(self, k: int, w: float) -> float:
        """A threshold at fraction ``w`` in [0, 1) of the step from vertex ``k`` to vertex ``k + 1``,
        never reaching vertex ``k + 1`` (so it keeps vertex ``k``'s counts); the last vertex gives its
        own distance. Below the smallest distance the step starts one ulp under it."""
        if k == len(self.thresholds) - 1:
            return float(self.thresholds[k])
        hi = self.thresholds[k + 1]
        lo = self.thresholds[k] if k > 0 else np.nextafter(hi, -np.inf)
        return float(min(lo + w * (hi - lo), np.nextafter(hi, -np.inf)))


class OperatingPoint(NamedTuple):
    val: float
    far: float
    threshold: float


class KFold(NamedTuple):
    """Per-fold results of a k-fold evaluation and their mean and (population, ``ddof=0``) std."""

    mean: float
    std: float
    per_fold: np.ndarray
    thresholds: np.ndarray


def _check(fn: str, dist: object, issame: object) -> tuple[np.ndarray, np.ndarray]:
    d = _inputs.distances(fn, dist)
    return d, _inputs.flags(fn, issame, d.shape[0])


def _roc(d: np.ndarray, s: np.ndarray) -> Roc:
    # scikit-learn ranks by score, larger = more likely same: the negated distance. It keeps one vertex per
    # distinct score (ties in one step) and prepends the accept-nothing vertex at score +inf.
    fpr, tpr, score = roc_curve(s, -d, drop_intermediate=False)
    n_same, n_diff = int(s.sum()), int(s.size - s.sum())
    thresholds = -score
    thresholds[0] = -np.inf
    # The rates are counts / totals; the counts come back exactly (they are integers far below 2**53).
    ta = np.rint(tpr * n_same).astype(np.int64)
    fa = np.rint(fpr * n_diff).astype(np.int64)
    return Roc(thresholds, ta, fa, n_same, n_diff)


def roc(dist, issame) -> Roc:
    """The exact ROC of pair distances (see :class:`Roc`): ``sklearn.metrics.roc_curve(issame, -dist,
    drop_intermediate=False)``, as distances and counts."""
    return _roc(*_check("roc", dist, issame))


def val_far(dist, issame, threshold: float) -> tuple[float, float]:
    """(VAL(d), FAR(d)) at ``threshold`` d: the fractions of same / different pairs with distance <= d."""
    d, s = _check("val_far", dist, issame)
    return _val_far(d, s, threshold)


def _val_far(d: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float]:
    # NaN for a kind of pair that is absent (possible only in a held-out fold).
    accept = d <= threshold
    val = (accept & s).sum() / s.sum() if s.any() else np.nan
    far = (accept & ~s).sum() / (~s).sum() if (~s).any() else np.nan
    return float(val), float(far)


def auc(dist, issame) -> float:
    """Area under the ROC (trapezoids over the exact curve, so tied distances count half): the
    probability that a random same pair is closer than a random different pair."""
    r = _roc(*_check("auc", dist, issame))
    return float(_trapezoid(r.far, r.val))


def eer(dist, issame) -> float:
    """Equal error rate: the FAR where FAR = 1 - VAL (false accepts as frequent as false rejects), on the
    ROC with straight segments between vertices. ``FAR + VAL - 1`` rises along the curve from -1 to 1,
    so it crosses zero once."""
    r = _roc(*_check("eer", dist, issame))
    g = r.far + r.val - 1.0
    i = int(np.argmax(g >= 0))  # g[-1] = 1, so there is one; g[0] = -1, so i >= 1
    t = -g[i - 1] / (g[i] - g[i - 1])
    return float(r.far[i - 1] + t * (r.far[i] - r.far[i - 1]))


def _threshold_at_far(r: Roc, far_target: float) -> float:
    # The one definition of "the threshold at a target FAR" (see threshold_at_far).
    far = r.far
    k = int(np.searchsorted(far, far_target, side="right")) - 1  # last vertex with FAR <= target
    if k == len(far) - 1:
        return r.threshold_in_step(k, 0.0)
    return r.threshold_in_step(k, (far_target - far[k]) / (far[k + 1] - far[k]))


def _check_far_target(fn: str, far_target: float) -> None:
    check_real(fn, "far_target", far_target, low=0, high=1)


def threshold_at_far(dist, issame, far_target: float = 1e-3) -> float:
    """The distance threshold of VAL at FAR = ``far_target``: accepting the pairs with distance <= it gives
    the largest acceptance set whose FAR does not exceed ``far_target`` (FaceNet's VAL@FAR on LFW).

    That set is fixed by ROC vertex k, the last with FAR <= ``far_target``: every pair nearer than the next
    distinct distance. Inside that step the threshold sits where linear interpolation of FAR between
    vertices k and k + 1 reaches the target, as the standard LFW evaluation (davidsandberg/facenet's
    ``calculate_val``) places it on its 0.001 grid, but it never reaches the next distance; with no
    vertex beyond k it is vertex k's distance, and with nothing accepted it lies just below the smallest
    distance. The position inside the step changes nothing on these pairs, only on others (a held-out fold).
    :func:`val_at_far`, :func:`val_at_far_kfold` and :func:`facenet_ext.quality.error_versus_reject` all
    use this threshold."""
    fn = "threshold_at_far"
    _check_far_target(fn, far_target)
    return _threshold_at_far(_roc(*_check(fn, dist, issame)), far_target)


class TooFewPairsWarning(UserWarning):
    """VAL@FAR asked for a FAR below the smallest non-zero FAR the pairs can show (1 / different pairs)."""


def _warn_too_few(fn: str, s: np.ndarray, far_target: float) -> None:
    n_diff = int((~s).sum())
    if far_target > 0 and n_diff * far_target < 1:
        warnings.warn(
            f"{fn}: {n_diff} different pairs are too few for FAR = {far_target:g} (the smallest non-zero FAR "
            f"is 1/{n_diff}; it needs at least {math.ceil(1 / far_target)}): VAL is then read at FAR 0 and "
            "means little (e.g. 1.0 on a small, easy held-out split)",
            TooFewPairsWarning,
            stacklevel=3,
        )


def val_at_far(dist, issame, far_target: float = 1e-3) -> OperatingPoint:
    """VAL at the threshold where FAR reaches ``far_target``, found on these pairs (:func:`threshold_at_far`).

    The achieved FAR is the largest attainable FAR <= ``far_target`` and VAL is the highest VAL at such a
    FAR: the ROC read as a step function (no interpolated VAL). With ``n_diff`` different pairs FAR moves
    in steps of ``1 / n_diff``; at 1e-3 it needs well over 1000 of them to mean anything, and with fewer
    than ``1 / far_target`` it warns (:class:`TooFewPairsWarning`). Returns (val, far, threshold).
    """
    fn = "val_at_far"
    _check_far_target(fn, far_target)
    d, s = _check(fn, dist, issame)
    _warn_too_few(fn, s, far_target)
    t = _threshold_at_far(_roc(d, s), far_target)
    return OperatingPoint(*_val_far(d, s, t), t)


def _kfold(fn: str, dist, issame, fold, choose, score) -> tuple[KFold, np.ndarray]:
    """For each fold: threshold = choose(ROC of the other folds); score(held-out d, s, threshold) -> row."""
    d, s = _check(fn, dist, issame)
    f = _inputs.folds(fn, fold, s)
    thresholds, rows = [], []
    for k in np.unique(f):
        t = choose(_roc(d[f != k], s[f != k]))
        thresholds.append(t)
        rows.append(score(d[f == k], s[f == k], t))
    rows = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    # A held-out fold without one kind of pair has no VAL (or FAR): NaN, left out of the mean.
    first = rows[:, 0]
    return KFold(float(np.nanmean(first)), float(np.nanstd(first)), first, np.array(thresholds)), rows


def best_accuracy_threshold(r: Roc) -> float:
    """The threshold of highest accuracy (TA + TN) / n on ``r``'s pairs: the first (smallest) best vertex,
    placed halfway to the next distance so that it does not sit on a training pair."""
    correct = r.ta + (r.n_diff - r.fa)
    return r.threshold_in_step(int(np.argmax(correct)), 0.5)


def kfold_accuracy(dist, issame, fold) -> KFold:
    """Verification accuracy in the LFW protocol: for each fold k, the threshold of highest accuracy on
    the other folds (:func:`best_accuracy_threshold`, exact over all distances), and the accuracy
    (fraction of pairs classified correctly) on fold k. ``fold`` holds one fold id per pair."""
    return kfold_accuracy_for("kfold_accuracy", dist, issame, fold)


def kfold_accuracy_for(fn: str, dist, issame, fold) -> KFold:
    """:func:`kfold_accuracy` for the public function ``fn``, which its errors name."""

    def accuracy(d, s, t):
        return np.mean((d <= t) == s)

    return _kfold(fn, dist, issame, fold, best_accuracy_threshold, accuracy)[0]


def val_at_far_kfold(dist, issame, fold, far_target: float = 1e-3) -> tuple[KFold, float]:
    """VAL at FAR = ``far_target`` the way davidsandberg/facenet's ``calculate_val`` reports it on LFW
    (with exact thresholds instead of its 0.001 grid): for each fold, :func:`threshold_at_far` on the other
    folds, and VAL on the held-out fold. Returns (VAL's KFold, mean held-out FAR): the held-out FAR scatters
    around the target."""
    fn = "val_at_far_kfold"
    _check_far_target(fn, far_target)
    val, rows = _kfold(fn, dist, issame, fold, lambda r: _threshold_at_far(r, far_target), _val_far)
    return val, float(np.nanmean(rows[:, 1]))
