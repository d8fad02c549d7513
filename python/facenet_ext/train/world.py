"""Data-parallel training with ``torchrun``: the process group, and the few collectives the loop needs.

``torchrun --standalone --nproc-per-node 2 -m facenet_ext train ...`` starts one process per rank; each
draws its own P x K batch, the loss mines every rank's anchors against the global batch
(``fx.distributed.triplet_loss``), and DistributedDataParallel averages the gradients, so the step equals
one process training on the concatenated batch, except for BatchNorm, whose statistics are each rank's
own. gloo on CPUs, NCCL on GPUs. Every collective is bounded
by the process group's timeout (``FACENET_EXT_DIST_TIMEOUT`` seconds, default 300): a rank that dies or
hangs makes the others fail with a timeout error instead of waiting forever. Rank 0 alone evaluates,
prints, and writes the checkpoint and metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean over ranks of a per-rank number (the number itself in a world of one)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any (so all ranks stop at the same step)."""
        if self.size == 1:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t)


def init_world() -> World:
    """Joins the process group that torchrun describes in the environment (WORLD_SIZE > 1), or returns a
    world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    timeout = timedelta(seconds=float(os.environ.get("FACENET_EXT_DIST_TIMEOUT", "300")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout)
    return World(dist.get_rank(), dist.get_world_size())
