"""L2 pooling, the pooling inside FaceNet NN2's Inception modules: the wrapper, its fake kernels and
its autograd."""

from __future__ import annotations

import torch
from torch import Tensor
from torch._jit_internal import BroadcastingList2  # what F.max_pool2d uses: TorchScript reads an int as a pair

from . import _C  # noqa: F401  (loads the library: registers torch.ops.facenet_ext.*)
from ._checks import check_tensor
from ._dispatch import apply_function

_ops = torch.ops.facenet_ext
Pair = tuple[int, int]


def l2_pool2d(
    x: Tensor,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    ceil_mode: bool = False,
) -> Tensor:
    r"""2-D L2 pooling: :math:`y = \sqrt{\sum_{\text{window}} x^2}` over each window, with zero padding
    (padded positions count as zeros), as in FaceNet NN2's Inception modules.

    ``x``: [N, C, H, W] or [C, H, W], floating point. ``kernel_size``, ``stride`` and ``padding`` take an
    int or a pair; ``stride=None`` means ``stride = kernel_size``; ``padding`` is at most half the kernel.
    The output shape and the ``ceil_mode`` rule are exactly those of ``F.max_pool2d`` with the same
    arguments (with ``ceil_mode``, a last window that would start in the right padding is dropped).
    For ``padding=0`` and ``ceil_mode=False`` this equals ``F.lp_pool2d(x, 2, kernel_size, stride)``,
    in one pass and without its NaN gradients at zero.

    float16/bfloat16 accumulate in float32 and return the input dtype. Channels-last (or any
    non-contiguous) input is copied to contiguous NCHW first; the output is NCHW-contiguous.

    Gradient: :math:`\partial y / \partial x = x / y` summed over the windows containing ``x``, taken as 0
    where :math:`y = 0` (an all-zero window), never NaN. The backward allocates nothing of full size
    besides the result. ``torch.func`` transforms (``grad``, ``jacrev``, ``vjp``, ``vmap``) work;
    ``vmap`` runs the op once per batch element. Double backward is not supported: differentiating the
    gradient raises ``RuntimeError``. ``torch.jit.script`` compiles :class:`facenet_ext.nn.L2Pool2d`
    (not this function, whose argument checks are Python).
    """
    fn = "l2_pool2d"
    x = check_tensor(fn, "x", x)
    _check_input(fn, x)
    k, s, p = pool_params(fn, kernel_size, stride, padding)
    _check_output_size(fn, x, k, s, p, ceil_mode)
    batched = x.dim() == 4
    out = apply_function(_L2Pool2dFunction, x if batched else x.unsqueeze(0), k, s, p, bool(ceil_mode))
    return out if batched else out.squeeze(0)


def _l2_pool2d_script(
    x: Tensor,
    kernel_size: BroadcastingList2[int],
    stride: BroadcastingList2[int],
    padding: BroadcastingList2[int],
    ceil_mode: bool,
) -> Tensor:
    """What :class:`facenet_ext.nn.L2Pool2d` runs under ``torch.jit.script``: the checks TorchScript can
    compile (the module checked its int/pair arguments at construction, and the op checks them again),
    then the registered op, whose autograd is the ``register_autograd`` below. Not for eager use: the
    ``BroadcastingList2`` annotations only tell TorchScript that an int means a pair, as in
    ``F.max_pool2d``; eager callers use :func:`l2_pool2d`."""
    fn = "L2Pool2d"
    _check_input(fn, x)
    _check_output_size(fn, x, kernel_size, stride, padding, ceil_mode)
    batched = len(x.shape) == 4  # not x.dim(): see _check_input
    out = _ops.l2_pool2d(x if batched else x.unsqueeze(0), kernel_size, stride, padding, ceil_mode)
    return out if batched else out.squeeze(0)


# The checks below are shared by the eager and the TorchScript paths, so they are written in the
# subset TorchScript compiles (typed, no tuple(), no Python-only helpers).
def _check_input(fn: str, x: Tensor) -> None:
    # len(x.shape), not x.dim(): TorchScript's optimiser folds x.dim() to 4 after a Conv2d even when the
    # conv got an unbatched [C, H, W] input (it assumes conv2d returns 4-D), which would skip both this
    # check and the unsqueeze; len(x.shape) is read at run time.
    rank = len(x.shape)
    if rank != 3 and rank != 4:
        raise ValueError(f"{fn}: x must be 4-D [N, C, H, W] or 3-D [C, H, W], got shape {_shape_str(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: x must be floating point (float16/bfloat16/float32/float64), got {_dtype_str(x)}")


