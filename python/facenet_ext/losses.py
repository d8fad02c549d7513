r"""Classification-style face losses on unnormalised features: MagFace (Meng et al., CVPR 2021) and its
special case ArcFace (Deng et al., CVPR 2019).

With :math:`a = \lVert f \rVert` clamped to :math:`[l_a, u_a]`, the target-class margin
:math:`m(a) = \frac{u_m - l_m}{u_a - l_a}(a - l_a) + l_m` and the regulariser :math:`g(a) = 1/a + a/u_a^2`,

.. math:: L = \operatorname{mean}_i \operatorname{CE}\big(s\cos(\theta_{i,y_i} + m(a_i)),
          \ s\cos\theta_{i,j \ne y_i}\big) + \lambda_g \operatorname{mean}_i g(a_i),

where :math:`\cos\theta_{ij} = \hat f_i \cdot \hat W_j`. ArcFace is :math:`l_m = u_m = m`, :math:`\lambda_g = 0`,
and is computed by the same code. After MagFace training, :math:`a` measures face quality
(:func:`facenet_ext.face_quality`); the normalised feature :math:`\hat f` is the embedding to compare faces by.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_embeddings, check_int, check_labels, check_real
from ._dispatch import acc_dtype, compiling

# cos θ is clamped to [-1 + COS_EPS, 1 - COS_EPS] before sin θ = sqrt(1 - cos² θ): at |cos θ| = 1 the
# derivative of the square root is infinite. 1e-7 is representable below 1 in float32 (spacing 6e-8).
COS_EPS = 1e-7
# ArcFace runs as MagFace with l_m = u_m and lambda_g = 0, where the magnitude clamp changes nothing but
# the reported g statistic; MagFace's default clamp keeps that statistic comparable between the two.
_ARCFACE_CLAMP = (10.0, 110.0)


def _number(fn: str, name: str, value: object) -> float:
    return check_real(fn, name, value, finite=True)


def _check_margin_params(fn: str, scale, l_a, u_a, l_m, u_m, lambda_g, m_names=("l_m", "u_m")) -> None:
    """MagFace's hyper-parameters. ``m_names`` lets ArcFace report its single ``margin``."""
    scale, l_a, u_a, l_m, u_m, lambda_g = (
        _number(fn, n, v)
        for n, v in zip(("scale", "l_a", "u_a", *m_names, "lambda_g"), (scale, l_a, u_a, l_m, u_m, lambda_g))
    )
    if scale <= 0:
        raise ValueError(f"{fn}: scale must be > 0, got {scale}")
    if not 0 < l_a < u_a:
        raise ValueError(f"{fn}: need 0 < l_a < u_a (the magnitude clamp), got l_a={l_a}, u_a={u_a}")
    # Up to pi/2 the fallback below steps the target cosine down (cos m + m sin m >= 1), so the target
    # logit stays monotone in theta; beyond about 2.33 rad it would step up.
    if not 0 <= l_m <= u_m <= math.pi / 2:
        if m_names[0] == m_names[1]:
            raise ValueError(f"{fn}: {m_names[0]} must lie in [0, pi/2], got {l_m}")
        raise ValueError(f"{fn}: need 0 <= l_m <= u_m <= pi/2 (the angular margins), got l_m={l_m}, u_m={u_m}")
    if lambda_g < 0:
        raise ValueError(f"{fn}: lambda_g must be >= 0, got {lambda_g}")


def _check_inputs(fn: str, features: object, weight: Tensor, labels: object) -> tuple[Tensor, Tensor]:
    features = check_embeddings(fn, features, "features")
    if features.shape[1] != weight.shape[1]:
        raise ValueError(f"{fn}: features have width {features.shape[1]} but in_features is {weight.shape[1]}")
    if features.device != weight.device:
        raise ValueError(f"{fn}: features are on {features.device} but the class centres are on {weight.device}")
    labels = check_labels(fn, labels, features.shape[0], features.device)
    # The range check reads two numbers back; like check_finite it runs eagerly on CPU tensors only (on
    # CUDA an out-of-range label fails in cross_entropy's device-side assert).
    if labels.device.type == "cpu" and not compiling():
        lo, hi = torch.aminmax(labels)
        if int(lo) < 0 or int(hi) >= weight.shape[0]:
            raise ValueError(
                f"{fn}: labels must lie in [0, num_classes) = [0, {weight.shape[0]}), "
                f"got values in [{int(lo)}, {int(hi)}]"
            )
    # int32/int16/uint8 labels are accepted, as by the miners; gather and cross_entropy want int64.
    return features, labels.long()


