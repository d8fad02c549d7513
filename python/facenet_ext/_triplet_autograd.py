"""The triplet losses' autograd: the backward of ``triplet_loss_forward`` (registered on the op, for direct
``torch.ops`` calls, and as Functions with ``setup_context`` for the public ``triplet_loss``, so that it
composes with ``torch.func``), the reduced loss as one node, and the fused all-semi-hard loss's gradient.
Second derivatives (``create_graph=True``) go through a plain PyTorch expression of the same gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from . import _custom_ops  # noqa: F401  (loads the library and the ops' fake kernels)
from ._dispatch import acc_dtype, below_autograd

_ops = torch.ops.facenet_ext


class AllSemiHardLoss(torch.autograd.Function):
    """(sums, counts) of the all_semi_hard_loss op; the gradient of sums[0] (the summed loss) from the op's
    coefficient matrix C: dL/dx_a = sum_j (C_aj + C_ja)(x_a - x_j), two GEMMs and no triplet list."""

    @staticmethod
    def forward(emb, labels, margin, squared):
        sums, counts, coef = _ops.all_semi_hard_loss(emb, labels, margin, squared, True)
        return sums, counts, coef

    @staticmethod
    def setup_context(ctx, inputs, output):
        emb, labels, margin, squared = inputs
        ctx.set_materialize_grads(False)
        ctx.margin, ctx.squared = margin, squared
        ctx.mark_non_differentiable(output[1], output[2])
        ctx.save_for_backward(emb, labels, output[2])

    @staticmethod
    def backward(ctx, grad_sums, _grad_counts, _grad_coef):
        emb, labels, coef = ctx.saved_tensors
        if grad_sums is None:
            return None, None, None, None
        g = grad_sums[0]
        if torch.is_grad_enabled():
            # create_graph=True: list the triplets once and differentiate the plain PyTorch expression,
            # so second derivatives are exact (as on the materialised path).
            x = emb.detach()
            a, p, n = _ops.all_semi_hard_triplets(x, labels, ctx.margin, ctx.squared)
            loss = _ops.triplet_loss_forward(x, a, p, n, ctx.margin, ctx.squared)[0]
            grad = _triplet_grad_differentiable(g.expand(loss.shape), emb, a, p, n, loss, ctx.squared)
            return grad, None, None, None
        # A fresh packed copy (B x D, cheap next to the GEMMs): BLAS rounds differently for differently
        # aligned storage, and the gradient must not depend on the layout the caller passed.
        x = emb.to(coef.dtype, memory_format=torch.contiguous_format, copy=True)
        out = (coef.sum(1) + coef.sum(0)).unsqueeze(1) * x
        out = out.addmm_(coef, x, alpha=-1).addmm_(coef.t(), x, alpha=-1)
        return (out * g.to(coef.dtype)).to(emb.dtype), None, None, None


def _triplet_setup(ctx, inputs, output):
    emb, a, p, n, margin, squared = inputs
    loss, d_ap, d_an = output
    ctx.set_materialize_grads(False)  # d_ap and d_an are never differentiated: no zero tensors for them
    ctx.squared = squared
    ctx.save_for_backward(emb, a, p, n, loss, d_ap, d_an)


def _triplet_backward(ctx, grad_loss, _grad_d_ap, _grad_d_an):
    emb, a, p, n, loss, d_ap, d_an = ctx.saved_tensors
    if grad_loss is None:  # only d_ap/d_an were used, and they carry no gradient
        return None, None, None, None, None, None
    if torch.is_grad_enabled():
        # create_graph=True: the same gradient as a differentiable PyTorch expression, so second
        # derivatives (Hessian-vector products, gradient penalties) are exact rather than silently 0.
        grad = _triplet_grad_differentiable(grad_loss, emb, a, p, n, loss, ctx.squared)
    else:
        grad = _ops.triplet_loss_backward(grad_loss, emb, a, p, n, loss, d_ap, d_an, ctx.squared)
    return grad, None, None, None, None, None


def _triplet_grad_differentiable(
    grad_loss: Tensor, emb: Tensor, a: Tensor, p: Tensor, n: Tensor, loss: Tensor, squared: bool
) -> Tensor:
    """dL/d emb of the per-triplet losses weighted by ``grad_loss``, in differentiable ops. The same rule
    as csrc/rules/triplet_rules.h: weights cp on (x_a - x_p) and cn on (x_a - x_n), zero for inactive
    triplets and, for plain distances, zero at a zero distance (never NaN)."""
    acc = acc_dtype(emb.dtype)
    x = emb.to(acc)
    u, v = x[a] - x[p], x[a] - x[n]
    g = grad_loss.to(acc) * (loss > 0)
    if squared:
        cp = cn = 2 * g
    else:
        cp, cn = (
            torch.where(d > 0, g / torch.where(d > 0, d, 1).sqrt(), 0) for d in (u.square().sum(1), v.square().sum(1))
        )
    wu, wv = cp.unsqueeze(1) * u, cn.unsqueeze(1) * v
    grad = torch.zeros_like(x).index_add(0, a, wu - wv).index_add(0, p, -wu).index_add(0, n, wv)
    return grad.to(emb.dtype)


torch.library.register_autograd("facenet_ext::triplet_loss_forward", _triplet_backward, setup_context=_triplet_setup)


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """The reduction named: "mean" (over all triplets), "mean_active" (over those with a non-zero loss)
    or "sum"."""
    if reduction == "mean":
        # A Python count divides as a float: no int-to-float tensor copy.
        return loss.sum() / torch.sym_float(torch.sym_max(loss.shape[0], 1))
    if reduction == "mean_active":
        return loss.sum() / (loss > 0).sum().clamp_min(1)
    return loss.sum()


class TripletLossReduced(torch.autograd.Function):
    """triplet_loss_forward and the reduction as one autograd node: (reduced loss, then the per-triplet
    loss, d_ap and d_an, not differentiable, for the statistics)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(emb, a, p, n, margin, squared, reduction):
        with below_autograd():
            loss, d_ap, d_an = _ops.triplet_loss_forward(emb, a, p, n, margin, squared)
        return reduce_loss(loss, reduction), loss, d_ap, d_an

    @staticmethod
    def setup_context(ctx, inputs, output):
        emb, a, p, n, margin, squared, reduction = inputs
        _, loss, d_ap, d_an = output
        ctx.mark_non_differentiable(loss, d_ap, d_an)
        _triplet_setup(ctx, (emb, a, p, n, margin, squared), (loss, d_ap, d_an))
        ctx.reduction = reduction

    @staticmethod
    def backward(ctx, grad_out, _grad_loss, _grad_d_ap, _grad_d_an):
        if grad_out is None:
            return None, None, None, None, None, None, None
        loss = ctx.saved_tensors[4]
        if ctx.reduction == "mean":
            grad_out = grad_out / torch.sym_float(torch.sym_max(loss.shape[0], 1))
        elif ctx.reduction == "mean_active":
            grad_out = grad_out / (loss > 0).sum().clamp_min(1)
        # The gradient of each triplet's loss is one number: expanded, no copy (the kernel reads strides).
        grads = _triplet_backward(ctx, grad_out.to(loss.dtype).expand(loss.shape), None, None)
        return (*grads, None)


class TripletLoss(torch.autograd.Function):
    """triplet_loss_forward for the public function (why a Function as well as the op's registration:
    distances._PairwiseSqDist)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(emb, a, p, n, margin, squared):
        with below_autograd():
            return _ops.triplet_loss_forward(emb, a, p, n, margin, squared)

    setup_context = staticmethod(_triplet_setup)
    backward = staticmethod(_triplet_backward)