def _check_output_size(fn: str, x: Tensor, k: list[int], s: list[int], p: list[int], ceil_mode: bool) -> None:
    h, w = x.shape[-2], x.shape[-1]
    out_h, out_w = _out_size(h, k[0], s[0], p[0], ceil_mode), _out_size(w, k[1], s[1], p[1], ceil_mode)
    if h < 1 or w < 1 or out_h < 1 or out_w < 1:
        raise ValueError(
            f"{fn}: x of spatial size {h}x{w} is too small for kernel_size {_shape_str(k)} with padding "
            f"{_shape_str(p)}: the output would be {out_h}x{out_w}"
        )


def _shape_str(values: list[int]) -> str:
    """A shape or pair as Python prints a tuple, in eager mode and in TorchScript alike."""
    if len(values) == 1:
        return f"({values[0]},)"
    return "(" + ", ".join([str(v) for v in values]) + ")"


def _dtype_str(x: Tensor) -> str:
    if torch.jit.is_scripting():  # TorchScript would print a dtype as its enum number
        return "a non-floating dtype"
    return str(x.dtype)


def pool_params(fn: str, kernel_size: object, stride: object, padding: object) -> tuple[Pair, Pair, Pair]:
    """Validates kernel_size/stride/padding with torch's pooling rules and returns them as pairs."""
    k = _pair(fn, "kernel_size", kernel_size, minimum=1)
    s = k if stride is None else _pair(fn, "stride", stride, minimum=1)
    p = _pair(fn, "padding", padding, minimum=0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{fn}: padding {p} must be at most half of kernel_size {k} (torch's pooling rule)")
    return k, s, p


def _pair(fn: str, name: str, value: object, minimum: int) -> Pair:
    pair = (value, value) if isinstance(value, int) else value
    if not (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    ):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _out_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """F.max_pool2d's output size (rules/l2_pool_rules.h: pool_out_size); works on SymInts (the fake
    kernel) and compiles under TorchScript."""
    out = (size + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out = out - 1
    return out


@torch.library.register_fake("facenet_ext::l2_pool2d")
def _(x, kernel_size, stride, padding, ceil_mode):
    torch._check(x.dim() == 4, lambda: f"l2_pool2d: x must be 4-D, got {x.dim()}-D")
    n, c, h, w = x.shape
    out_h = _out_size(h, kernel_size[0], stride[0], padding[0], ceil_mode)
    out_w = _out_size(w, kernel_size[1], stride[1], padding[1], ceil_mode)
    return x.new_empty((n, c, out_h, out_w))


@torch.library.register_fake("facenet_ext::l2_pool2d_backward")
def _(grad_out, x, out, kernel_size, stride, padding, ceil_mode):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


# Autograd. torch.func (grad, jacrev, vjp, vmap) accepts only an autograd.Function with a separate
# setup_context, and the Function that register_autograd generates for an op defined in C++ is not of
# that form ("must override the setup_context staticmethod"). So the eager wrapper goes through the two
# Functions below, and the ops keep their registrations (same setup and backward) for direct torch.ops
# calls and TorchScript.
def _setup(ctx, inputs, output):
    x, kernel_size, stride, padding, ceil_mode = inputs
    ctx.params = (kernel_size, stride, padding, ceil_mode)
    ctx.save_for_backward(x, output)


def _backward(ctx, grad_out):
    x, out = ctx.saved_tensors
    return apply_function(_L2Pool2dBackwardFunction, grad_out, x, out, *ctx.params), None, None, None, None


def _no_double_backward(ctx, *grads):
    raise RuntimeError(
        "l2_pool2d: double backward is not supported (the gradient of l2_pool2d's gradient is not implemented)"
    )


def _no_setup(ctx, inputs, output):
    pass


class _L2Pool2dFunction(torch.autograd.Function):
    generate_vmap_rule = True  # the op runs under vmap (once per batch element)

    @staticmethod
    def forward(x, kernel_size, stride, padding, ceil_mode):
        return _ops.l2_pool2d(x, kernel_size, stride, padding, ceil_mode)

    setup_context = staticmethod(_setup)
    backward = staticmethod(_backward)


class _L2Pool2dBackwardFunction(torch.autograd.Function):
    """The backward op: its own backward raises, so the first backward works under create_graph=True
    (and under torch.func.grad, which always builds the graph) and only differentiating it raises."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_out, x, out, kernel_size, stride, padding, ceil_mode):
        return _ops.l2_pool2d_backward(grad_out, x, out, kernel_size, stride, padding, ceil_mode)

    setup_context = staticmethod(_no_setup)
    backward = staticmethod(_no_double_backward)


torch.library.register_autograd("facenet_ext::l2_pool2d", _backward, setup_context=_setup)
torch.library.register_autograd("facenet_ext::l2_pool2d_backward", _no_double_backward, setup_context=_no_setup)

__all__ = ["l2_pool2d"]
