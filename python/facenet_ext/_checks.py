"""Argument validation shared by the public wrappers: clear errors naming the function and argument."""
from __future__ import annotations

import torch
from torch import Tensor


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic on ``dtype`` accumulates in: float32 for float16/bfloat16, else ``dtype``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_tensor(fn: str, name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_embeddings(fn: str, emb: object, name: str = "emb") -> Tensor:
    """2-D, floating, non-empty, and (on the CPU) finite; see check_finite."""
    emb = check_tensor(fn, name, emb)
    if emb.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [batch, dim], got shape {tuple(emb.shape)}")
    if not emb.is_floating_point():
        raise TypeError(f"{fn}: {name} must be floating point (float16/bfloat16/float32/float64), got {emb.dtype}")
    if emb.shape[0] == 0:
        raise ValueError(f"{fn}: {name} is an empty batch (shape {tuple(emb.shape)})")
    check_finite(fn, name, emb)
    return emb


def check_finite(fn: str, name: str, t: Tensor) -> None:
    """Raise on NaN/Inf. One reduction over the tensor, done eagerly on CPU tensors only: on a GPU it
    would cost a host sync per call, so there the miners detect NaN/Inf from the distance matrix at the
    one sync they need anyway, and pairwise_sq_dist propagates NaN like torch.cdist. Skipped while
    torch.compile traces, where it would break the graph."""
    if t.device.type != "cpu" or _compiling():
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


def check_reference(fn: str, ref: object, emb: Tensor, name: str = "ref_emb") -> Tensor:
    """A reference set for ``emb``: 2-D with emb's width, dtype and device, finite; it may be empty."""
    ref = check_tensor(fn, name, ref)
    if ref.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [N, dim], got shape {tuple(ref.shape)}")
    check_like(fn, ref, name, emb, "emb")
    check_finite(fn, name, ref)
    return ref


def check_labels(fn: str, labels: object, batch: int, device: torch.device, name: str = "labels") -> Tensor:
    labels = check_tensor(fn, name, labels)
    if labels.dim() != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be an integer tensor, got {labels.dtype}")
    if labels.shape[0] != batch:
        raise ValueError(f"{fn}: {name} has length {labels.shape[0]} but the batch has {batch} embeddings")
    if labels.device != device:
        raise ValueError(f"{fn}: {name} is on {labels.device} but the embeddings are on {device}")
    return labels


def check_margin(fn: str, margin: float | None, allow_none: bool = False) -> None:
    if margin is None and allow_none:
        return
    if not isinstance(margin, (int, float)) or isinstance(margin, bool):
        raise TypeError(f"{fn}: margin must be a number, got {type(margin).__name__}")
    if not margin >= 0 or margin == float("inf"):
        raise ValueError(f"{fn}: margin must be finite and >= 0, got {margin}")


def check_choice(fn: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{fn}: unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}")
