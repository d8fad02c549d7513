"""Labelled image sets for the trainer: an image folder tree ``ROOT/<identity>/<image>``, or
scikit-learn's bundled handwritten digits (labels as identities) when no folder is given.

Images are decoded once, resized (shorter side to ``image_size``, centre crop) and kept in memory as one
uint8 tensor: the face sets this trainer targets are small, and it keeps every epoch free of I/O. Files
are data, never code: a file that cannot be decoded, or is larger than ``MAX_PIXELS``, is skipped, listed
and counted, never a crash halfway through an epoch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...image_folder import list_image_folder_for, natural_key

MAX_PIXELS = 50_000_000  # a decompression bomb guard; real face crops are far below it


@dataclass
class ImageSet:
    """``images`` uint8 [N, C, S, S]; ``labels`` int64 [N] indexing ``identities``; ``paths`` per image;
    ``skipped`` lists (path, reason) for every file that was not loaded."""

    images: Tensor
    labels: Tensor
    identities: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.numel())

    def counts(self) -> Tensor:
        """Images per identity, indexed by label."""
        return torch.bincount(self.labels, minlength=len(self.identities))

    def select_identities(self, names: list[str]) -> ImageSet:
        """The images of the named identities, relabelled 0..len(names)-1 in the given order."""
        index = {name: i for i, name in enumerate(self.identities)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"unknown identities {missing[:5]} (have {len(self.identities)})")
        old_to_new = torch.full((len(self.identities),), -1, dtype=torch.int64)
        old_to_new[[index[n] for n in names]] = torch.arange(len(names))
        keep = old_to_new[self.labels] >= 0
        rows = keep.nonzero().flatten().tolist()
        return ImageSet(self.images[keep], old_to_new[self.labels[keep]], list(names), [self.paths[i] for i in rows])


def report_unreadable(root, n_files: int, skipped: list, n_kept: int) -> None:
    """Warn once about the files that could not be decoded (the first 20 named); fail if none could."""
    if skipped:
        listing = "\n  ".join(f"{p}: {why}" for p, why in skipped[:20])
        more = f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) under {root}:\n  {listing}{more}", stacklevel=3)
    if not n_kept:
        raise ValueError(f"data folder {str(root)!r}: none of its {n_files} image files could be read")


def load_image_folder(
    root: str | Path, image_size: int = 64, channels: int | None = None, min_identities: int = 2
) -> ImageSet:
    """Every image under ``root/<identity>/``, as :func:`facenet_ext.image_folder.list_image_folder` lists
    them (natural order). ``channels`` 1 or 3; ``None`` picks 1 if every image is grayscale, else 3.
    Fewer than ``min_identities`` identities with images raise ``ValueError`` (checked on the listing
    before anything is decoded, and again after unreadable files are skipped); training with a
    fractional hold-out needs 4 (:data:`MIN_TRAIN_IDENTITIES`)."""
    from PIL import Image  # imported on use: about 0.1 s that --help does not need

    root = Path(root).expanduser()
    listing = list_image_folder_for("load_image_folder", root)
    _check_count(len(listing), min_identities, str(root))
    _check_size("image_size", image_size)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None (auto), got {channels!r}")
    files = [(identity, f) for identity, paths in listing.items() for f in paths]

    decoded, skipped = [], []
    for identity, path in files:
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ValueError(f"{im.width}x{im.height} exceeds {MAX_PIXELS} pixels")
                im.load()
                decoded.append((identity, str(path), im.copy()))
        except Exception as exc:  # noqa: BLE001  (any decoder failure means: skip this file, keep going)
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
    report_unreadable(root, len(files), skipped, len(decoded))
    if channels is None:
        channels = 1 if all(im.mode in ("L", "I", "I;16", "1", "F") for _, _, im in decoded) else 3
    mode = "L" if channels == 1 else "RGB"
    arrays = [np.asarray(center_square(im.convert(mode), image_size)) for _, _, im in decoded]
    images = torch.from_numpy(np.stack(arrays))
    images = images.unsqueeze(1) if channels == 1 else images.permute(0, 3, 1, 2)
    names = list(dict.fromkeys(identity for identity, _, _ in decoded))
    index = {n: i for i, n in enumerate(names)}
    labels = torch.tensor([index[identity] for identity, _, _ in decoded], dtype=torch.int64)
    out = ImageSet(images.contiguous(), labels, names, [p for _, p, _ in decoded], skipped)
    _check_count(len(out.identities), min_identities, str(root))
    return out


def load_digits_set(image_size: int = 32) -> ImageSet:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), upsampled to
    ``image_size``: real images that need no download, so the trainer runs on a fresh machine."""
    from sklearn.datasets import load_digits  # imported on use: scikit-learn takes about 4 s to load

    _check_size("image_size", image_size)
    digits = load_digits()
    x = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)
    x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(digits.target).to(torch.int64)
    return ImageSet(
        images, labels, [f"digit{d}" for d in range(10)], [f"sklearn-digits[{i}]" for i in range(len(labels))]
    )


