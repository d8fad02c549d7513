"""facenet_ext: fused C++/CUDA kernels for FaceNet-style metric learning.

>>> import torch, facenet_ext as fx
>>> emb = torch.nn.functional.normalize(torch.randn(1800, 128), dim=1)
>>> labels = torch.arange(45).repeat_interleave(40)
>>> a, p, n = fx.semi_hard_triplets(emb, labels)
"""
import torch  # noqa: F401  (loads libtorch before the extension that links against it)

from . import _C, distributed, losses, nn
from .memory_bank import MemoryBank
from .ops import all_semi_hard_triplets, batch_hard_triplets, pairwise_sq_dist, semi_hard_triplets, triplet_loss
from .pooling import l2_pool2d
from .quality import aggregate_templates, face_quality

__version__ = "0.1.0"


def build_info() -> dict:
    """How the native extension was built: torch version, CUDA kernels and archs, OpenMP, threads."""
    info = dict(_C.build_info())
    info["torch_version_runtime"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    info["threads"] = torch.get_num_threads()
    return info


__all__ = [
    "pairwise_sq_dist",
    "semi_hard_triplets",
    "batch_hard_triplets",
    "all_semi_hard_triplets",
    "triplet_loss",
    "l2_pool2d",
    "nn",
    "losses",
    "face_quality",
    "aggregate_templates",
    "MemoryBank",
    "distributed",
    "build_info",
]
