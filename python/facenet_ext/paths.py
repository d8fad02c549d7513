"""Where the real face data lives. It is never copied into the repo: ``FACENET_EXT_DATA`` names it, or
else it is the first ``shared/data`` folder found walking up from a start folder (the current directory
unless told): ``START/shared/data``, then ``START/../shared/data``, and so on up to the root. On this
project's machines and CI the checkout sits next to ``shared/``, so the walk finds it from the checkout
(the tests start there) or from any folder inside it, and from nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FACENET_EXT_DATA"
#: The image files an identity folder may hold: the trainer's loader, the LFW cache and the pair-list tools read these.
IMAGE_SUFFIXES = (".pgm", ".ppm", ".pnm", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def shared_data_dir(start: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``$FACENET_EXT_DATA`` if set (``FileNotFoundError`` if it is not a folder), else
    the first ``shared/data`` inside ``start`` (default: the current directory) or inside one of its
    parents; None if there is none."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{ENV_VAR}={env!r} is not a folder")
        return path
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


CACHE_ENV_VAR = "FACENET_EXT_CACHE"


def default_cache_dir() -> Path:
    """Where decoded-image caches go: ``$FACENET_EXT_CACHE``, else ``$XDG_CACHE_HOME/facenet_ext``, else
    ``~/.cache/facenet_ext``. Never beside the data, which may be read-only (as on CI)."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "facenet_ext"