def split_identities(data: ImageSet, holdout: float | list[str]) -> tuple[ImageSet, ImageSet]:
    """Split by identity, never by image: the held-out set is the last ``holdout`` fraction of the
    identities in natural order (ORL with 0.25: s31-s40), or the identities named in a list."""
    names = data.identities
    if isinstance(holdout, (list, tuple)):
        held = list(holdout)
    else:
        if not 0 < holdout < 1:
            raise ValueError(f"holdout must be a fraction in (0, 1) or a list of identities, got {holdout!r}")
        n_held = max(2, int(round(holdout * len(names))))
        if len(names) - n_held < 2:
            raise ValueError(
                f"{len(names)} identities are too few to hold out {n_held} and train on at least 2 "
                f"(a fractional holdout needs at least {max(MIN_TRAIN_IDENTITIES, n_held + 2)})"
            )
        held = sorted(names, key=natural_key)[-n_held:]
    train = [n for n in names if n not in set(held)]
    return data.select_identities(train), data.select_identities(held)


def standardize(images: Tensor) -> Tensor:
    """uint8 [N, C, H, W] -> float32, each image to zero mean and unit variance (FaceNet-style
    prewhitening; the std is floored at 1/sqrt(#pixels) so a flat image does not blow up)."""
    x = images.float()
    flat = x.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return (x - mean.view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


def augment(x: Tensor, generator: torch.Generator, shift: int = 4, hflip: bool = True) -> Tensor:
    """Light augmentation, drawn from ``generator`` so a resumed run replays it: a random horizontal
    flip (unless not ``hflip``) and a random translation by up to ``shift`` pixels (zero fill)."""
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=generator) < 0.5) & hflip
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if shift <= 0:
        return x
    padded = torch.nn.functional.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (dy.view(-1, 1) + torch.arange(h)).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2 * shift)
    cropped = padded.gather(2, rows)
    cols = (dx.view(-1, 1) + torch.arange(w)).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    return cropped.gather(3, cols)


def random_affine(x: Tensor, generator: torch.Generator, rotate: float, scale: float) -> Tensor:
    """Each image [N, C, H, W] rotated by a random angle in [-``rotate``, ``rotate``] degrees and zoomed by a
    random factor in [1 - ``scale``, 1 + ``scale``] about its centre (bilinear; the border filled with 0, the
    mean of a standardised image). Drawn from ``generator`` so a resumed run replays it. The faces of a
    small training set are seen at a few more poses and sizes than its images hold."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * (rotate * torch.pi / 180)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    # affine_grid maps output coordinates to input ones: a zoom by z samples the input at 1/z
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def center_crop(x: Tensor, size: int | None) -> Tensor:
    """The centred ``size`` x ``size`` window of images [N, C, H, W] (unchanged when size is None or H)."""
    h, w = x.shape[-2:]
    if size is None or (size == h and size == w):
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def random_crop_flip(x: Tensor, size: int, generator: torch.Generator, hflip: bool = True) -> Tensor:
    """FaceNet-style augmentation, drawn from ``generator`` so a resumed run replays it: a random
    ``size`` x ``size`` window of each image [N, C, H, W] and (``hflip``) a random horizontal flip."""
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=generator) < 0.5) & hflip
    top = torch.randint(0, h - size + 1, (n,), generator=generator)
    left = torch.randint(0, w - size + 1, (n,), generator=generator)
    rows = (top.view(-1, 1) + torch.arange(size)).view(n, 1, size, 1).expand(n, x.shape[1], size, w)
    cols = (left.view(-1, 1) + torch.arange(size)).view(n, 1, 1, size).expand(n, x.shape[1], size, size)
    out = x.gather(2, rows).gather(3, cols)
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)


def center_square(im, size: int):
    """The centred ``size`` x ``size`` square of PIL image ``im``, resized (bilinear) so that its shorter
    side is ``size`` first: how plain folders and the decoded-image cache fit an image to the model."""
    from PIL import Image  # imported on use: about 0.1 s that --help does not need

    scale = size / min(im.width, im.height)
    w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
    im = im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 8:
        raise ValueError(f"{name} must be an int >= 8, got {value!r}")


#: A fractional hold-out keeps at least 2 identities for evaluation (pairs of different people) and at
#: least 2 for training (a triplet needs a negative): :func:`split_identities`.
MIN_TRAIN_IDENTITIES = 4


def _check_count(found: int, minimum: int, where: str) -> None:
    if found < minimum:
        why = " (2 held out for evaluation, 2 to train on)" if minimum == MIN_TRAIN_IDENTITIES else ""
        raise ValueError(f"{where}: found {found} identity folder(s) with images; need at least {minimum}{why}")
