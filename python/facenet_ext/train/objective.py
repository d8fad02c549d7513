"""What one training step minimises: FaceNet's triplet loss with online mining (the default), or a
margin-softmax head (ArcFace, MagFace) over the training identities on the unnormalised features.

Each objective reports one auxiliary number per step for the progress bar and the history: the
fraction of mined triplets with non-zero loss (triplet), or the mean feature magnitude (ArcFace/MagFace,
whose magnitude is MagFace's quality score)."""
from __future__ import annotations

from torch import Tensor, nn

from .. import triplet_loss
from ..losses import ArcFaceLoss, MagFaceLoss
from .config import TrainConfig


class Objective(nn.Module):
    def __init__(self, cfg: TrainConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.head = None
        if cfg.loss == "arcface":
            self.head = ArcFaceLoss(cfg.embedding_dim, num_classes)
        elif cfg.loss == "magface":
            self.head = MagFaceLoss(cfg.embedding_dim, num_classes)
        self.aux_name = "active_fraction" if self.head is None else "magnitude"

    def forward(self, model: nn.Module, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, auxiliary number) of one batch."""
        if self.head is None:
            loss, stats = triplet_loss(model(x), labels, self.cfg.margin, mining=self.cfg.mining, return_stats=True)
            return loss, stats["active_fraction"]
        loss, stats = self.head(model.features(x), labels, return_stats=True)
        return loss, stats["magnitude"]
