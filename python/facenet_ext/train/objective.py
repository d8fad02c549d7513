"""What one training step minimises: FaceNet's triplet loss with online mining (the default), or a
margin-softmax head (ArcFace, MagFace) over the training identities on the unnormalised features.

Each objective reports one auxiliary number per step for the progress bar and the history: the
fraction of mined triplets with non-zero loss (triplet), or the mean feature magnitude (ArcFace/MagFace,
whose magnitude is MagFace's quality score). With ``--memory-bank N`` the triplet loss mines each batch
against the batch plus the last N training embeddings (XBM); under torchrun it mines against every
rank's batch (``fx.distributed.triplet_loss``)."""

from __future__ import annotations

from torch import Tensor, nn

from .. import batch_hard_triplets, distributed, semi_hard_triplets, triplet_loss
from ..losses import ArcFaceLoss, MagFaceLoss
from ..memory_bank import MemoryBank
from ..mining import MINING
from .config import TrainConfig


class Objective(nn.Module):
    """The step's loss. ``switch_step``: with ``cfg.arcface_fraction``, the steps before it train the ArcFace
    head and the steps from it on the triplet loss (the head is then left alone; its parameters get no
    gradient, so the optimiser skips them)."""

    def __init__(self, cfg: TrainConfig, num_classes: int, world_size: int = 1, switch_step: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.distributed = world_size > 1
        self.head = None
        self.switch_step = switch_step if cfg.arcface_fraction else 0
        if cfg.loss == "arcface" or cfg.arcface_fraction:
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
            raise ValueError(
                "training under torchrun supports --loss triplet without --memory-bank or --arcface-fraction"
            )
        if cfg.memory_bank and cfg.loss != "triplet":
            raise ValueError(f"--memory-bank applies to the triplet loss, not --loss {cfg.loss}")
        self.bank = MemoryBank(cfg.memory_bank, cfg.embedding_dim) if cfg.memory_bank else None
        if cfg.arcface_fraction:
            self.aux_name = "magnitude|active_fraction"  # the head's feature magnitude, then the triplets' share
        else:
            self.aux_name = "active_fraction" if self.head is None else "magnitude"

    def uses_head(self, step: int) -> bool:
        return self.head is not None and (self.cfg.loss != "triplet" or step < self.switch_step)

    def forward(self, model: nn.Module, x: Tensor, labels: Tensor, step: int = 0, timer=None) -> tuple[Tensor, Tensor]:
        """(loss, auxiliary number) of one batch at ``step``; the memory bank, if any, takes the batch
        afterwards. ``timer`` (a :class:`~facenet_ext.train.step_timing.StepTimer`) gets the forward,
        mining and loss phases marked."""
        cfg = self.cfg
        mark = timer.mark if timer is not None else _no_mark
        if self.uses_head(step):
            features = model.features(x)
            mark("forward")
            loss, stats = self.head(features, labels, return_stats=True)
            mark("loss")
            return loss, stats["magnitude"]
        emb = model(x)
        mark("forward")
        if self.distributed:
            loss = distributed.triplet_loss(emb, labels, cfg.margin, mining=cfg.mining)
            mark("loss")
            return loss, loss.new_tensor(float("nan"))  # the active fraction is not gathered across ranks
        mining = cfg.mining
        if self.bank is None and not MINING[mining].fused_loss:
            # The miner's own call, then the loss over its triplets: what triplet_loss(mining=name) does in
            # one call (same op, same triplets), split so the step's timing can tell mining from loss.
            labels = labels.to(emb.device)
            mining = MINERS[mining](emb, labels)
            mark("mining")
        loss, stats = triplet_loss(emb, labels, cfg.margin, mining=mining, memory=self.bank, return_stats=True)
        mark("loss")
        if self.bank is not None:
            self.bank.enqueue(emb.detach(), labels)  # after the loss: a batch is never its own memory
        return loss, stats["active_fraction"]

    # The bank (a submodule) travels in this module's state dict, so a resumed run continues exactly.


# The public miners of the kinds whose margin does not enter the selection (the fused all-semi-hard loss
# never lists its triplets): what triplet_loss(emb, labels, margin, mining=kind) mines.
MINERS = {"semihard": semi_hard_triplets, "batch_hard": batch_hard_triplets}


def _no_mark(phase: str) -> None:
    pass
