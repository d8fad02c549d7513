"""``check_errors``: the CUDA errors that the ops record on the device instead of raising.

On CUDA, two kinds of bad input cannot be raised without a host sync, which would break CUDA-graph
capture and stall the stream: NaN/Inf embeddings met by a miner called with ``capacity=``, and triplet
indices outside ``[0, B)`` reaching the kernels of ``triplet_loss`` through a direct ``torch.ops`` call
or a compiled graph (eager ``fx.triplet_loss`` checks indices on the host first). The kernels then write
NaN where the bad input would have gone (so the loss shows it) and set a bit in a per-device error word.
``check_errors()`` reads the word (one sync), clears it, and raises what the eager call would have
raised. Call it where a sync is cheap: after a step, an epoch, or a graph replay. On the CPU the ops
raise at once, so there is nothing to check.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.facenet_ext.*)

# The bits of csrc/cuda/error_bits.h.
_NON_FINITE = 1
_INDEX_RANGE = 2


def check_errors(device: torch.device | str | int | None = None) -> None:
    """Raise the error a facenet_ext CUDA kernel recorded on ``device`` since the last check, and clear it.

    ``device``: a CUDA device (default: the current one). Raises ``IndexError`` when a triplet index lay
    outside ``[0, B)``, else ``ValueError`` when embeddings or distances held NaN or Inf. Returns
    ``None`` when nothing was recorded, when CUDA is unavailable, or for a CPU device (CPU ops raise
    immediately). Costs one host sync.
    """
    if device is None:
        if not torch.cuda.is_available():
            return
        device = torch.device("cuda", torch.cuda.current_device())
    device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if device.type != "cuda":
        return
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    bits = int(torch.ops.facenet_ext.take_errors(torch.empty(0, device=device)).item())
    if bits & _INDEX_RANGE:
        raise IndexError(
            f"facenet_ext: a triplet index outside [0, B) reached a CUDA kernel on {device} (its loss and "
            "gradient rows are NaN)"
        )
    if bits & _NON_FINITE:
        raise ValueError(
            f"facenet_ext: NaN or Inf embeddings or distances reached a CUDA miner on {device} (its "
            "triplets from that call are unreliable)"
        )


@torch.library.register_fake("facenet_ext::take_errors")
def _(like):
    return like.new_empty((1,), dtype=torch.int32)
