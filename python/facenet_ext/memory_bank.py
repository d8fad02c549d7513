"""A cross-batch memory of past embeddings (XBM, Wang et al. 2020), used as a reference set."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import check_embeddings, check_int, check_labels, check_like


class MemoryBank(nn.Module):
    """A FIFO of the last ``size`` detached embeddings with their labels and step stamps.

    ``enqueue(emb, labels)`` appends a batch (a batch larger than the bank keeps its newest ``size``
    rows); once full, each new entry replaces the oldest. ``embeddings``, ``labels`` and ``steps`` are
    views (no copy) of the valid entries **in insertion order, oldest first**: the storage is a mirrored
    ring buffer (every entry is written twice, at slot ``i`` and ``i + size``), so the valid window is
    always one contiguous slice. That costs ``2 · size · dim`` elements of memory and two row writes per
    entry, never a copy of the bank per step. Views change on the next ``enqueue``: clone to keep one.

    Use it as the reference set of the current batch (XBM): anchors from the batch, positives and
    negatives from the batch and the bank::

        bank = fx.MemoryBank(65536, 128, device=emb.device)
        loss = fx.triplet_loss(emb, labels, memory=bank)  # references: emb then bank.embeddings
        loss.backward()
        bank.enqueue(emb, labels)                         # after the loss: a batch is never its own memory

    The bank's entries carry no gradient (they were computed by an older model; XBM's "slow drift"
    assumption). ``dtype`` and ``device`` must match the embeddings it is used with.

    It is an ``nn.Module`` holding buffers: ``.to(device)`` and ``.to(dtype)`` move it, and as an attribute
    of a model it travels in the model's ``state_dict``, which holds only the valid entries (oldest
    first), their labels and steps, and the step counter: a checkpoint grows with ``len(bank)``, not with
    the mirrored storage.
    """

    def __init__(self, size: int, dim: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        size, dim = check_int("MemoryBank", "size", size, low=1), check_int("MemoryBank", "dim", dim, low=1)
        if not dtype.is_floating_point:
            raise TypeError(f"MemoryBank: dtype must be floating point, got {dtype}")
        super().__init__()
        self.size, self.dim = size, dim
        # The mirrored ring storage is not saved as such: get_extra_state saves the valid window.
        self.register_buffer("_emb", torch.zeros(2 * size, dim, dtype=dtype, device=device), persistent=False)
        self.register_buffer("_labels", torch.zeros(2 * size, dtype=torch.int64, device=device), persistent=False)
        self.register_buffer("_steps", torch.zeros(2 * size, dtype=torch.int64, device=device), persistent=False)
        self.reset()

    @property
    def dtype(self) -> torch.dtype:
        return self._emb.dtype

    @property
    def device(self) -> torch.device:
        return self._emb.device

    def reset(self) -> None:
        """Forget every entry (the storage is kept); the step counter restarts at 0."""
        self._next = 0  # slot of the next write, in [0, size)
        self._count = 0
        self._step = 0

    def __len__(self) -> int:
        return self._count

    def _window(self) -> slice:
        start = self._next if self._count == self.size else 0
        return slice(start, start + self._count)

    @property
    def embeddings(self) -> Tensor:
        """[len(self), dim] view of the valid entries, oldest first."""
        return self._emb[self._window()]

    @property
    def labels(self) -> Tensor:
        """int64 [len(self)] labels of ``embeddings``."""
        return self._labels[self._window()]

    @property
    def steps(self) -> Tensor:
        """int64 [len(self)] step stamp of each entry: the ``step`` given to ``enqueue``, by default the
        number of ``enqueue`` calls before it (so ``bank.steps.min()`` tells how stale the memory is)."""
        return self._steps[self._window()]

    @torch.no_grad()
    def enqueue(self, emb: Tensor, labels: Tensor, step: int | None = None) -> None:
        """Append a batch (detached; its dtype, width and device must be the bank's)."""
        fn = "MemoryBank.enqueue"
        emb = check_embeddings(fn, emb)
        self._check_compatible(fn, emb, "emb")
        labels = check_labels(fn, labels, emb.shape[0], emb.device)
        stamp = self._step if step is None else int(step)
        self._step += 1
        emb, labels = emb.detach()[-self.size :], labels[-self.size :]
        n = emb.shape[0]
        slots = (self._next + torch.arange(n, device=self.device)) % self.size
        for mirror in (slots, slots + self.size):
            self._emb.index_copy_(0, mirror, emb)
            self._labels.index_copy_(0, mirror, labels.long())
            self._steps.index_fill_(0, mirror, stamp)
        self._next = (self._next + n) % self.size
        self._count = min(self.size, self._count + n)

    def get_extra_state(self) -> dict:
        """The valid entries, oldest first, and the step counter (tensors and ints: checkpoint-safe with
        ``weights_only=True``); ``state_dict()`` holds it under ``_extra_state``."""
        return {
            "size": self.size,
            "dim": self.dim,
            "embeddings": self.embeddings.clone(),
            "labels": self.labels.clone(),
            "steps": self.steps.clone(),
            "step": self._step,
        }

    def set_extra_state(self, state: dict) -> None:
        """Restores a state saved by a bank of the same size and width (entries in the same order)."""
        if (state["size"], state["dim"]) != (self.size, self.dim):
            raise ValueError(
                f"MemoryBank.load_state_dict: state of a bank of size {state['size']} and width "
                f"{state['dim']}, this bank has size {self.size} and width {self.dim}"
            )
        n = state["labels"].shape[0]
        rows = torch.arange(n, device=self.device)
        for mirror in (rows, rows + self.size):
            self._emb.index_copy_(0, mirror, state["embeddings"].to(self._emb))
            self._labels.index_copy_(0, mirror, state["labels"].to(self._labels))
            self._steps.index_copy_(0, mirror, state["steps"].to(self._steps))
        self._next, self._count, self._step = n % self.size, n, int(state["step"])

    def _check_compatible(self, fn: str, emb: Tensor, name: str) -> None:
        check_like(fn, emb, name, self._emb, "the memory bank")

    def __repr__(self) -> str:
        return (
            f"MemoryBank(size={self.size}, dim={self.dim}, dtype={self.dtype}, device={self.device}, len={len(self)})"
        )


__all__ = ["MemoryBank"]
