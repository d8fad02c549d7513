"""Synthetic image degradations: the low-quality faces of the quality experiments (MagFace's magnitude
should fall on them), and an optional training augmentation that puts such faces into training, where
MagFace can learn that they are hard.

Five kinds (``DEGRADATIONS``): Gaussian blur (sigma 3 px), Gaussian noise (sigma 50 grey levels), a grey
square over a quarter of the image (occlusion), low resolution (down to a quarter of the side by area
averaging, back up bilinearly) and JPEG compression at quality 8. Only noise and occlusion draw random
numbers; low resolution and JPEG are fixed functions of the image, so adding them left the random stream
(and the result) of the first three kinds unchanged for a seed.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DEGRADATIONS = ("blur", "noise", "occlusion", "lowres", "jpeg")
#: The three kinds of the ORL experiment and the trainer's ``--degrade`` before low resolution and JPEG.
CLASSIC = ("blur", "noise", "occlusion")
LOWRES_FACTOR = 4
JPEG_QUALITY = 8


def parse_kinds(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"blur,noise"`` (or a sequence of names) -> the kinds, checked against DEGRADATIONS; "all" is every kind."""
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    names = list(DEGRADATIONS) if names == ["all"] else [n for n in names if n]
    unknown = [n for n in names if n not in DEGRADATIONS]
    if unknown or not names:
        raise ValueError(f"degradation kinds must be 'all' or a comma list of {', '.join(DEGRADATIONS)}; got {text!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"degradation kinds repeat a name: {text!r}")
    return tuple(names)


def _blur(x: Tensor) -> Tensor:
    r = torch.arange(-9, 10, dtype=torch.float32)
    k = torch.exp(-(r**2) / (2 * 3.0**2))
    k = (k / k.sum()).view(1, 1, 1, -1)
    n, c, h, w = x.shape
    y = x.flatten(0, 1).unsqueeze(1)
    y = F.conv2d(F.pad(y, (9, 9, 0, 0), mode="replicate"), k)
    y = F.conv2d(F.pad(y, (0, 0, 9, 9), mode="replicate"), k.transpose(2, 3))
    return y.view(n, c, h, w)


def _lowres(x: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, h // LOWRES_FACTOR), max(1, w // LOWRES_FACTOR)), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def _jpeg(images: Tensor) -> Tensor:
    from PIL import Image  # imported on use: about 0.1 s that --help does not need

    out = []
    for img in images.numpy():
        a = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(a)).save(buf, format="JPEG", quality=JPEG_QUALITY)
        b = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.uint8)
        out.append(b[None] if b.ndim == 2 else b.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).float()


def degrade(
    images: Tensor, fraction: float, generator: torch.Generator, kinds: tuple[str, ...] | str = CLASSIC
) -> tuple[Tensor, Tensor]:
    """A copy of uint8 images [N, C, H, W] with round(fraction * N) of them, chosen at random, degraded,
    in equal shares by each of ``kinds`` (default the classic three: blur, noise, occlusion; "all" or
    any subset of DEGRADATIONS, see the module doc); returns the copy and the degradation per image
    (-1 = clean, else an index into DEGRADATIONS). Deterministic for a generator state."""
    kinds = parse_kinds(kinds)
    code = torch.tensor([DEGRADATIONS.index(k) for k in kinds], dtype=torch.int64)
    g = generator
    n, _, h, w = images.shape
    chosen = torch.randperm(n, generator=g)[: round(fraction * n)]
    kind = torch.full((n,), -1, dtype=torch.int64)
    kind[chosen] = code[torch.arange(chosen.numel()) % len(kinds)]
    x = images.float()
    out = x.clone()
    blur = kind == DEGRADATIONS.index("blur")
    if blur.any():
        out[blur] = _blur(x[blur])
    noise = kind == DEGRADATIONS.index("noise")
    if noise.any():
        out[noise] = x[noise] + 50.0 * torch.randn(x[noise].shape, generator=g)
    for i in (kind == DEGRADATIONS.index("occlusion")).nonzero().flatten().tolist():
        top, left = (
            torch.randint(0, h // 2 + 1, (1,), generator=g).item(),
            torch.randint(0, w // 2 + 1, (1,), generator=g).item(),
        )
        out[i, :, top : top + h // 2, left : left + w // 2] = 128.0
    low = kind == DEGRADATIONS.index("lowres")
    if low.any():
        out[low] = _lowres(x[low])
    jpeg = kind == DEGRADATIONS.index("jpeg")
    if jpeg.any():
        out[jpeg] = _jpeg(images[jpeg])
    return out.round().clamp(0, 255).to(torch.uint8), kind
