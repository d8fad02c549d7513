"""Argument validation shared by the public wrappers: clear errors naming the function and argument.

Wrong type is TypeError, wrong value (shape, length, range, device) ValueError, an index out of range
IndexError: the classes the native ops raise for the same faults (csrc/checks.h), so a direct
``torch.ops.facenet_ext`` call and the wrapper fail alike.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

from ._dispatch import acc_dtype, compiling


def check_tensor(fn: str, name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_embedding_shape(fn: str, emb: object, name: str = "emb") -> Tensor:
    """A tensor, 2-D and floating point (an empty batch is fine). Metadata only: nothing is read, so it
    costs nothing and traces under torch.compile; the native ops check the values (NaN/Inf) themselves."""
    emb = check_tensor(fn, name, emb)
    if emb.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [batch, dim], got shape {tuple(emb.shape)}")
    if not emb.is_floating_point():
        raise TypeError(f"{fn}: {name} must be floating point (float16/bfloat16/float32/float64), got {emb.dtype}")
    if emb.shape[1] == 0:
        raise ValueError(f"{fn}: {name} has width 0 (shape {tuple(emb.shape)}): every distance would be 0")
    return emb


def check_embeddings(fn: str, emb: object, name: str = "emb") -> Tensor:
    """2-D, floating, non-empty, and (on the CPU) finite; see check_finite."""
    emb = check_embedding_shape(fn, emb, name)
    if emb.shape[0] == 0:
        raise ValueError(f"{fn}: {name} is an empty batch (shape {tuple(emb.shape)})")
    check_finite(fn, name, emb)
    return emb


def check_finite(fn: str, name: str, t: Tensor) -> None:
    """Raise on NaN/Inf. One reduction over the tensor, done eagerly on CPU tensors only: on a GPU it
    would cost a host sync per call, so there the miners detect NaN/Inf from the distance matrix at the
    one sync they need anyway, and pairwise_sq_dist propagates NaN like torch.cdist. Skipped while
    torch.compile traces, where it would break the graph."""
    if t.device.type != "cpu" or compiling():
        return
    if t.numel() > 0 and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{fn}: {name} contains NaN or Inf")


def check_like(fn: str, t: Tensor, name: str, like: Tensor, like_name: str) -> None:
    """``t`` (2-D) has the width, dtype and device of ``like``."""
    if t.shape[1] != like.shape[1]:
        raise ValueError(f"{fn}: {name} has width {t.shape[1]} but {like_name} has {like.shape[1]}")
    if t.dtype != like.dtype:
        raise TypeError(f"{fn}: {name} has dtype {t.dtype} but {like_name} has {like.dtype}")
    if t.device != like.device:
        raise ValueError(f"{fn}: {name} is on {t.device} but {like_name} is on {like.device}")


def check_labels(fn: str, labels: object, batch: int, device: torch.device, name: str = "labels") -> Tensor:
    labels = check_tensor(fn, name, labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be an integer tensor, got {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {tuple(labels.shape)}")
    if labels.shape[0] != batch:
        raise ValueError(f"{fn}: {name} has length {labels.shape[0]} but the batch has {batch} embeddings")
    if labels.device != device:
        raise ValueError(f"{fn}: {name} is on {labels.device} but the embeddings are on {device}")
    return labels


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " " + " and ".join(parts) if parts else ""


def check_int(
    fn: str, name: str, value: object, *, low: int | None = None, high: int | None = None, allow_none: bool = False
) -> int | None:
    """An integer (Python or NumPy; a bool is not one) in [low, high]: TypeError for another type,
    ValueError out of range. The message names the function and the argument."""
    if value is None and allow_none:
        return None
    what = f"an int{_bounds(low, high, False, False)}{' or None' if allow_none else ''}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be {what}, got {type(value).__name__}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{fn}: {name} must be {what}, got {v}")
    return v


def check_real(
    fn: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = False,
) -> float:
    """A real scalar (int, float, NumPy scalar or 0-d real tensor; not a bool) as a Python float, in the
    given bounds (``low_open``/``high_open``: strict) and, with ``finite``, finite: TypeError for another
    type, ValueError out of range (NaN is always out of a bounded range)."""
    if isinstance(value, Tensor):
        if value.dim() != 0 or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(
                f"{fn}: {name} must be a real number or a 0-d real tensor, got a {value.dtype} tensor "
                f"of shape {tuple(value.shape)}"
            )
        if value.requires_grad:
            # Read as a constant: a learnable value would silently get no gradient.
            raise ValueError(
                f"{fn}: {name} is a tensor that requires grad, but it is used as a constant and would get "
                f"no gradient; pass {name}.detach() (or a float)"
            )
        v = float(value.item())
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    else:
        v = float(value)
    below = low is not None and not (v > low if low_open else v >= low)
    above = high is not None and not (v < high if high_open else v <= high)
    if below or above or (finite and not math.isfinite(v)):
        what = f"a{' finite' if finite else ''} number{_bounds(low, high, low_open, high_open)}"
        raise ValueError(f"{fn}: {name} must be {what}, got {value!r}")
    return v


def check_margin(fn: str, margin: object, allow_none: bool = False, dtype: torch.dtype | None = None) -> float | None:
    """A margin as a float: finite, >= 0 and, given the embeddings' ``dtype``, representable in the dtype
    the distances and the loss are computed in (1e300 would silently become inf in float32). That is
    float32 for float16/bfloat16 embeddings, not their own dtype: their squared distances can exceed
    float16's 65504 (they are computed in float32), so a margin above it can be meaningful."""
    if margin is None and allow_none:
        return None
    m = check_real(fn, "margin", margin)
    if not (math.isfinite(m) and m >= 0):
        raise ValueError(f"{fn}: margin must be finite and >= 0, got {m}")
    if dtype is not None and dtype.is_floating_point and m > torch.finfo(acc_dtype(dtype)).max:
        raise ValueError(
            f"{fn}: margin {m} does not fit in {acc_dtype(dtype)} "
            f"(largest finite value {torch.finfo(acc_dtype(dtype)).max})"
        )
    return m


