"""Argument validation for the evaluation functions: everything becomes a float64/bool/int64 NumPy array,
and bad input raises with a message that names the function and the argument.

Evaluation runs on the CPU in float64 whatever the model used: the inputs are small (pair distances,
a few thousand embeddings), and exact ties and counts matter more here than speed.
"""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
            x = x.float()  # NumPy has no bfloat16
        return x.numpy()
    return np.asarray(x)


def _float_array(fn: str, name: str, x: object, ndim: int) -> np.ndarray:
    a = to_numpy(x)
    if a.ndim != ndim:
        shape = "[items, dim]" if ndim == 2 else "[items]"
        raise ValueError(f"{fn}: {name} must be {ndim}-D {shape}, got shape {a.shape}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {a.dtype}")
    if a.shape[0] == 0:
        raise ValueError(f"{fn}: {name} is empty")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{fn}: {name} contains NaN or Inf")
    return a


def embeddings(fn: str, emb: object, name: str = "emb") -> np.ndarray:
    """[N, D] finite real embeddings, as float64, L2-normalised row by row (zero rows raise)."""
    a = _float_array(fn, name, emb, 2)
    if a.shape[1] == 0:
        raise ValueError(f"{fn}: {name} has zero width (shape {a.shape})")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(
            f"{fn}: {name} row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros (cannot L2-normalise)"
        )
    return a / norms


def labels(fn: str, labels: object, n: int | None = None, name: str = "labels", min_classes: int = 2) -> np.ndarray:
    """Identity labels of any hashable kind (ints, names) -> int64 codes 0..C-1, with at least
    ``min_classes`` identities."""
    a = to_numpy(labels)
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{fn}: {name} has length {a.shape[0]} but there are {n} embeddings")
    if np.issubdtype(a.dtype, np.floating) or a.dtype == bool:
        raise TypeError(f"{fn}: {name} must be integers or strings (identities), got dtype {a.dtype}")
    _, codes = np.unique(a, return_inverse=True)
    if codes.max(initial=-1) + 1 < min_classes:
        raise ValueError(f"{fn}: {name} has {codes.max(initial=-1) + 1} identities; need at least {min_classes}")
    return codes.astype(np.int64)


def distances(fn: str, dist: object, name: str = "dist") -> np.ndarray:
    return _float_array(fn, name, dist, 1)


def flags(fn: str, issame: object, n: int, name: str = "issame", both: bool = True) -> np.ndarray:
    """Same/different flags as bool: bool or 0/1 integers, length ``n``; with ``both``, at least one of each."""
    a = to_numpy(issame)
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{fn}: {name} has length {a.shape[0]} but there are {n} distances")
    if a.dtype != bool:
        if not np.issubdtype(a.dtype, np.integer) or not np.isin(a, (0, 1)).all():
            raise TypeError(f"{fn}: {name} must be bool (or 0/1 integers), got dtype {a.dtype}")
        a = a.astype(bool)
    if both and (a.all() or not a.any()):
        kind = "different" if a.all() else "same"
        raise ValueError(f"{fn}: {name} has no {kind} pairs; VAL and FAR need both kinds")
    return a


def indices(fn: str, idx: object, n: int, high: int, name: str) -> np.ndarray:
    a = to_numpy(idx)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{fn}: {name} must be 1-D of length {n}, got shape {a.shape}")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{fn}: {name} must be integers, got dtype {a.dtype}")
    if n and (a.min() < 0 or a.max() >= high):
        raise ValueError(f"{fn}: {name} has values in [{a.min()}, {a.max()}], outside [0, {high})")
    return a.astype(np.int64)


def folds(fn: str, fold: object, issame: np.ndarray, name: str = "fold") -> np.ndarray:
    """Fold ids (any integers); at least two folds, and every fold's complement (the training part)
    holds both same and different pairs."""
    a = indices(fn, fold, issame.shape[0], np.iinfo(np.int64).max, name)
    ids = np.unique(a)
    if ids.size < 2:
        raise ValueError(f"{fn}: {name} has {ids.size} fold(s); k-fold evaluation needs at least 2")
    for k in ids:
        train = issame[a != k]
        if train.all() or not train.any():
            raise ValueError(
                f"{fn}: the pairs outside {name} {k} are all {'same' if train.all() else 'different'}; "
                "cannot choose a threshold on them"
            )
    return a
