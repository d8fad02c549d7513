r"""Face quality from feature magnitude (MagFace), quality-weighted templates, and the error-versus-reject
curve that judges a quality score.

After training with :class:`facenet_ext.losses.MagFaceLoss`, the magnitude :math:`a = \lVert f \rVert` of an
unnormalised feature grows with how recognisable the face is; the direction :math:`\hat f = f / a` is the
embedding. A good quality score is one whose low values flag the images that cause verification errors:
rejecting them should lower the error on what remains (Grother & Tabassi's error-versus-reject curve).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_choice, check_embeddings, check_finite, check_labels, check_real, check_tensor
from ._dispatch import acc_dtype

WEIGHTS = ("magnitude", "mean")
DEFAULT_FRACTIONS = tuple(i / 20 for i in range(11))  # 0, 0.05, ..., 0.5


def _acc(t: Tensor) -> Tensor:
    return t.to(acc_dtype(t.dtype))


def face_quality(features: Tensor) -> Tensor:
    r"""MagFace's quality score: the magnitude :math:`\lVert f_i \rVert` of each row of the unnormalised
    ``features`` [B, D], shape [B] (float32 for float16/bfloat16 input). Differentiable."""
    features = check_embeddings("face_quality", features, "features")
    return torch.linalg.vector_norm(_acc(features), dim=1)


def aggregate_templates(features: Tensor, template_ids: Tensor, weights: str = "magnitude") -> tuple[Tensor, Tensor]:
    r"""One L2-normalised feature per template (a person's several images), from unnormalised ``features``
    [B, D] and integer ``template_ids`` [B].

    ``weights="magnitude"`` (MagFace): :math:`\operatorname{normalise}(\sum_i a_i \hat f_i) =
    \operatorname{normalise}(\sum_i f_i)`, so high-quality images count more. ``weights="mean"``:
    :math:`\operatorname{normalise}(\operatorname{mean}_i \hat f_i)`, every image alike.

    Returns ``(templates, ids)``: ``templates`` [T, D] (float32 for float16/bfloat16 input) in the order of
    ``ids``, the sorted unique template ids. A template whose sum is exactly zero comes out as zeros.
    Differentiable in ``features``; one ``index_add`` over the batch, no loop over templates.
    """
    fn = "aggregate_templates"
    features = check_embeddings(fn, features, "features")
    template_ids = check_labels(fn, template_ids, features.shape[0], features.device, "template_ids")
    check_choice(fn, "weights", weights, WEIGHTS)
    ids, index = torch.unique(template_ids, sorted=True, return_inverse=True)
    f = _acc(features)
    if weights == "mean":
        f = F.normalize(f, dim=1)  # the 1/count of the mean disappears in the normalisation
    sums = f.new_zeros(ids.shape[0], f.shape[1]).index_add(0, index, f)
    return F.normalize(sums, dim=1), ids


# ---------------------------------------------------------------------------------------------------
# error-versus-reject curve
# ---------------------------------------------------------------------------------------------------
def _check_fraction(fn: str, name: str, value: object, low_open: bool) -> float:
    """A number in (0, 1] (``low_open``) or [0, 1)."""
    return check_real(fn, name, value, low=0, high=1, low_open=low_open, high_open=not low_open)


def error_versus_reject(
    emb: Tensor,
    labels: Tensor,
    quality: Tensor,
    fractions=DEFAULT_FRACTIONS,
    far: float = 1e-3,
) -> dict[str, np.ndarray]:
    r"""The error-versus-reject curve (ERC) of a quality score on a verification set of images.

    All pairs i < j of the L2-normalised ``emb`` [N, D] are compared by cosine similarity; a pair is
    genuine when ``labels`` agree. The threshold is fixed once, on the full set: VAL@FAR's
    (:func:`facenet_ext.eval.verification.threshold_at_far`, with the negated similarity as the distance), so
    the accepted pairs (similarity >= threshold) are the largest set, by similarity, whose share of the
    impostor pairs is at most ``far``. Then, for each rejected fraction r in ``fractions``, the round(r·N) images
    of lowest ``quality`` [N] are dropped (ties: the lower index first) and the remaining pairs (both
    images kept, which is rejecting each pair by the lower of its two qualities) are scored at that
    threshold. A useful quality score makes ``fnmr`` fall as r grows.

    Returns a dict of NumPy arrays, one entry per fraction: ``fraction``, ``kept`` (images),
    ``fnmr`` (false non-match rate over the remaining genuine pairs; NaN when none remain), ``fmr``
    (false match rate over the remaining impostor pairs; NaN when none), ``error`` (1 - accuracy over all
    remaining pairs); and the 0-d ``threshold`` and ``far``. Memory O(N²). Needs scikit-learn.
    """
    fn = "error_versus_reject"
    emb = check_embeddings(fn, emb, "emb")
    n = emb.shape[0]
    labels = check_labels(fn, labels, n, emb.device)
    quality = check_tensor(fn, "quality", quality)
    if quality.shape != (n,) or not quality.is_floating_point():
        raise ValueError(
            f"{fn}: quality must be a floating 1-D tensor of length {n} (one score per image), "
            f"got {quality.dtype} of shape {tuple(quality.shape)}"
        )
    check_finite(fn, "quality", quality)
    fractions = np.asarray([_check_fraction(fn, "fractions", r, low_open=False) for r in fractions], dtype=np.float64)
    far = _check_fraction(fn, "far", far, low_open=True)

    e = F.normalize(_acc(emb).detach().double(), dim=1).cpu()
    i, j = torch.triu_indices(n, n, offset=1)
    sim = (e @ e.T)[i, j].numpy()
    y = labels.cpu()
    genuine = (y[i] == y[j]).numpy()
    impostor = ~genuine
    if not genuine.any() or not impostor.any():
        raise ValueError(f"{fn}: labels must give at least one genuine and one impostor pair")

    from .eval.verification import threshold_at_far

    threshold = -threshold_at_far(-sim, genuine, far)  # negation is exact: -sim <= t exactly when sim >= -t
    accept = sim >= threshold

    rank = torch.empty(n, dtype=torch.int64)
    rank[torch.sort(quality.detach().cpu().double(), stable=True).indices] = torch.arange(n)
    pair_rank = torch.minimum(rank[i], rank[j]).numpy()  # a pair survives while its worse image does
    out = {name: np.empty(len(fractions)) for name in ("kept", "fnmr", "fmr", "error")}
    for c, r in enumerate(fractions):  # a handful of fractions: one vectorised pass each
        dropped = int(round(r * n))
        keep = pair_rank >= dropped
        g, m = keep & genuine, keep & impostor
        fnm, fm = np.count_nonzero(g & ~accept), np.count_nonzero(m & accept)
        out["kept"][c] = n - dropped
        out["fnmr"][c] = fnm / g.sum() if g.any() else np.nan
        out["fmr"][c] = fm / m.sum() if m.any() else np.nan
        out["error"][c] = (fnm + fm) / keep.sum() if keep.any() else np.nan
    return {"fraction": fractions, **out, "threshold": np.asarray(threshold), "far": np.asarray(far)}


def plot_erc(curves: dict[str, dict], path: str | os.PathLike, metric: str = "fnmr") -> Path:
    """Plot error-versus-reject curves, one line per ``name -> error_versus_reject(...)`` result, as
    ``metric`` ("fnmr" or "error") against the rejected fraction; writes a PNG at ``path`` (e.g.
    ``RUN/erc.png``) with matplotlib's Agg canvas (no display, pyplot's global state untouched)."""
    fn = "plot_erc"
    check_choice(fn, "metric", metric, ("fnmr", "error"))
    if not isinstance(curves, dict) or not curves:
        raise ValueError(f"{fn}: curves must be a non-empty dict name -> error_versus_reject result")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(100 * curve["fraction"], curve[metric], marker="o", markersize=3, label=name)
    ax.set_xlabel("images rejected (lowest quality first), %")
    far = float(next(iter(curves.values()))["far"])
    ax.set_ylabel(f"FNMR (threshold at FAR {far:g})" if metric == "fnmr" else "error (1 - accuracy)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------------------------------------------
# judging a quality score: the pieces of the quality experiments (experiments/*_quality.py)
# ---------------------------------------------------------------------------------------------------
def rank_auc(score, positive) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney U / n1 n0).
    ``score`` and ``positive`` are 1-D arrays or tensors of the same length, with both classes present."""
    s = np.asarray(score, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    if s.shape != pos.shape or pos.all() or not pos.any():
        raise ValueError(
            f"rank_auc: need one score per item and both classes, got {s.shape} scores, {int(pos.sum())} of "
            f"{pos.size} positive"
        )
    from scipy.stats import rankdata

    r = rankdata(s)  # average ranks: ties count half
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def quality_auc_by_kind(quality, kind, names: tuple[str, ...]) -> dict[str, float]:
    """How well ``quality`` ranks clean images (``kind`` == -1) above degraded ones (``kind`` >= 0, an index
    into ``names``): ``{"all": AUC over every image, name: AUC over the clean images and that kind's}``;
    a kind absent from ``kind`` is left out."""
    q = np.asarray(quality, dtype=np.float64)
    k = np.asarray(kind)
    out = {"all": rank_auc(q, k == -1)}
    for i, name in enumerate(names):
        sel = (k == -1) | (k == i)
        if (k == i).any():
            out[name] = rank_auc(q[sel], k[sel] == -1)
    return out


def random_rejection(
    emb: Tensor, labels: Tensor, draws: int = 20, seed: int = 0, fractions=DEFAULT_FRACTIONS, far: float = 1e-3
) -> dict[str, np.ndarray]:
    """The control of an ERC: :func:`error_versus_reject` with ``draws`` uniformly random quality scores
    (seeded). Returns ``fraction`` and ``fnmr`` [draws, len(fractions)] (its mean over draws is flat in
    expectation: random rejection removes genuine and impostor errors alike)."""
    g = torch.Generator().manual_seed(seed)
    n = emb.shape[0]
    runs = [error_versus_reject(emb, labels, torch.rand(n, generator=g), fractions, far)["fnmr"] for _ in range(draws)]
    return {"fraction": np.asarray(fractions, dtype=np.float64), "fnmr": np.stack(runs)}


def fnmr_at(erc: dict, fraction: float) -> float:
    """The ERC's FNMR at the rejected ``fraction`` (matched to 1e-9, so 0.2 finds 0.2000000001); a
    random-rejection result ([draws, fractions]) gives the mean over its draws."""
    where = np.flatnonzero(np.isclose(np.asarray(erc["fraction"]), fraction, atol=1e-9))
    if where.size == 0:
        raise ValueError(f"fnmr_at: {fraction} is not one of the curve's fractions {list(erc['fraction'])}")
    f = np.asarray(erc["fnmr"])
    return float(f[..., where[0]].mean())


def split_templates(labels: Tensor, generator: torch.Generator, min_images: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """Two disjoint templates per person with at least ``min_images`` images: each person's rows shuffled
    (seeded) and cut in half (the odd one to the first half). Returns ``(rows, template_ids, person)``:
    the rows used, the template of each row (person p's are 2p' and 2p'+1, p' counting the persons used),
    and the person label of each template id."""
    labels = torch.as_tensor(labels).cpu()
    if min_images < 2:
        raise ValueError(f"split_templates: min_images must be >= 2 (two templates per person), got {min_images}")
    rows, tids, person = [], [], []
    for p in torch.unique(labels, sorted=True).tolist():
        mine = (labels == p).nonzero().flatten()
        if mine.numel() < min_images:
            continue
        mine = mine[torch.randperm(mine.numel(), generator=generator)]
        half = (mine.numel() + 1) // 2
        t = len(person)
        rows.append(mine)
        tids.append(
            torch.cat(
                [
                    torch.full((half,), t, dtype=torch.int64),
                    torch.full((mine.numel() - half,), t + 1, dtype=torch.int64),
                ]
            )
        )
        person += [p, p]
    if not person:
        raise ValueError(f"split_templates: no person has {min_images} or more images")
    return torch.cat(rows), torch.cat(tids), torch.tensor(person, dtype=torch.int64)


def template_verification(features: Tensor, labels: Tensor, generator: torch.Generator, min_images: int = 4) -> dict:
    """Verification with two-template people (:func:`split_templates`): every pair of templates is compared,
    genuine when both belong to one person. For ``magnitude``-weighted and ``mean`` templates
    (:func:`aggregate_templates`), and for the ``single`` images of the same people (all their image
    pairs), the ROC ``auc`` and ``val_at_far_1e-2`` (TAR at FAR 1e-2), and the pair counts."""
    from .eval.verification import auc, val_at_far

    rows, tids, person = split_templates(labels, generator, min_images)
    f = features[rows]

    def score(emb: Tensor, who: Tensor) -> dict:
        i, j = torch.triu_indices(len(who), len(who), offset=1)
        e = F.normalize(emb.double(), dim=1)
        dist = (2 - 2 * (e[i] * e[j]).sum(1)).clamp_min(0).numpy()
        same = (who[i] == who[j]).numpy()
        return {
            "auc": float(auc(dist, same)),
            "val_at_far_1e-2": float(val_at_far(dist, same, 1e-2).val),
            "pairs_same": int(same.sum()),
            "pairs_diff": int((~same).sum()),
        }

    out = {w: score(aggregate_templates(f, tids, w)[0], person) for w in WEIGHTS}
    out["single"] = score(f, torch.as_tensor(labels)[rows])
    out["people"], out["images"] = len(person) // 2, int(rows.numel())
    return out


def plot_quality_grid(images: Tensor, quality, path: str | os.PathLike, n: int = 16, columns: int = 8) -> Path:
    """A picture of the ``n`` images [N, C, H, W] (uint8) of lowest and the ``n`` of highest ``quality``,
    each titled with its score, lowest first (top) and highest (bottom); PNG at ``path``, Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    q = np.asarray(quality, dtype=np.float64)
    n = min(n, len(q) // 2) or 1
    order = np.argsort(q, kind="stable")
    groups = {"lowest quality": order[:n], "highest quality": order[::-1][:n]}
    rows_per = -(-n // columns)
    fig = Figure(figsize=(1.3 * columns, 1.45 * 2 * rows_per + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    for g, (title, idx) in enumerate(groups.items()):
        for k, r in enumerate(idx):
            ax = fig.add_subplot(2 * rows_per, columns, g * rows_per * columns + k + 1)
            img = images[int(r)].cpu().numpy()
            ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{q[r]:.1f}", fontsize=8)
            ax.set_axis_off()
            if k == 0:
                ax.text(-0.1, 0.5, title, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


__all__ = [
    "face_quality",
    "aggregate_templates",
    "error_versus_reject",
    "plot_erc",
    "rank_auc",
    "quality_auc_by_kind",
    "random_rejection",
    "fnmr_at",
    "split_templates",
    "template_verification",
    "plot_quality_grid",
]
