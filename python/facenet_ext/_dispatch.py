"""How the public wrappers call the native ops: around or below autograd, and in which dtype.

Not argument checking (that is ``_checks``): the plumbing every wrapper with an autograd.Function uses.
"""

from __future__ import annotations

import contextlib

import torch

try:  # what Function.apply does first; absent in older torch
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
except ImportError:
    _unwrap_dead_wrappers = None


def compiling() -> bool:
    return torch.compiler.is_compiling()


def apply_function(function: type, *args):
    """``function.apply(*args)`` (a torch.autograd.Function with setup_context, every argument passed
    positionally) without the per-call ``inspect.signature`` binding that ``Function.apply`` does to fill
    in default arguments: about 30 µs, as much as the whole backward kernel at B = 64. Under torch.compile
    or a torch.func transform, the regular ``apply``."""
    if compiling() or torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    if _unwrap_dead_wrappers is not None:
        args = _unwrap_dead_wrappers(args)
    return super(torch.autograd.Function, function).apply(*args)


def below_autograd():
    """A context that calls ops below the autograd dispatch key. For ops with a Python autograd
    registration (``torch.library.register_autograd``), which otherwise runs its Python wrapper on every
    call, even with gradients off (about 10 µs a call); for calls whose result must not be recorded
    (inside an autograd.Function's forward, or when nothing requires a gradient). While compiling, a
    no-op: the traced graph records no autograd either way."""
    return contextlib.nullcontext() if compiling() else torch._C._AutoDispatchBelowAutograd()


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic on ``dtype`` accumulates in: float32 for float16/bfloat16, else ``dtype``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def needs_grad(*tensors) -> bool:
    """Autograd is on and some (non-None) tensor requires a gradient."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
