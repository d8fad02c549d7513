"""The reference FaceNet trainer: an NN2-style network with L2 pooling, P x K batches, online mining in
fx.triplet_loss, checkpoints and held-out evaluation. ``python -m facenet_ext train --help``."""

from .config import TrainConfig
from .images import ImageSet, load_digits_set, load_image_folder, split_identities
from .loop import RunResult, train
from .model import NN2
from .sampler import PKSampler

__all__ = [
    "TrainConfig",
    "train",
    "RunResult",
    "NN2",
    "PKSampler",
    "ImageSet",
    "load_image_folder",
    "load_digits_set",
    "split_identities",
]
