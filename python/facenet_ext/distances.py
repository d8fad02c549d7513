"""``pairwise_sq_dist``: the public wrapper and its autograd."""

from __future__ import annotations

import torch
from torch import Tensor

from . import _custom_ops  # noqa: F401  (loads the library and the ops' fake kernels)
from ._checks import check_tensor
from ._dispatch import apply_function, below_autograd, needs_grad

_ops = torch.ops.facenet_ext


def pairwise_sq_dist(x: Tensor, y: Tensor | None = None) -> Tensor:
    r"""Squared Euclidean distances :math:`D_{ij} = \lVert x_i - y_j \rVert^2`.

    ``x``: [B, D]; ``y``: [N, D] or ``None`` (then ``y = x``, and the result is exactly symmetric with an
    exactly zero diagonal). Never negative. float16/bfloat16 inputs accumulate, and return, in float32;
    float32/float64 return their own dtype. Differentiable in ``x`` and ``y`` (entries clamped to 0 carry
    no gradient), twice included. NaN/Inf inputs raise ``ValueError`` on the CPU; on CUDA (where a check
    would cost a host sync) they propagate to NaN distances, as with ``torch.cdist``.
    """
    fn = "pairwise_sq_dist"
    check_tensor(fn, "x", x)
    if y is not None:
        check_tensor(fn, "y", y)
    if needs_grad(x, y):
        return apply_function(_PairwiseSqDist, x, y)
    with below_autograd():
        return _ops.pairwise_sq_dist(x, y)


def _pairwise_setup(ctx, inputs, output):
    x, y = inputs
    ctx.has_y = y is not None
    ctx.save_for_backward(x, y if y is not None else x, output)


def _pairwise_backward(ctx, grad):
    x, y, out = ctx.saved_tensors
    # Entries clamped to zero (and the diagonal) carry no gradient; at a true zero distance the
    # analytic gradient 2 (x_i - y_j) is zero too, so the mask is exact.
    g = grad.to(out.dtype) * (out > 0)
    xa = x.to(out.dtype)
    if not ctx.has_y:
        gs = g + g.transpose(0, 1)
        grad_x = 2 * (gs.sum(1, keepdim=True) * xa - gs @ xa)
        return grad_x.to(x.dtype), None
    ya = y.to(out.dtype)
    grad_x = 2 * (g.sum(1, keepdim=True) * xa - g @ ya)
    grad_y = 2 * (g.sum(0).unsqueeze(1) * ya - g.transpose(0, 1) @ xa)
    return grad_x.to(x.dtype), grad_y.to(y.dtype)


torch.library.register_autograd("facenet_ext::pairwise_sq_dist", _pairwise_backward, setup_context=_pairwise_setup)


# The public functions differentiate through these torch.autograd.Functions, which carry the same
# backward as the ops' register_autograd registration (used by direct torch.ops calls): the autograd
# class that register_autograd generates has no setup_context, so torch.func (grad, jacrev, vmap) refuses
# it; a Function with setup_context composes with torch.func.
class _PairwiseSqDist(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, y):
        with below_autograd():
            return _ops.pairwise_sq_dist(x, y)

    setup_context = staticmethod(_pairwise_setup)
    backward = staticmethod(_pairwise_backward)
