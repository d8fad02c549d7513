"""Synthetic image degradations: the low-quality faces of the quality experiments (MagFace's magnitude
should fall on them), and an optional training augmentation that puts such faces into training, where
MagFace can learn that they are hard."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DEGRADATIONS = ("blur", "noise", "occlusion")


def degrade(images: Tensor, fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A copy of uint8 images [N, C, H, W] with round(fraction * N) of them, chosen at random, degraded,
    a third each by Gaussian blur (sigma 3 px), Gaussian noise (sigma 50 grey levels) and a grey square
    over a quarter of the image; returns the copy and the degradation per image (-1 = clean, else an
    index into DEGRADATIONS)."""
    g = generator
    n, _, h, w = images.shape
    chosen = torch.randperm(n, generator=g)[: round(fraction * n)]
    kind = torch.full((n,), -1, dtype=torch.int64)
    kind[chosen] = torch.arange(chosen.numel()) % len(DEGRADATIONS)
    x = images.float()
    out = x.clone()
    blur = kind == 0
    if blur.any():
        r = torch.arange(-9, 10, dtype=torch.float32)
        k = torch.exp(-(r**2) / (2 * 3.0**2))
        k = (k / k.sum()).view(1, 1, 1, -1)
        y = x[blur].flatten(0, 1).unsqueeze(1)
        y = F.conv2d(F.pad(y, (9, 9, 0, 0), mode="replicate"), k)
        y = F.conv2d(F.pad(y, (0, 0, 9, 9), mode="replicate"), k.transpose(2, 3))
        out[blur] = y.view(-1, x.shape[1], h, w)
    noise = kind == 1
    out[noise] = x[noise] + 50.0 * torch.randn(x[noise].shape, generator=g)
    for i in (kind == 2).nonzero().flatten().tolist():
        top, left = torch.randint(0, h // 2 + 1, (1,), generator=g).item(), torch.randint(0, w // 2 + 1, (1,), generator=g).item()
        out[i, :, top : top + h // 2, left : left + w // 2] = 128.0
    return out.round().clamp(0, 255).to(torch.uint8), kind
