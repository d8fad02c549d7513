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

from ._checks import acc_dtype, check_choice, check_embeddings, check_finite, check_labels, check_tensor

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
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    ok = 0 < value <= 1 if low_open else 0 <= value < 1
    if not ok:
        raise ValueError(f"{fn}: {name} must lie in {'(0, 1]' if low_open else '[0, 1)'}, got {value}")
    return float(value)


def error_versus_reject(
    emb: Tensor,
    labels: Tensor,
    quality: Tensor,
    fractions=DEFAULT_FRACTIONS,
    far: float = 1e-3,
) -> dict[str, np.ndarray]:
    r"""The error-versus-reject curve (ERC) of a quality score on a verification set of images.

    All pairs i < j of the L2-normalised ``emb`` [N, D] are compared by cosine similarity; a pair is
    genuine when ``labels`` agree. The threshold is fixed once, on the full set: the lowest similarity
    :math:`t` such that the share of impostor pairs with similarity > t is at most ``far``
    (accept = similarity > t). Then, for each rejected fraction r in ``fractions``, the round(r·N) images
    of lowest ``quality`` [N] are dropped (ties: the lower index first) and the remaining pairs (both
    images kept, which is rejecting each pair by the lower of its two qualities) are scored at that
    threshold. A useful quality score makes ``fnmr`` fall as r grows.

    Returns a dict of NumPy arrays, one entry per fraction: ``fraction``, ``kept`` (images),
    ``fnmr`` (false non-match rate over the remaining genuine pairs; NaN when none remain), ``fmr``
    (false match rate over the remaining impostor pairs; NaN when none), ``error`` (1 - accuracy over all
    remaining pairs); and the 0-d ``threshold`` and ``far``. Memory O(N²).
    """
    fn = "error_versus_reject"
    emb = check_embeddings(fn, emb, "emb")
    n = emb.shape[0]
    labels = check_labels(fn, labels, n, emb.device)
    quality = check_tensor(fn, "quality", quality)
    if quality.shape != (n,) or not quality.is_floating_point():
        raise ValueError(f"{fn}: quality must be a floating 1-D tensor of length {n} (one score per image), "
                         f"got {quality.dtype} of shape {tuple(quality.shape)}")
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

    # Accept = sim > t with at most floor(far * n_impostor) impostors above t: t is the (k+1)-th largest
    # impostor similarity (all impostors rejected when k = 0).
    imp = np.sort(sim[impostor])[::-1]
    k = int(np.floor(far * imp.size + 1e-9))
    threshold = imp[min(k, imp.size - 1)]
    accept = sim > threshold

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


__all__ = ["face_quality", "aggregate_templates", "error_versus_reject", "plot_erc"]