def _margin_loss(fn, features, weight, labels, scale, l_a, u_a, l_m, u_m, lambda_g, return_stats):
    """The one implementation behind MagFaceLoss and ArcFaceLoss (see MagFaceLoss for the numerics)."""
    features, labels = _check_inputs(fn, features, weight, labels)
    # Under autocast the matmul below would run in float16/bfloat16 while the target cosine is computed
    # in float32 (scatter then fails on the mixed dtypes), and the margin's cos/sin need the precision:
    # the loss opts out and computes in the dtype stated below, whatever the autocast region asks.
    with torch.autocast(features.device.type, enabled=False):
        return _margin_loss_body(features, weight, labels, scale, l_a, u_a, l_m, u_m, lambda_g, return_stats)


def _margin_loss_body(features, weight, labels, scale, l_a, u_a, l_m, u_m, lambda_g, return_stats):
    dtype = acc_dtype(torch.promote_types(features.dtype, weight.dtype))
    f = features.to(dtype)
    magnitude = torch.linalg.vector_norm(f, dim=1)
    a = magnitude.clamp(l_a, u_a)  # outside the clamp m(a) and g(a) are constant: no gradient on a
    m = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
    g = 1 / a + a / u_a**2

    cos = (F.normalize(f, dim=1) @ F.normalize(weight.to(dtype), dim=1).T).clamp(-1 + COS_EPS, 1 - COS_EPS)
    cos_y = cos.gather(1, labels.unsqueeze(1)).squeeze(1)
    sin_y = (1 - cos_y.square()).sqrt()
    cos_y_m = cos_y * torch.cos(m) - sin_y * torch.sin(m)  # cos(θ_y + m)
    # Where θ_y + m > π, cos(θ_y + m) would rise again as θ_y grows; insightface's fallback (no
    # "easy margin") replaces it there by cos θ_y - m·sin m, which keeps the target logit decreasing in θ_y
    # (it steps down at θ_y = π - m, from -1 to -cos m - m·sin m).
    cos_y_m = torch.where(cos_y > torch.cos(math.pi - m), cos_y_m, cos_y - m * torch.sin(m))
    logits = cos.scatter(1, labels.unsqueeze(1), cos_y_m.unsqueeze(1)) * scale

    ce = F.cross_entropy(logits, labels)
    g_mean = g.mean()
    loss = ce + lambda_g * g_mean
    if not return_stats:
        return loss
    stats = {
        "ce": ce.detach(),
        "g": g_mean.detach(),
        "magnitude": magnitude.detach().mean(),
        "margin": m.detach().mean(),
    }
    return loss, stats


