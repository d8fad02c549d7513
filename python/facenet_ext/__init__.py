"""facenet_ext: fused C++/CUDA kernels for FaceNet-style metric learning.

>>> import torch, facenet_ext as fx
>>> emb = torch.nn.functional.normalize(torch.randn(1800, 128), dim=1)
>>> labels = torch.arange(45).repeat_interleave(40)
>>> a, p, n = fx.semi_hard_triplets(emb, labels)
"""

import torch  # loads libtorch before the extension that links against it


def _check_torch_version() -> None:
    """Refuse a _C built against another torch before loading it.

    torch's C++ ABI changes between releases: a stale _C fails on an undefined symbol at best, and at
    worst loads and misreads changed structures. CMake writes the version it built against into
    _build_config.py; a checkout without it (no CMake build) has no _C to check either.
    """
    try:
        from ._build_config import TORCH_VERSION as built
    except ImportError:
        return
    if built != str(torch.__version__):  # as strings: TorchVersion compares as a version
        raise ImportError(
            f"facenet_ext: the native extension was built against torch {built}, running torch "
            f"{torch.__version__}: rebuild it in this environment with `pip install --no-build-isolation .`"
        )


_check_torch_version()

from . import _C, distributed, losses, nn  # noqa: E402
from .distances import pairwise_sq_dist  # noqa: E402
from .errors import check_errors  # noqa: E402
from .memory_bank import MemoryBank  # noqa: E402
from .miners import all_semi_hard_triplets, batch_hard_triplets, semi_hard_triplets  # noqa: E402
from .pooling import l2_pool2d  # noqa: E402
from .quality import aggregate_templates, face_quality  # noqa: E402
from .triplet import triplet_loss  # noqa: E402

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
    "check_errors",
    "l2_pool2d",
    "nn",
    "losses",
    "face_quality",
    "aggregate_templates",
    "MemoryBank",
    "distributed",
    "build_info",
]
