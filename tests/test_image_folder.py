"""The one image-folder lister (facenet_ext.image_folder): natural order, hidden and non-image entries
skipped, the same files in the same order for the trainer's loader, the decoded-image cache and the
pair-list tools, and errors that say which layout is expected."""

import numpy as np
import pytest
from PIL import Image

from facenet_ext.image_folder import list_image_folder
from facenet_ext.train.data.face_cache import Preprocess, load_cached_faces
from facenet_ext.train.data.images import load_image_folder


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 10), value, dtype=np.uint8), "L").save(path, format="PNG")


@pytest.fixture
def tree(tmp_path):
    """s1, s2, s10 (natural order differs from sorted()), with files 1, 2, 10 and things to skip."""
    root = tmp_path / "faces"
    for person in ("s10", "s2", "s1"):
        for k in (10, 2, 1):
            _png(root / person / f"{k}.png", k)
    _png(root / "s2" / "._2.png")  # macOS resource fork: hidden
    _png(root / ".trash" / "1.png")  # hidden folder
    _png(root / "s1" / "x.PNG", 3)  # suffixes in any case
    (root / "s1" / "notes.txt").write_text("not an image")
    (root / "s1" / "sub.png").mkdir()  # a folder, whatever its name
    (root / "empty").mkdir()
    (root / "README").write_text("a file beside the identity folders")
    return root


def test_natural_order_and_what_is_skipped(tree):
    listing = list_image_folder(tree)
    assert list(listing) == ["s1", "s2", "s10"]
    assert [p.name for p in listing["s1"]] == ["1.png", "2.png", "10.png", "x.PNG"]
    assert [p.name for p in listing["s2"]] == ["1.png", "2.png", "10.png"]


def test_the_loader_and_the_cache_see_the_same_files_in_the_same_order(tree, tmp_path):
    listing = list_image_folder(tree)
    files = [p for paths in listing.values() for p in paths]
    assert load_image_folder(tree, 16).paths == [str(p) for p in files]
    cached = load_cached_faces(tree, Preprocess(16), tmp_path / "cache", workers=0, progress=False)
    assert cached.paths == [str(tree.resolve() / p.relative_to(tree)) for p in files]
    assert cached.identities == [name for name, paths in listing.items() for _ in paths]


CALLS = {
    "list_image_folder": lambda root, cache: list_image_folder(root),
    "load_image_folder": lambda root, cache: load_image_folder(root, 16),
    "load_cached_faces": lambda root, cache: load_cached_faces(root, Preprocess(16), cache, workers=0, progress=False),
}


@pytest.mark.parametrize("fn", list(CALLS))
def test_images_directly_in_the_root_name_the_layout(tmp_path, fn):
    root = tmp_path / "flat"
    for k in range(3):
        _png(root / f"{k}.png")
    with pytest.raises(ValueError, match=rf"^{fn}: .* holds 3 image\(s\) directly.*root/<identity>/<image>"):
        CALLS[fn](root, tmp_path / "cache")


@pytest.mark.parametrize("fn", list(CALLS))
def test_missing_file_and_empty_folders(tmp_path, fn):
    with pytest.raises(FileNotFoundError, match=f"^{fn}: .* does not exist"):
        CALLS[fn](tmp_path / "missing", tmp_path / "cache")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=f"^{fn}: .* is not a folder"):
        CALLS[fn](tmp_path / "file", tmp_path / "cache")
    (tmp_path / "tree" / "alice").mkdir(parents=True)
    with pytest.raises(ValueError, match=f"^{fn}: .* holds no images: expected root/<identity>/<image>"):
        CALLS[fn](tmp_path / "tree", tmp_path / "cache")