class _MarginHead(nn.Module):
    """The class centres W [num_classes, in_features] of a margin-softmax loss. Its hyper-parameters
    (``HYPER_PARAMETERS``) travel in the state dict with the weights, and loading a state saved with other
    values raises ``ValueError`` instead of silently training or scoring a different loss."""

    HYPER_PARAMETERS: tuple[str, ...] = ()

    def __init__(self, fn: str, in_features: int, num_classes: int) -> None:
        super().__init__()
        in_features = check_int(fn, "in_features", in_features, low=1)
        num_classes = check_int(fn, "num_classes", num_classes, low=1)
        self.in_features = in_features
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Unit rows in uniformly random directions (only the direction of a class centre matters)."""
        with torch.no_grad():
            self.weight.copy_(F.normalize(torch.randn_like(self.weight), dim=1))

    def get_extra_state(self) -> dict:
        return {name: getattr(self, name) for name in self.HYPER_PARAMETERS}

    def set_extra_state(self, state: dict) -> None:
        differ = [
            f"{k}={state[k]!r} (this loss: {getattr(self, k)!r})"
            for k in self.HYPER_PARAMETERS
            if k in state and state[k] != getattr(self, k)
        ]
        if differ:
            name = type(self).__name__
            raise ValueError(
                f"{name}.load_state_dict: the state was saved with other hyper-parameters: "
                f"{', '.join(differ)}; construct the {name} with the saved values"
            )

    @staticmethod
    def embed(features: Tensor) -> Tensor:
        """The evaluation embedding f / ‖f‖ (rows with ‖f‖ = 0 stay 0)."""
        return F.normalize(features, dim=1)


class MagFaceLoss(_MarginHead):
    r"""MagFace (Meng et al., CVPR 2021): ArcFace with a margin that grows with the feature magnitude
    a = ‖f‖ and a regulariser g(a) rewarding large magnitudes, so that after training a measures face
    quality (formulas in the module docstring; the defaults are the paper's). Holds the class centres
    ``weight`` [num_classes, in_features]; called as ``loss(features, labels)`` with unnormalised
    ``features`` [B, in_features] and integer ``labels`` [B] in [0, num_classes).

    Numerics: cos θ is clamped to [-1 + 1e-7, 1 - 1e-7] before sin θ = sqrt(1 - cos² θ);
    cos(θ_y + m) = cos θ_y cos m - sin θ_y sin m, and where θ_y + m > π (cos θ_y <= cos(π - m)) the target
    cosine is cos θ_y - m sin m (insightface's fallback), so the target logit stays monotone in θ_y.
    float16/bfloat16 features are computed in float32, otherwise the promoted dtype of features and
    weight, also inside a ``torch.autocast`` region (the loss turns autocast off for itself). A row with
    a = 0 gives f̂ = 0 and finite gradients. ``labels`` may be any integer dtype (int64, int32, uint8...).

    With ``return_stats=True`` returns ``(loss, stats)``, ``stats`` holding detached 0-d tensors (no host
    sync): ``ce`` (mean cross-entropy), ``g`` (mean g(a), so loss = ce + lambda_g * g), ``magnitude``
    (mean ‖f‖, not clamped) and ``margin`` (mean m(a)).

    >>> head = MagFaceLoss(512, 1000)
    >>> f = backbone(images)                                # doctest: +SKIP
    >>> loss = head(f, labels)                              # doctest: +SKIP
    >>> emb, quality = head.embed(f), fx.face_quality(f)    # doctest: +SKIP
    """

    HYPER_PARAMETERS = ("scale", "l_a", "u_a", "l_m", "u_m", "lambda_g")

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        scale: float = 64.0,
        l_a: float = 10.0,
        u_a: float = 110.0,
        l_m: float = 0.45,
        u_m: float = 0.8,
        lambda_g: float = 35.0,
    ) -> None:
        _check_margin_params("MagFaceLoss", scale, l_a, u_a, l_m, u_m, lambda_g)
        super().__init__("MagFaceLoss", in_features, num_classes)
        self.scale, self.l_a, self.u_a, self.l_m, self.u_m, self.lambda_g = map(
            float, (scale, l_a, u_a, l_m, u_m, lambda_g)
        )

    def forward(self, features: Tensor, labels: Tensor, *, return_stats: bool = False):
        return _margin_loss(
            "MagFaceLoss",
            features,
            self.weight,
            labels,
            self.scale,
            self.l_a,
            self.u_a,
            self.l_m,
            self.u_m,
            self.lambda_g,
            return_stats,
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, scale={self.scale}, "
            f"l_a={self.l_a}, u_a={self.u_a}, l_m={self.l_m}, u_m={self.u_m}, lambda_g={self.lambda_g}"
        )


class ArcFaceLoss(_MarginHead):
    r"""ArcFace (Deng et al., CVPR 2019): target logit s·cos(θ_y + m), others s·cos θ_j, mean
    cross-entropy. Computed as MagFace with l_m = u_m = ``margin`` and lambda_g = 0 (the magnitude clamp
    then changes nothing but the ``g`` statistic, reported with MagFace's default [l_a, u_a] = [10, 110]).
    """

    HYPER_PARAMETERS = ("scale", "margin")

    def __init__(self, in_features: int, num_classes: int, scale: float = 64.0, margin: float = 0.5) -> None:
        _check_margin_params("ArcFaceLoss", scale, *_ARCFACE_CLAMP, margin, margin, 0.0, m_names=("margin", "margin"))
        super().__init__("ArcFaceLoss", in_features, num_classes)
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, features: Tensor, labels: Tensor, *, return_stats: bool = False):
        return _margin_loss(
            "ArcFaceLoss",
            features,
            self.weight,
            labels,
            self.scale,
            *_ARCFACE_CLAMP,
            self.margin,
            self.margin,
            0.0,
            return_stats,
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, scale={self.scale}, margin={self.margin}"
        )


__all__ = ["MagFaceLoss", "ArcFaceLoss"]
