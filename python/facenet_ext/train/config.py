"""The trainer's settings: one dataclass, saved in every checkpoint and in metrics.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .. import mining
from .._checks import check_choice
from .data.degrade import parse_kinds

LOSSES = ("triplet", "arcface", "magface")
MINING = tuple(mining.MINING)
OPTIMIZERS = ("adagrad", "adam", "sgd")
MODELS = ("nn2", "small")
SAMPLERS = ("pk", "uniform")
SCHEDULES = ("constant", "cosine")
PROTOCOLS = ("view1", "view2")
IDENTITY_TRANSFORMS = ("mirror", "rot90", "rot270")
MAGFACE_FIELDS = ("mag_l_a", "mag_u_a", "mag_l_m", "mag_u_m", "mag_lambda_g")


@dataclass
class TrainConfig:
    """Defaults follow FaceNet where it fits a CPU: margin 0.2, AdaGrad at lr 0.05, semi-hard mining,
    128-D L2-normalised embeddings; the network is NN2 scaled down by ``width`` and ``depth``."""

    data: str | None = None  # ROOT/<identity>/<image> or an LFW root (absolute); None = scikit-learn's digits
    protocol: str | None = None  # LFW: "view1" or "view2" (with fold); None = split identities by `holdout`
    fold: int | None = None  # View 2 fold tested (0..9); its people are left out of training
    image_size: int | None = None  # stored side; None: 64 for an image folder, 32 for the digits
    channels: int | None = None  # 1 or 3; None = 1 if every image is grayscale
    crop_box: int | None = None  # side of the centred square cut from each source image (pixels); None = largest
    input_size: int | None = None  # network input side: random crops in training, centre crop in evaluation
    holdout: float = 0.25  # fraction of identities (last in natural order) held out for evaluation
    model: str = "nn2"  # "nn2" (NN2-style Inception) or "small" (a 3-conv net for tiny images such as 8x8 digits)
    width: float = 0.25
    depth: int = 2
    dropout: float = 0.0  # NN2: dropout on the pooled features before the embedding layer, in training
    embedding_dim: int = 128
    identities_per_batch: int = 15
    images_per_identity: int = 8
    sampler: str = "pk"  # "pk": P identities x K images; "uniform": P*K images at random (margin-softmax heads)
    singletons: int = 0  # single-image people added to each P x K batch, as negatives only
    epochs: int = 30
    steps_per_epoch: int | None = None  # None: about one pass over the training images per epoch
    loss: str = "triplet"
    mining: str = "semihard"
    margin: float = 0.2
    head_scale: float | None = None  # ArcFace/MagFace logit scale s; None = the loss's default (64)
    head_margin: float | None = None  # ArcFace angular margin m; None = the loss's default (0.5)
    # MagFace's magnitude clamp [l_a, u_a], margin range [l_m, u_m] and regulariser weight; None = the loss's
    # defaults (the paper's 10, 110, 0.45, 0.8, 35)
    mag_l_a: float | None = None
    mag_u_a: float | None = None
    mag_l_m: float | None = None
    mag_u_m: float | None = None
    mag_lambda_g: float | None = None
    min_class_images: int = 2  # margin-softmax heads: a training person is a class with at least this many images
    people_fraction: float = 1.0  # train on this seeded random share of the training people (identity-count curves)
    optimizer: str = "adagrad"
    lr: float = 0.05
    weight_decay: float = 0.0
    schedule: str = "constant"  # "cosine": lr decays to 0 over the run along half a cosine
    augment: bool = False
    rotate: float = 0.0  # augment: random rotation of up to this many degrees either way
    scale: float = 0.0  # augment: random zoom by a factor in [1 - scale, 1 + scale]
    new_identities: str = (
        ""  # e.g. "mirror,rot90,rot270": each transform of every training identity is one more (digits)
    )
    hflip: bool = True  # augmentation mirrors images (faces); off where a mirror image is another class (digits)
    flip_eval: bool = False  # evaluate on the mean embedding of each image and its mirror image
    degrade: float = 0.0  # fraction of each batch blurred / noised / occluded (quality-aware training)
    degrade_kinds: str = "blur,noise,occlusion"  # which degradations --degrade applies ("all": also lowres, jpeg)
    memory_bank: int = 0  # triplet loss: also mine against the last N training embeddings (0 = off)
    # triplet loss: the first fraction of the steps train an ArcFace head (with head_scale/head_margin) on
    # uniform batches of P*K images, the rest fine-tune the same network with triplets on P x K batches
    arcface_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        fn = "TrainConfig"
        check_choice(fn, "loss", self.loss, LOSSES)
        check_choice(fn, "mining", self.mining, MINING)
        check_choice(fn, "optimizer", self.optimizer, OPTIMIZERS)
        check_choice(fn, "model", self.model, MODELS)
        check_choice(fn, "sampler", self.sampler, SAMPLERS)
        check_choice(fn, "schedule", self.schedule, SCHEDULES)
        if self.protocol is not None:
            check_choice(fn, "protocol", self.protocol, PROTOCOLS)
            if self.data is None:
                raise ValueError(f"protocol {self.protocol} needs data (an LFW folder)")
        if (self.protocol == "view2") != (self.fold is not None):
            raise ValueError(f"fold goes with protocol view2 (got protocol {self.protocol!r}, fold {self.fold!r})")
        if self.fold is not None and not 0 <= self.fold < 10:
            raise ValueError(f"fold must be in 0..9, got {self.fold}")
        if self.input_size is not None and self.image_size is not None and not 8 <= self.input_size <= self.image_size:
            raise ValueError(f"input_size must be in [8, image_size = {self.image_size}], got {self.input_size}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        unknown = [t for t in self.new_identities.split(",") if t and t not in IDENTITY_TRANSFORMS]
        if unknown:
            raise ValueError(
                f"new_identities: unknown transform(s) {unknown}; choose from {', '.join(IDENTITY_TRANSFORMS)}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dropout and self.model != "nn2":
            raise ValueError(f"dropout applies to model nn2, not {self.model}")
        if not 0 <= self.rotate <= 45:
            raise ValueError(f"rotate must be in [0, 45] degrees, got {self.rotate}")
        if not 0 <= self.scale < 0.5:
            raise ValueError(f"scale must be in [0, 0.5), got {self.scale}")
        if self.singletons < 0:
            raise ValueError(f"singletons must be >= 0, got {self.singletons}")
        if not 0 < self.lr < 10:
            raise ValueError(f"lr must be in (0, 10), got {self.lr}")
        if self.margin <= 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.degrade < 1:
            raise ValueError(f"degrade must be a fraction in [0, 1), got {self.degrade}")
        parse_kinds(self.degrade_kinds)
        if self.min_class_images < 1:
            raise ValueError(f"min_class_images must be >= 1, got {self.min_class_images}")
        if not 0 < self.people_fraction <= 1:
            raise ValueError(f"people_fraction must be in (0, 1], got {self.people_fraction}")
        if self.loss != "magface" and any(getattr(self, f) is not None for f in MAGFACE_FIELDS):
            raise ValueError(f"{', '.join(MAGFACE_FIELDS)} apply to --loss magface, not {self.loss}")
        if self.memory_bank < 0:
            raise ValueError(f"memory_bank must be >= 0 (0 = no memory bank), got {self.memory_bank}")
        if not 0 <= self.arcface_fraction < 1:
            raise ValueError(f"arcface_fraction must be in [0, 1), got {self.arcface_fraction}")
        if self.arcface_fraction and self.loss != "triplet":
            raise ValueError(f"arcface_fraction applies to --loss triplet (ArcFace, then triplets), not {self.loss}")
        if self.arcface_fraction and self.sampler != "pk":
            raise ValueError("arcface_fraction needs --sampler pk (the triplet steps' batches)")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Settings that may change between a run and its resumption: they do not change what one step computes.
RESUMABLE_CHANGES = ("epochs",)