def check_bool(fn: str, name: str, value: object) -> bool:
    """A bool (or numpy bool): None or a string is a TypeError, never silently truthy or falsy."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{fn}: {name} must be a bool, got {type(value).__name__}")


def check_capacity(fn: str, capacity: object) -> int | None:
    """``capacity=``: None, or an int >= 0."""
    return check_int(fn, "capacity", capacity, low=0, allow_none=True)


def check_choice(fn: str, name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of the strings ``choices``: TypeError for anything but a string (None included), ValueError for
    a string not among them. The message names the function, the argument and the choices."""
    expected = ", ".join(map(repr, choices))
    if not isinstance(value, str):
        raise TypeError(f"{fn}: {name} must be a string, one of {expected}; got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{fn}: unknown {name} {value!r}; expected one of {expected}")
    return value


def check_triplet_indices(fn: str, mining, emb: Tensor, n_ref: int) -> tuple[Tensor, Tensor, Tensor]:
    """User-supplied (anchor, positive, negative): int64, 1-D, equal lengths, on emb's device, in range
    (IndexError otherwise, as the native op raises). The range check reads two numbers per tensor; it is
    skipped while compiling, where the CPU kernel checks the range itself and the CUDA kernels write NaN
    and set the error bit that :func:`facenet_ext.check_errors` raises (docs/semantics.md, "Bad input")."""
    if not (isinstance(mining, (tuple, list)) and len(mining) == 3):
        raise TypeError(f"{fn}: mining must be a strategy name or an (anchor, positive, negative) tuple")
    out = []
    for i, (name, t) in enumerate(zip(("anchor", "positive", "negative"), mining)):
        arg = f"mining[{i}] ({name} indices)"
        t = check_tensor(fn, f"mining[{i}]", t)
        if t.dtype != torch.int64:
            raise TypeError(f"{fn}: {arg} must be an int64 tensor, got {t.dtype}")
        if t.dim() != 1:
            raise ValueError(f"{fn}: {arg} must be 1-D, got shape {tuple(t.shape)}")
        if t.device != emb.device:
            # Checked here: the dispatcher would pick a kernel by the indices' device and never name them.
            raise ValueError(f"{fn}: {arg} is on {t.device} but emb is on {emb.device}")
        out.append(t)
    if not (out[0].shape[0] == out[1].shape[0] == out[2].shape[0]):
        raise ValueError(
            f"{fn}: anchor/positive/negative index tensors have different lengths "
            f"({', '.join(str(t.shape[0]) for t in out)})"
        )
    if not compiling():
        for i, (name, t) in enumerate(zip(("anchor", "positive", "negative"), out)):
            bound = emb.shape[0] if i == 0 else n_ref
            if t.numel() and not bool(((t >= 0) & (t < bound)).all()):
                raise IndexError(f"{fn}: mining[{i}] ({name} indices) must lie in [0, {bound})")
    return tuple(out)
