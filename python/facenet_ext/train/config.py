"""The trainer's settings: one dataclass, saved in every checkpoint and in metrics.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..ops import MINERS

LOSSES = ("triplet", "arcface", "magface")
MINING = tuple(MINERS)
OPTIMIZERS = ("adagrad", "adam", "sgd")


@dataclass
class TrainConfig:
    """Defaults follow FaceNet where it fits a CPU: margin 0.2, AdaGrad at lr 0.05, semi-hard mining,
    128-D L2-normalised embeddings; the network is NN2 scaled down by ``width`` and ``depth``."""

    data: str | None = None  # ROOT/<identity>/<image>; None = scikit-learn's bundled digits
    image_size: int | None = None  # None: 64 for an image folder, 32 for the digits
    channels: int | None = None  # 1 or 3; None = 1 if every image is grayscale
    holdout: float = 0.25  # fraction of identities (last in natural order) held out for evaluation
    width: float = 0.25
    depth: int = 2
    embedding_dim: int = 128
    identities_per_batch: int = 15
    images_per_identity: int = 8
    epochs: int = 30
    steps_per_epoch: int | None = None  # None: about one pass over the training images per epoch
    loss: str = "triplet"
    mining: str = "semihard"
    margin: float = 0.2
    optimizer: str = "adagrad"
    lr: float = 0.05
    augment: bool = False
    degrade: float = 0.0  # fraction of each batch blurred / noised / occluded (quality-aware training)
    memory_bank: int = 0  # triplet loss: also mine against the last N training embeddings (0 = off)
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("loss", self.loss, LOSSES)
        _choice("mining", self.mining, MINING)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if not 0 < self.lr < 10:
            raise ValueError(f"lr must be in (0, 10), got {self.lr}")
        if self.margin <= 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.degrade < 1:
            raise ValueError(f"degrade must be a fraction in [0, 1), got {self.degrade}")
        if self.memory_bank < 0:
            raise ValueError(f"memory_bank must be >= 0 (0 = no memory bank), got {self.memory_bank}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Settings that may change between a run and its resumption: they do not change what one step computes.
RESUMABLE_CHANGES = ("epochs",)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
