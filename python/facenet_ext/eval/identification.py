"""Closed-set identification: nearest-neighbour search of probes in a gallery of enrolled identities.

A probe is identified at rank k when its own identity is among the k gallery identities nearest to it,
an identity's distance being that of its nearest gallery image (multi-shot galleries). Distances are
those of L2-normalised embeddings (cosine, squared Euclidean and Euclidean rank alike). Ties count
against the probe: an identity exactly as near as the true one ranks ahead of it, so a collapsed model
(all embeddings equal) scores 0, not 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_int
from . import _inputs


def gallery_probe_split(labels, n_gallery: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(gallery, probe) item indices: per identity, ``n_gallery`` random items (seeded) enrol it in the
    gallery and the rest are probes. An identity with no more than ``n_gallery`` items goes to the
    gallery whole (a distractor: it cannot be probed but can be confused with)."""
    fn = "gallery_probe_split"
    n_gallery = check_int(fn, "n_gallery", n_gallery, low=1)
    codes = _inputs.labels(fn, labels, min_classes=1)
    rng = np.random.default_rng(seed)
    gallery, probe = [], []
    for c in range(codes.max() + 1):
        members = rng.permutation(np.flatnonzero(codes == c))
        gallery.append(members[:n_gallery])
        probe.append(members[n_gallery:])
    return np.sort(np.concatenate(gallery)), np.sort(np.concatenate(probe))


def _check_topk(fn: str, topk: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(check_int(fn, f"topk[{i}]", k, low=1) for i, k in enumerate(topk))
    if not ks:
        raise ValueError(f"{fn}: topk must be a non-empty sequence of ints >= 1, got {topk!r}")
    return ks


def rank_accuracy(
    probe_emb, probe_labels, gallery_emb, gallery_labels, topk: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """{k: fraction of probes whose identity is among the k nearest gallery identities}. Every probe's
    identity must be enrolled in the gallery."""
    fn = "rank_accuracy"
    ks = _check_topk(fn, topk)
    p = _inputs.embeddings(fn, probe_emb, "probe_emb")
    g = _inputs.embeddings(fn, gallery_emb, "gallery_emb")
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"{fn}: gallery_emb has width {g.shape[1]} but probe_emb has {p.shape[1]}")
    gl, pl = _inputs.to_numpy(gallery_labels), _inputs.to_numpy(probe_labels)
    for name, lab, rows in (("gallery_labels", gl, g.shape[0]), ("probe_labels", pl, p.shape[0])):
        if lab.ndim != 1 or lab.shape[0] != rows:
            raise ValueError(f"{fn}: {name} must be 1-D with one label per row ({rows}), got shape {lab.shape}")
    # One coding for both sides, so that equal identities get equal codes.
    codes = _inputs.labels(fn, np.concatenate([gl, pl]), min_classes=1, name="gallery_labels + probe_labels")
    gc, pc = codes[: g.shape[0]], codes[g.shape[0] :]
    missing = np.setdiff1d(pc, gc)
    if missing.size:
        raise ValueError(f"{fn}: {missing.size} probe identities have no gallery image")
    # Per identity, the similarity of its nearest gallery image (cosine: larger = nearer).
    order = np.argsort(gc, kind="stable")
    starts = np.flatnonzero(np.r_[True, gc[order][1:] != gc[order][:-1]])
    ids = gc[order][starts]
    sim = np.maximum.reduceat((p @ g.T)[:, order], starts, axis=1)  # [probes, gallery identities]
    true = sim[np.arange(pc.shape[0]), np.searchsorted(ids, pc)][:, None]
    ahead = (sim >= true).sum(axis=1) - 1  # other identities at least as near as the true one
    return {k: float(np.mean(ahead < k)) for k in ks}


def identification_accuracy(
    emb, labels, *, topk: Sequence[int] = (1, 5), n_gallery: int = 1, seed: int = 0
) -> dict[int, float]:
    """Rank-k identification accuracy on one labelled set, split by :func:`gallery_probe_split`."""
    fn = "identification_accuracy"
    # Checked here too, so that a bad value is reported as this function's argument.
    _check_topk(fn, topk)
    n_gallery = check_int(fn, "n_gallery", n_gallery, low=1)
    e = _inputs.embeddings(fn, emb)
    codes = _inputs.labels(fn, labels, e.shape[0])
    gallery, probe = gallery_probe_split(codes, n_gallery, seed)
    if probe.size == 0:
        raise ValueError(f"{fn}: no identity has more than n_gallery={n_gallery} items, so there are no probes")
    return rank_accuracy(e[probe], codes[probe], e[gallery], codes[gallery], topk)
