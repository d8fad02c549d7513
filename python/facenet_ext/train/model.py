"""A compact NN2-style Inception network (FaceNet, Schroff et al. 2015, Table 2), scaled for CPUs.

NN2 stacks Inception modules whose pooling branch is max pooling or L2 pooling as Table 2 lists it
(3b, 4a-4d and 5a use L2 pooling; 3a, 5b and the stride-2 modules 3c and 4e use max pooling), ends in
average pooling, a fully connected 128-D layer and L2 normalisation onto the unit hypersphere. Two
knobs make it train on 2 CPU cores in minutes: ``width`` multiplies every channel count, and ``depth``
keeps the first 1, 2 or 3 Inception stages (3x, 4x, 5x). ``width=1, depth=3`` at 224x224 is Table 2.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice
from ..nn import L2Pool2d

# One row per Inception module of Table 2: (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool kind,
# pool proj, stride). A stride-2 module has no 1x1 branch and passes the pooled input through unprojected.
NN2_MODULES: tuple[tuple[str, int, int, int, int, int, str, int, int], ...] = (
    ("3a", 64, 96, 128, 16, 32, "max", 32, 1),
    ("3b", 64, 96, 128, 32, 64, "l2", 64, 1),
    ("3c", 0, 128, 256, 32, 64, "max", 0, 2),
    ("4a", 256, 96, 192, 32, 64, "l2", 128, 1),
    ("4b", 224, 112, 224, 32, 64, "l2", 128, 1),
    ("4c", 192, 128, 256, 32, 64, "l2", 128, 1),
    ("4d", 160, 144, 288, 32, 64, "l2", 128, 1),
    ("4e", 0, 160, 256, 64, 128, "max", 0, 2),
    ("5a", 384, 192, 384, 48, 128, "l2", 128, 1),
    ("5b", 384, 192, 384, 48, 128, "max", 128, 1),
)
STAGES = ("3", "4", "5")


def _scaled(channels: int, width: float) -> int:
    return 0 if channels == 0 else max(4, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Inception(nn.Module):
    """One NN2 Inception module: 1x1, 1x1->3x3, 1x1->5x5 and pool(->1x1) branches, concatenated."""

    def __init__(self, cin: int, n1: int, r3: int, n3: int, r5: int, n5: int, pool: str, proj: int, stride: int):
        super().__init__()
        check_choice("Inception", "pool", pool, ("max", "l2"))
        self.branch1 = ConvBNReLU(cin, n1, 1) if n1 else None
        self.branch3 = nn.Sequential(ConvBNReLU(cin, r3, 1), ConvBNReLU(r3, n3, 3, stride))
        self.branch5 = nn.Sequential(ConvBNReLU(cin, r5, 1), ConvBNReLU(r5, n5, 5, stride))
        pooling = nn.MaxPool2d(3, stride, padding=1) if pool == "max" else L2Pool2d(3, stride, padding=1)
        self.pool = nn.Sequential(pooling, ConvBNReLU(cin, proj, 1)) if proj else pooling
        self.out_channels = n1 + n3 + n5 + (proj if proj else cin)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch3(x), self.branch5(x), self.pool(x)]
        if self.branch1 is not None:
            branches.insert(0, self.branch1(x))
        return torch.cat(branches, dim=1)


class NN2(nn.Module):
    """NN2-style embedding network: stem (conv 7x7/2, max pool, conv 1x1 + 3x3, max pool), Inception
    stages, global average pooling, dropout (``dropout``, training only), a linear layer to ``embedding_dim``
    (with BatchNorm) and L2 normalisation.

    >>> net = NN2(in_channels=1, width=0.25, depth=2).eval()
    >>> net(torch.randn(2, 1, 64, 64)).norm(dim=1)
    tensor([1.0000, 1.0000], grad_fn=<LinalgVectorNormBackward0>)
    """

    def __init__(
        self, in_channels: int = 3, embedding_dim: int = 128, width: float = 1.0, depth: int = 3, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"NN2: in_channels must be >= 1, got {in_channels}")
        if not 0 < width <= 4:
            raise ValueError(f"NN2: width must be in (0, 4], got {width}")
        if depth not in (1, 2, 3):
            raise ValueError(f"NN2: depth must be 1, 2 or 3 (Inception stages 3, 4, 5 kept), got {depth}")
        if embedding_dim < 1:
            raise ValueError(f"NN2: embedding_dim must be >= 1, got {embedding_dim}")
        if not 0 <= dropout < 1:
            raise ValueError(f"NN2: dropout must be in [0, 1), got {dropout}")
        c1, c2 = _scaled(64, width), _scaled(192, width)
        self.stem = nn.Sequential(
            ConvBNReLU(in_channels, c1, 7, 2),
            nn.MaxPool2d(3, 2, padding=1),
            ConvBNReLU(c1, c1, 1),
            ConvBNReLU(c1, c2, 3),
            nn.MaxPool2d(3, 2, padding=1),
        )
        modules, cin = [], c2
        for name, n1, r3, n3, r5, n5, pool, proj, stride in NN2_MODULES:
            if name[0] not in STAGES[:depth]:
                continue
            block = Inception(
                cin, *(_scaled(c, width) for c in (n1, r3, n3, r5, n5)), pool, _scaled(proj, width), stride
            )
            modules.append((name, block))
            cin = block.out_channels
        self.inception = nn.Sequential(OrderedDict(modules))
        # BatchNorm after the projection gives the unnormalised features a magnitude of about
        # sqrt(embedding_dim) from the start: inside MagFace's [l_a, u_a] range, harmless for the triplet loss.
        self.embed = nn.Sequential(nn.Linear(cin, embedding_dim), nn.BatchNorm1d(embedding_dim))
        # dropout on the pooled features in training (a small training set's regulariser); no parameters,
        # so checkpoints with and without it load alike
        self.dropout = nn.Dropout(dropout)
        self.config = {
            "in_channels": in_channels,
            "embedding_dim": embedding_dim,
            "width": width,
            "depth": depth,
            "dropout": dropout,
        }

    def init_feature_magnitude(self, magnitude: float) -> None:
        """Start the unnormalised features at about this norm (the BatchNorm scale is magnitude /
        sqrt(embedding_dim)). MagFace needs it: below its l_a the magnitude is clamped and gets no
        gradient, so features that start there never learn a quality-dependent magnitude."""
        with torch.no_grad():
            self.embed[1].weight.fill_(magnitude / self.config["embedding_dim"] ** 0.5)

    def features(self, x: Tensor) -> Tensor:
        """The unnormalised embedding (before the L2 normalisation): what a margin-softmax head takes."""
        if x.dim() != 4:
            raise ValueError(f"NN2: input must be [N, C, H, W], got shape {tuple(x.shape)}")
        x = self.inception(self.stem(x))
        return self.embed(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.features(x), dim=1)


class SmallNet(nn.Module):
    """A small conv net for tiny images (the 8x8 digits): 3x3 conv blocks of 32 and 64 channels (x
    ``width`` / 0.25), a 2x2 max pool, a 3x3 conv block of 128, then the feature map pooled to 2x2 and
    flattened (not a global average: on a digit, where a stroke lies is what tells a 7 from a 1), a
    linear layer with BatchNorm and L2 normalisation. NN2's 7x7/2 stem and two pools would shrink an 8x8
    image to 1 pixel before the first Inception module."""

    def __init__(self, in_channels: int = 1, embedding_dim: int = 128, width: float = 0.25) -> None:
        super().__init__()
        if not 0 < width <= 4:
            raise ValueError(f"SmallNet: width must be in (0, 4], got {width}")
        c = [max(4, int(round(n * width / 0.25))) for n in (32, 64, 128)]
        self.stem = nn.Sequential(
            ConvBNReLU(in_channels, c[0], 3),
            ConvBNReLU(c[0], c[1], 3),
            nn.MaxPool2d(2, ceil_mode=True),
            ConvBNReLU(c[1], c[2], 3),
            nn.AdaptiveAvgPool2d(2),
        )
        self.embed = nn.Sequential(nn.Linear(4 * c[2], embedding_dim), nn.BatchNorm1d(embedding_dim))
        self.config = {"in_channels": in_channels, "embedding_dim": embedding_dim, "width": width}

    init_feature_magnitude = NN2.init_feature_magnitude

    def features(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"SmallNet: input must be [N, C, H, W], got shape {tuple(x.shape)}")
        return self.embed(torch.flatten(self.stem(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.features(x), dim=1)
