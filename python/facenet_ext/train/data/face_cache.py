"""Decode face images once: a centre crop box, a resize and a colour mode (:class:`Preprocess`), applied to
every image of a folder tree and kept as one uint8 array in a user cache directory.

LFW is 13233 JPEGs; decoding them every epoch would cost more than the training step. The cache is the
file ``<cache_dir>/faces-<key>.npy`` with a manifest ``faces-<key>.json``, where ``key`` hashes the
data folder's absolute path and the preprocessing (crop box, size, channels, format version). The
manifest also records a signature of the image files (relative path, size, mtime): when the files
changed since the cache was built, it is rebuilt, never silently reused. The cache never lives beside
the images (the data folder may be read-only, as on CI): ``--cache DIR``, else ``$FACENET_EXT_CACHE``,
else ``$XDG_CACHE_HOME/facenet_ext``, else ``~/.cache/facenet_ext``.

Building it decodes through a ``torch.utils.data.DataLoader`` over :class:`JpegFaces`, so ``workers``
processes decode in parallel (the one place where workers pay off on 2 cores). Files that cannot be
decoded are skipped, listed in a warning and in the manifest, and counted, as for plain folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...image_folder import list_image_folder_for
from ...paths import default_cache_dir
from .images import MAX_PIXELS, center_square, report_unreadable

CACHE_VERSION = 1


@dataclass(frozen=True)
class Preprocess:
    """What one cached image is: ``crop_box`` (side of the centred square cut from the source image, in
    source pixels; None = the largest centred square), resized to ``image_size`` x ``image_size``
    (bilinear, antialiased), ``channels`` 1 (grayscale) or 3 (RGB)."""

    image_size: int
    channels: int = 1
    crop_box: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {self.image_size!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.crop_box is not None and (not isinstance(self.crop_box, int) or self.crop_box < 8):
            raise ValueError(
                f"crop_box must be an int >= 8 (pixels of the source image) or None, got {self.crop_box!r}"
            )

    def __call__(self, path: str | Path) -> np.ndarray:
        """uint8 [C, S, S] of one image file; raises on a file that cannot be decoded."""
        from PIL import Image  # imported on use: about 0.1 s that --help does not need

        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{im.width}x{im.height} exceeds {MAX_PIXELS} pixels")
            im = im.convert("L" if self.channels == 1 else "RGB")
        if self.crop_box is None:
            im = center_square(im, self.image_size)
        else:
            if self.crop_box > min(im.width, im.height):
                raise ValueError(f"crop box {self.crop_box} is larger than the {im.width}x{im.height} image")
            left, top = (im.width - self.crop_box) // 2, (im.height - self.crop_box) // 2
            im = im.crop((left, top, left + self.crop_box, top + self.crop_box))
            im = im.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


class JpegFaces(torch.utils.data.Dataset):
    """The images of ``files``, decoded on every access: ``(index, uint8 [C, S, S] or None, error)``.
    The uncached path (and what builds the cache); a failed decode returns None and the reason."""

    def __init__(self, files: list[Path], prep: Preprocess) -> None:
        self.files, self.prep = files, prep

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            return i, self.prep(self.files[i]), ""
        except Exception as exc:  # noqa: BLE001  (any decoder failure means: skip this file, keep going)
            return i, None, f"{type(exc).__name__}: {exc}"


@dataclass
class CachedFaces:
    """The decoded images (uint8 [N, C, S, S], in memory) and, per row, its identity and file."""

    images: np.ndarray
    identities: list[str]  # per row
    paths: list[str]  # per row, absolute
    skipped: list[tuple[str, str]]
    cache_file: Path
    rebuilt: bool


def _signature(root: Path, files: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for _, f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_key(root: str | Path, prep: Preprocess) -> str:
    """The cache file's name part: the data folder and the preprocessing (not the files' signature,
    which the manifest checks, so a changed folder rebuilds the same entry instead of adding one)."""
    ident = json.dumps({"version": CACHE_VERSION, "root": str(Path(root).resolve()), **asdict(prep)}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached_faces(
    root: str | Path, prep: Preprocess, cache_dir: str | Path | None = None, *, workers: int = 2, progress: bool = True
) -> CachedFaces:
    """Every image under ``root/<identity>/`` preprocessed by ``prep``, from the cache when it is
    current, else decoded (``workers`` processes) and written to it. See the module doc."""
    root = Path(root).expanduser().resolve()
    listing = list_image_folder_for("load_cached_faces", root)
    files = [(identity, f) for identity, paths in listing.items() for f in paths]
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if cache_dir.resolve().is_relative_to(root):
        raise ValueError(
            f"the cache directory {cache_dir} is inside the data folder {root}; choose another (--cache DIR)"
        )
    key = cache_key(root, prep)
    array_file, manifest_file = cache_dir / f"faces-{key}.npy", cache_dir / f"faces-{key}.json"
    signature = _signature(root, files)

    manifest = _read_manifest(manifest_file)
    if manifest is not None and manifest.get("signature") == signature and manifest.get("preprocess") == asdict(prep):
        try:
            images = np.load(array_file)
        except (OSError, ValueError):
            images = None
        if images is not None and images.shape == (
            len(manifest["files"]),
            prep.channels,
            prep.image_size,
            prep.image_size,
        ):
            kept = [root / p for p in manifest["files"]]
            return CachedFaces(
                images,
                [p.parent.name for p in kept],
                [str(p) for p in kept],
                [tuple(s) for s in manifest["skipped"]],
                array_file,
                rebuilt=False,
            )

    images, kept, skipped = _decode_all([f for _, f in files], prep, workers, progress)
    report_unreadable(root, len(files), skipped, len(kept))
    _atomic_write(array_file, lambda f: np.save(f, images))
    record = {
        "version": CACHE_VERSION,
        "root": str(root),
        "preprocess": asdict(prep),
        "signature": signature,
        "files": [str(p.relative_to(root)) for p in kept],
        "skipped": skipped,
    }
    # Written last: the manifest marks the cache complete.
    _atomic_write(manifest_file, lambda f: f.write(json.dumps(record).encode()))
    return CachedFaces(images, [p.parent.name for p in kept], [str(p) for p in kept], skipped, array_file, rebuilt=True)


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _decode_all(files: list[Path], prep: Preprocess, workers: int, progress: bool):
    from tqdm.auto import tqdm  # imported on use: about 0.4 s that --help does not need

    # Its own generator: a DataLoader otherwise draws its workers' base seed from torch's global RNG, so a
    # run that builds the cache would draw one number more than one that finds it, and train differently.
    loader = torch.utils.data.DataLoader(
        JpegFaces(files, prep),
        batch_size=64,
        num_workers=max(0, workers),
        collate_fn=list,
        generator=torch.Generator(),
    )
    out = np.empty((len(files), prep.channels, prep.image_size, prep.image_size), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    skipped = []
    with tqdm(
        total=len(files),
        desc=f"decoding {len(files)} images into the cache",
        disable=not progress,
        dynamic_ncols=True,
        leave=False,
    ) as bar:
        for batch in loader:
            for i, a, error in batch:
                if a is None:
                    skipped.append((str(files[i]), error))
                else:
                    out[i], ok[i] = a, True
            bar.update(len(batch))
    return np.ascontiguousarray(out[ok]), [f for f, good in zip(files, ok) if good], skipped
