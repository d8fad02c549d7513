"""The float64 oracles: every op written again in plain PyTorch, straight from its definition, for the
tests to check the native ops against. Nothing here is used by the library itself, and this module imports
nothing from it but argument checks: the oracles stay independent of the code they judge."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_choice


def l2_pool2d_oracle(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False) -> Tensor:
    """L2 pooling in float64: zero-pad, square, sum each window (avg_pool2d times the window area),
    sqrt. The output size is F.max_pool2d's; extra zeros on the right/bottom give the overhanging last
    windows of ceil_mode their full k x k area, so avg_pool2d never divides by a clipped count."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    out_h, out_w = F.max_pool2d(x.to("meta"), (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil_mode).shape[-2:]
    h, w = x.shape[-2:]
    bottom = max(ph, (out_h - 1) * sh + kh - h - ph)
    right = max(pw, (out_w - 1) * sw + kw - w - pw)
    padded = F.pad(x.to(torch.float64), (pw, right, ph, bottom))
    sums = F.avg_pool2d(padded.square(), (kh, kw), (sh, sw)) * (kh * kw)
    return sums[..., :out_h, :out_w].sqrt()


# ---------------------------------------------------------------------------------------------------
# pairwise_sq_dist
# ---------------------------------------------------------------------------------------------------


def pairwise_sq_dist_oracle(x: Tensor, y: Tensor | None = None) -> Tensor:
    r""":math:`D_{ij} = \sum_k (x_{ik} - y_{jk})^2` in float64, from the differences themselves (no Gram
    expansion, so no cancellation). Differentiable in ``x`` and ``y``; ``y=None`` means ``y = x``."""
    x = x.to(torch.float64)
    y = x if y is None else y.to(torch.float64)
    return (x.unsqueeze(1) - y.unsqueeze(0)).square().sum(-1)


# ---------------------------------------------------------------------------------------------------
# miners
#
# Each miner exists twice: `*_from_sq_dist_oracle` applies the rule of docs/semantics.md to a given squared-distance
# matrix (so a test can hand it the exact matrix the op mined on and demand identical indices), and
# `*_oracle` takes embeddings and mines on pairwise_sq_dist_oracle in float64.
#
# Comparisons between two distances are exact in any precision. The margin tests add or subtract, so
# they are evaluated in the matrix's own dtype, as the op evaluates them on the matrix it was given.
# `ref_labels=None` means the reference set is the batch itself (an anchor is never its own positive);
# otherwise `sq_dist` is [B, N] between anchors (`labels`) and a reference set (`ref_labels`).
# ---------------------------------------------------------------------------------------------------


def _metric(sq_dist: Tensor, squared: bool) -> Tensor:
    return sq_dist if squared else sq_dist.sqrt()


def _positives_and_negatives(labels: Tensor, ref_labels: Tensor | None) -> list[tuple[list[int], list[int]]]:
    """Per anchor a, in ascending index order: P(a) = {p : y_p = y_a, p != a when the reference set is the
    batch itself} and N(a) = {n : y_n != y_a}."""
    y = labels.tolist()
    ry = y if ref_labels is None else ref_labels.tolist()
    return [
        (
            [p for p in range(len(ry)) if ry[p] == y[a] and not (ref_labels is None and p == a)],
            [n for n in range(len(ry)) if ry[n] != y[a]],
        )
        for a in range(len(y))
    ]


