"""What one training step minimises: FaceNet's triplet loss with online mining (the default), or a
margin-softmax head (ArcFace, MagFace) over the training identities on the unnormalised features.

Each objective reports one auxiliary number per step for the progress bar and the history: the
fraction of mined triplets with non-zero loss (triplet), or the mean feature magnitude (ArcFace/MagFace,
whose magnitude is MagFace's quality score). With ``--memory-bank N`` the triplet loss mines each batch
against the batch plus the last N training embeddings (XBM); under torchrun it mines against every
rank's batch (``fx.distributed.triplet_loss``)."""

from __future__ import annotations

from torch import Tensor, nn

from .. import distributed, triplet_loss
from ..losses import ArcFaceLoss, MagFaceLoss
from ..memory_bank import MemoryBank
from .config import TrainConfig


class Objective(nn.Module):
    def __init__(self, cfg: TrainConfig, num_classes: int, world_size: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.distributed = world_size > 1
        self.head = None
        if cfg.loss == "arcface":
            options = {k: v for k, v in (("scale", cfg.head_scale), ("margin", cfg.head_margin)) if v is not None}
            self.head = ArcFaceLoss(cfg.embedding_dim, num_classes, **options)
        elif cfg.loss == "magface":
            if cfg.head_margin is not None:
                raise ValueError("--head-margin applies to --loss arcface (MagFace's margin follows the magnitude)")
            names = {
                "head_scale": "scale",
                "mag_l_a": "l_a",
                "mag_u_a": "u_a",
                "mag_l_m": "l_m",
                "mag_u_m": "u_m",
                "mag_lambda_g": "lambda_g",
            }
            options = {arg: getattr(cfg, field) for field, arg in names.items() if getattr(cfg, field) is not None}
            self.head = MagFaceLoss(cfg.embedding_dim, num_classes, **options)
        if self.distributed and (self.head is not None or cfg.memory_bank):
            raise ValueError("training under torchrun supports --loss triplet without --memory-bank")
        if cfg.memory_bank and self.head is not None:
            raise ValueError(f"--memory-bank applies to the triplet loss, not --loss {cfg.loss}")
        self.bank = MemoryBank(cfg.memory_bank, cfg.embedding_dim) if cfg.memory_bank else None
        self.aux_name = "active_fraction" if self.head is None else "magnitude"

    def forward(self, model: nn.Module, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, auxiliary number) of one batch; the memory bank, if any, takes the batch afterwards."""
        cfg = self.cfg
        if self.head is not None:
            loss, stats = self.head(model.features(x), labels, return_stats=True)
            return loss, stats["magnitude"]
        emb = model(x)
        if self.distributed:
            loss = distributed.triplet_loss(emb, labels, cfg.margin, mining=cfg.mining)
            return loss, loss.new_tensor(float("nan"))  # the active fraction is not gathered across ranks
        loss, stats = triplet_loss(emb, labels, cfg.margin, mining=cfg.mining, memory=self.bank, return_stats=True)
        if self.bank is not None:
            self.bank.enqueue(emb.detach(), labels)  # after the loss: a batch is never its own memory
        return loss, stats["active_fraction"]

    # The bank (a submodule) travels in this module's state dict, so a resumed run continues exactly.
