r"""Pairs of items to verify, by row index into an embedding matrix, with their folds; and their distances.

Distances are squared Euclidean distances of L2-normalised embeddings, :math:`\lVert e_i - e_j \rVert^2
= 2 - 2 \cos(e_i, e_j) \in [0, 4]`, FaceNet's distance and the one ``pairwise_sq_dist`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_int
from . import _inputs


@dataclass(frozen=True)
class IndexPairs:
    """Pair k compares rows ``idx1[k]`` and ``idx2[k]``; ``issame[k]`` says whether they show the same
    identity; ``fold[k]`` is its fold for k-fold evaluation."""

    idx1: np.ndarray
    idx2: np.ndarray
    issame: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return int(self.idx1.shape[0])


def stratified_folds(issame: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A random fold per pair such that every fold holds as equal a share as possible of the same pairs,
    and of the different pairs."""
    fold = np.empty(issame.shape[0], dtype=np.int64)
    for kind in (True, False):
        members = np.flatnonzero(issame == kind)
        fold[rng.permutation(members)] = np.arange(members.size) % n_folds
    return fold


def check_n_folds(fn: str, n_folds: object) -> int:
    return check_int(fn, "n_folds", n_folds, low=2)


def all_pairs(labels, n_folds: int = 10, seed: int = 0) -> IndexPairs:
    """Every unordered pair (i < j) of the items, with ``n_folds`` folds from :func:`stratified_folds`
    (seeded). O(N²) pairs: meant for held-out sets of hundreds to a few thousand items."""
    return all_pairs_for("all_pairs", labels, n_folds, seed)


def all_pairs_for(fn: str, labels, n_folds: int, seed: int) -> IndexPairs:
    """:func:`all_pairs` for the public function ``fn``, which its errors name."""
    n_folds = check_n_folds(fn, n_folds)
    codes = _inputs.labels(fn, labels)
    i, j = np.triu_indices(codes.shape[0], k=1)
    issame = codes[i] == codes[j]
    if not issame.any():
        raise ValueError(f"{fn}: no identity in labels has two items, so there are no same pairs")
    return IndexPairs(i, j, issame, stratified_folds(issame, n_folds, np.random.default_rng(seed)))


def check_index_pairs(fn: str, pairs: object, codes: np.ndarray, name: str = "pairs") -> IndexPairs:
    """``pairs`` as validated IndexPairs over ``codes.shape[0]`` items whose issame agrees with the labels."""
    if not isinstance(pairs, IndexPairs):
        raise TypeError(f"{fn}: {name} must be an IndexPairs, got {type(pairs).__name__}")
    n, items = len(pairs), codes.shape[0]
    i = _inputs.indices(fn, pairs.idx1, n, items, f"{name}.idx1")
    j = _inputs.indices(fn, pairs.idx2, n, items, f"{name}.idx2")
    if n == 0:
        raise ValueError(f"{fn}: {name} is empty")
    issame = _inputs.flags(fn, pairs.issame, n, f"{name}.issame")
    wrong = np.flatnonzero(issame != (codes[i] == codes[j]))
    if wrong.size:
        k = int(wrong[0])
        raise ValueError(
            f"{fn}: {name}.issame[{k}] = {bool(issame[k])} but labels[{i[k]}] and labels[{j[k]}] "
            f"are {'different' if issame[k] else 'the same'} ({wrong.size} such pairs)"
        )
    fold = _inputs.folds(fn, pairs.fold, issame, f"{name}.fold")
    return IndexPairs(i, j, issame, fold)


def pair_sq_dist(emb: np.ndarray, idx1: np.ndarray, idx2: np.ndarray, block: int = 1024) -> np.ndarray:
    """||emb[idx1] - emb[idx2]||² per pair, in float64.

    Mostly |a|² + |b|² - 2 a·b from ``block`` rows of the Gram matrix at a time (one BLAS product each,
    memory ``block x N``); gathering row differences for every pair moves pairs x dim floats, ~50x
    slower for 4096-wide pixel embeddings. That form cancels to noise of ~1e-15 x |a|² near zero, so
    pairs below 1e-8 x |a|² are recomputed from their differences: equal embeddings (a collapsed model)
    then tie exactly at 0 instead of being ordered by rounding noise."""
    out = np.empty(idx1.shape[0], dtype=np.float64)
    sq = np.einsum("ij,ij->i", emb, emb)
    for s in range(0, emb.shape[0], block):
        sel = np.flatnonzero((idx1 >= s) & (idx1 < s + block))
        if sel.size:
            a, b = idx1[sel], idx2[sel]
            out[sel] = sq[a] + sq[b] - 2 * (emb[s : s + block] @ emb.T)[a - s, b]
    near = np.flatnonzero(out <= 1e-8 * np.maximum(sq[idx1], sq[idx2]))
    for s in range(0, near.size, block):
        k = near[s : s + block]
        diff = emb[idx1[k]] - emb[idx2[k]]
        out[k] = np.einsum("ij,ij->i", diff, diff)
    return out
