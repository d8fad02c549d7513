"""Plain float64 PyTorch references of every op, written straight from the definitions (tests and docs use them)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def l2_pool2d_reference(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False) -> Tensor:
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
