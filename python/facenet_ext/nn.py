"""torch.nn modules over the facenet_ext ops."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .pooling import Pair, _l2_pool2d_script, l2_pool2d, pool_params


class L2Pool2d(nn.Module):
    r"""2-D L2 pooling, :math:`y = \sqrt{\sum_{\text{window}} x^2}` with zero padding: the pooling of
    FaceNet NN2's Inception modules. See :func:`facenet_ext.l2_pool2d`; ``stride=None`` means
    ``stride = kernel_size``. Arguments are checked here, so a bad configuration fails at construction.
    ``torch.jit.script`` compiles it (alone or inside a model) like torch's own pooling modules, and the
    scripted module saves and loads with ``torch.jit.save``/``torch.jit.load`` in a process that has
    imported ``facenet_ext`` (the op and its autograd are registered on import).

    >>> L2Pool2d(3, stride=1, padding=1)
    L2Pool2d(kernel_size=3, stride=1, padding=1, ceil_mode=False)
    """

    def __init__(
        self,
        kernel_size: int | Pair,
        stride: int | Pair | None = None,
        padding: int | Pair = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        pool_params("L2Pool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():  # TorchScript compiles only this branch: l2_pool2d's checks are Python
            return _l2_pool2d_script(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        return l2_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, ceil_mode={self.ceil_mode}"
        )


__all__ = ["L2Pool2d"]
