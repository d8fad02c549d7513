"""The reference FaceNet trainer: an NN2-style network with L2 pooling, P x K batches, online mining in
fx.triplet_loss, checkpoints and held-out evaluation. ``python -m facenet_ext train --help``.

Here: the run's settings and recipes (:mod:`.config`, :mod:`.recipes`), the training loop and its parts
(:mod:`.loop`, :mod:`.model`, :mod:`.objective`, :mod:`.world`, :mod:`.step_timing`, :mod:`.checkpoint`,
:mod:`.plots`), embedding and evaluation (:mod:`.embed`, :mod:`.checkpoint_eval`). Subpackages:
:mod:`.data` (image sets, the decoded-image cache, degradations, samplers), :mod:`.lfw` (LFW's protocol,
data and quality experiment) and :mod:`.commands` (the ``train``, ``eval`` and ``lfw-view2`` subcommands
and the demo's LFW line).
"""

from .config import TrainConfig
from .data.images import ImageSet, load_digits_set, load_image_folder, split_identities
from .data.sampler import PKSampler
from .loop import RunResult, train
from .model import NN2

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