def _triplets(rows: list[tuple[int, int, int]], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    t = torch.tensor(rows, dtype=torch.int64, device=device).reshape(-1, 3)
    return t[:, 0], t[:, 1], t[:, 2]


def semi_hard_from_sq_dist_oracle(
    sq_dist: Tensor,
    labels: Tensor,
    margin: float | None = None,
    *,
    squared: bool = True,
    fallback: str = "easiest",
    ref_labels: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """FaceNet eq. (4), one triplet per ordered anchor-positive pair:
    n*(a, p) = argmin {D_an : n in N(a), D_an > D_ap}, ties to the smallest index; if that set is empty,
    "easiest" takes argmax_{n in N(a)} D_an (ties to the smallest index) and "drop" drops the pair.
    Anchors without negatives yield nothing. With a margin, keep only metric(D_an) < metric(D_ap) + margin."""
    check_choice("semi_hard_from_sq_dist_oracle", "fallback", fallback, ("easiest", "drop"))
    d = sq_dist.detach().cpu()
    metric = _metric(d, squared).tolist()
    limit = None if margin is None else (_metric(d, squared) + torch.tensor(margin, dtype=d.dtype)).tolist()
    d = d.tolist()
    rows = []
    for a, (positives, negatives) in enumerate(_positives_and_negatives(labels, ref_labels)):
        if not negatives:
            continue
        for p in positives:
            semi_hard = [n for n in negatives if d[a][n] > d[a][p]]
            if semi_hard:
                n = min(semi_hard, key=lambda n: (d[a][n], n))
            elif fallback == "easiest":
                n = min(negatives, key=lambda n: (-d[a][n], n))
            else:
                continue
            if limit is not None and not metric[a][n] < limit[a][p]:
                continue
            rows.append((a, p, n))
    return _triplets(rows, sq_dist.device)


def batch_hard_from_sq_dist_oracle(
    sq_dist: Tensor, labels: Tensor, *, ref_labels: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Hermans et al. (2017): for every anchor with a positive and a negative, argmax_{p in P(a)} D_ap and
    argmin_{n in N(a)} D_an, ties to the smallest index."""
    d = sq_dist.detach().cpu().tolist()
    rows = []
    for a, (positives, negatives) in enumerate(_positives_and_negatives(labels, ref_labels)):
        if positives and negatives:
            p = min(positives, key=lambda p: (-d[a][p], p))
            n = min(negatives, key=lambda n: (d[a][n], n))
            rows.append((a, p, n))
    return _triplets(rows, sq_dist.device)


def all_semi_hard_from_sq_dist_oracle(
    sq_dist: Tensor, labels: Tensor, margin: float = 0.2, *, squared: bool = False, ref_labels: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Every (a, p, n) with p in P(a), n in N(a) and 0 < D_an - D_ap <= margin (pytorch-metric-learning's
    "semihard" rule), the difference taken in the matrix's dtype. Built as the full B x N x N mask, in
    (a, p, n) order."""
    d = sq_dist.detach().cpu()
    labels = labels.cpu()
    ref = labels if ref_labels is None else ref_labels.cpu()
    metric = _metric(d, squared)
    diff = metric.unsqueeze(1) - metric.unsqueeze(2)  # diff[a, p, n] = D_an - D_ap
    same = labels.unsqueeze(1) == ref.unsqueeze(0)  # [B, N]
    positive = same.clone()
    if ref_labels is None:
        positive.fill_diagonal_(False)
    valid = positive.unsqueeze(2) & ~same.unsqueeze(1)
    window = (diff > 0) & (diff <= torch.tensor(margin, dtype=d.dtype))
    a, p, n = (valid & window).nonzero(as_tuple=True)
    return a.to(sq_dist.device), p.to(sq_dist.device), n.to(sq_dist.device)


def semi_hard_triplets_oracle(
    emb: Tensor, labels: Tensor, margin: float | None = None, *, squared: bool = True, fallback: str = "easiest"
) -> tuple[Tensor, Tensor, Tensor]:
    """`semi_hard_triplets` on float64 distances computed from the differences."""
    d = pairwise_sq_dist_oracle(emb.detach())
    return semi_hard_from_sq_dist_oracle(d, labels, margin, squared=squared, fallback=fallback)


def batch_hard_triplets_oracle(emb: Tensor, labels: Tensor, *, squared: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """`batch_hard_triplets` on float64 distances (``squared`` does not change the selection)."""
    return batch_hard_from_sq_dist_oracle(pairwise_sq_dist_oracle(emb.detach()), labels)


def all_semi_hard_triplets_oracle(
    emb: Tensor, labels: Tensor, margin: float = 0.2, *, squared: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """`all_semi_hard_triplets` on float64 distances computed from the differences."""
    d = pairwise_sq_dist_oracle(emb.detach())
    return all_semi_hard_from_sq_dist_oracle(d, labels, margin, squared=squared)


# Each mining kind's float64 rule over a distance matrix, and whether the loss's margin enters its
# selection: the oracle's own table, kept apart from the production one (mining.MINING) so that neither
# module imports the other; tests/test_miners.py checks that the two agree on kinds and margins.
MINING_ORACLES = {
    "semihard": (lambda d, y, m, sq: semi_hard_from_sq_dist_oracle(d, y, m, squared=sq), False),
    "batch_hard": (lambda d, y, m, sq: batch_hard_from_sq_dist_oracle(d, y), False),
    "all_semihard": (lambda d, y, m, sq: all_semi_hard_from_sq_dist_oracle(d, y, m, squared=sq), True),
}


# ---------------------------------------------------------------------------------------------------
# triplet_loss
# ---------------------------------------------------------------------------------------------------


def _distance_oracle(diff: Tensor, squared: bool) -> Tensor:
    """||diff||^2, or ||diff|| with gradient 0 (the minimum-norm subgradient) where it is exactly 0."""
    sq = diff.square().sum(1)
    if squared:
        return sq
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def triplet_loss_oracle(
    emb: Tensor,
    labels: Tensor | None,
    margin: float = 0.2,
    *,
    mining: str | tuple[Tensor, Tensor, Tensor] = "semihard",
    squared: bool = True,
    reduction: str = "mean",
    return_stats: bool = False,
):
    """L_t = max(D_ap - D_an + margin, 0) over the mined triplets, in float64 and differentiable in ``emb``.
    "semihard" mines without a margin filter (one triplet per positive pair, TF-Addons' fallback);
    "all_semihard" mines with the loss's margin and ``squared``. Reductions: "mean" over all triplets,
    "mean_active" over those with L_t > 0, "sum", "none"; an empty result gives 0."""
    x = emb.to(torch.float64)
    if isinstance(mining, str):
        check_choice("triplet_loss_oracle", "mining", mining, tuple(MINING_ORACLES))
        rule, margin_selects = MINING_ORACLES[mining]
        d = pairwise_sq_dist_oracle(x.detach())
        a, p, n = rule(d, labels, margin if margin_selects else None, squared)
    else:
        a, p, n = mining
    d_ap = _distance_oracle(x[a] - x[p], squared)
    d_an = _distance_oracle(x[a] - x[n], squared)
    loss = (d_ap - d_an + margin).clamp_min(0)
    count = loss.shape[0]
    active = (loss > 0).sum()
    if reduction == "mean":
        out = loss.sum() / max(count, 1)
    elif reduction == "mean_active":
        out = loss.sum() / active.clamp_min(1)
    elif reduction == "sum":
        out = loss.sum()
    elif reduction == "none":
        out = loss
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    if not return_stats:
        return out
    stats = {
        "num_triplets": count,
        "active_fraction": active.item() / max(count, 1),
        "mean_d_ap": d_ap.detach().sum().item() / max(count, 1),
        "mean_d_an": d_an.detach().sum().item() / max(count, 1),
    }
    return out, stats


# ---------------------------------------------------------------------------------------------------
# MagFace / ArcFace
# ---------------------------------------------------------------------------------------------------


def magface_loss_oracle(
    features: Tensor,
    weight: Tensor,
    labels: Tensor,
    *,
    scale: float = 64.0,
    l_a: float = 10.0,
    u_a: float = 110.0,
    l_m: float = 0.45,
    u_m: float = 0.8,
    lambda_g: float = 35.0,
    cos_eps: float = 1e-7,
) -> Tensor:
    """MagFace's loss in float64, straight from the formulas: a = clamp(||f||, l_a, u_a),
    m(a) = (u_m - l_m) / (u_a - l_a) (a - l_a) + l_m, g(a) = 1/a + a/u_a^2, theta = arccos of the clamped
    cosine, target logit s cos(theta_y + m) (s (cos theta_y - m sin m) where theta_y + m > pi, insightface's
    fallback), others s cos theta_j; loss = mean CE + lambda_g mean g. Differentiable in features and weight.
    ArcFace is l_m = u_m = margin, lambda_g = 0."""
    f, w = features.to(torch.float64), weight.to(torch.float64)
    norm = f.square().sum(1).sqrt()
    a = norm.clamp(l_a, u_a)
    m = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
    g = 1 / a + a / u_a**2
    cos = (f / norm.unsqueeze(1)) @ (w / w.square().sum(1, keepdim=True).sqrt()).T
    theta = cos.clamp(-1 + cos_eps, 1 - cos_eps).arccos()
    rows = torch.arange(f.shape[0])
    theta_y = theta[rows, labels]
    target = torch.where(theta_y + m <= torch.pi, torch.cos(theta_y + m), torch.cos(theta_y) - m * torch.sin(m))
    logits = (scale * torch.cos(theta)).index_put((rows, labels), scale * target)
    ce = torch.logsumexp(logits, 1) - scale * target
    return ce.mean() + lambda_g * g.mean()
