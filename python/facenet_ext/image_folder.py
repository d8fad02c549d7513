"""Image folders laid out as ``root/<identity>/<image>``: the one lister that the trainer's loader, the
decoded-image cache and the pair-list tools share, so that image number i of an identity is the same file
for all of them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .paths import IMAGE_SUFFIXES

LAYOUT = "root/<identity>/<image>"


def natural_key(name: str) -> list:
    """Sort key in which s2 < s10 (ORL's folders are s1..s40, its files 1.pgm..10.pgm); case-insensitive."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _natural(paths) -> list[Path]:
    # The name itself breaks ties between names that differ only in case: the order never depends on the disk.
    return sorted((p for p in paths if not p.name.startswith(".")), key=lambda p: (natural_key(p.name), p.name))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_image_folder(root: str | os.PathLike) -> dict[str, list[Path]]:
    """``{identity: [image files]}`` of a tree ``root/<identity>/<image>``.

    Identities and files in natural order (``s2`` before ``s10``, ``2.pgm`` before ``10.pgm``), so image
    number i (1-based) of an identity is its i-th file. Images are the files with a suffix in
    ``facenet_ext.paths.IMAGE_SUFFIXES`` (any case); names starting with a dot (hidden folders and files)
    are skipped; identity folders without images are left out. ``FileNotFoundError`` when ``root`` does
    not exist, ``NotADirectoryError`` when it is a file, ``ValueError`` when no identity folder holds an
    image (saying so when the images sit directly in ``root``)."""
    return list_image_folder_for("list_image_folder", root)


def list_image_folder_for(fn: str, root: str | os.PathLike) -> dict[str, list[Path]]:
    """:func:`list_image_folder` for the public function ``fn`` (named in its errors)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{fn}: data folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{fn}: data folder {str(root)!r} is not a folder (expected {LAYOUT})")
    entries = _natural(root.iterdir())
    listing = {d.name: [f for f in _natural(d.iterdir()) if _is_image(f)] for d in entries if d.is_dir()}
    listing = {name: files for name, files in listing.items() if files}
    if listing:
        return listing
    loose = sum(_is_image(f) for f in entries)
    if loose:
        raise ValueError(
            f"{fn}: data folder {str(root)!r} holds {loose} image(s) directly, none in identity "
            f"folders: expected one sub-folder per identity, {LAYOUT}"
        )
    raise ValueError(
        f"{fn}: data folder {str(root)!r} holds no images: expected {LAYOUT} with suffixes {', '.join(IMAGE_SUFFIXES)}"
    )
