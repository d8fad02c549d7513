"""The decoded-face cache: built once, reused while current, rebuilt when the files, crop or size change,
never written inside the data folder; batches from the cache are byte-identical to batches decoded from
the JPEGs; corrupt JPEGs are skipped and counted."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from facenet_ext.image_folder import list_image_folder
from facenet_ext.train import TrainConfig
from facenet_ext.train.data.face_cache import JpegFaces, Preprocess, cache_key, load_cached_faces
from facenet_ext.train.lfw.data import all_faces
from facenet_ext.train.loop import batch_loader, build_sampler


def _write_jpegs(root, people=(("Ann_A", 3), ("Bob_B", 2), ("Cy_C", 1)), size=60, seed=0):
    rng = np.random.default_rng(seed)
    for name, n in people:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / name / f"{name}_{i:04d}.jpg", quality=90)
    return root


@pytest.fixture
def tree(tmp_path):
    return _write_jpegs(tmp_path / "images")


def test_built_once_then_reused(tree, tmp_path):
    prep = Preprocess(image_size=16, channels=1, crop_box=40)
    first = load_cached_faces(tree, prep, tmp_path / "cache", workers=0, progress=False)
    second = load_cached_faces(tree, prep, tmp_path / "cache", workers=0, progress=False)
    assert first.rebuilt and not second.rebuilt
    assert first.images.shape == (6, 1, 16, 16) and first.images.dtype == np.uint8
    assert np.array_equal(first.images, second.images) and first.paths == second.paths
    assert first.identities == ["Ann_A"] * 3 + ["Bob_B"] * 2 + ["Cy_C"]
    assert first.cache_file.parent == tmp_path / "cache"
    assert not any(p.suffix in (".npy", ".json") for p in tree.rglob("*"))  # nothing beside the images


def test_stale_cache_is_rebuilt(tree, tmp_path):
    cache = tmp_path / "cache"
    prep = Preprocess(image_size=16, channels=1, crop_box=40)
    before = load_cached_faces(tree, prep, cache, workers=0, progress=False)
    # another crop or size: another cache entry, built from the JPEGs
    other = load_cached_faces(
        tree, Preprocess(image_size=16, channels=1, crop_box=50), cache, workers=0, progress=False
    )
    assert other.rebuilt and other.cache_file != before.cache_file and not np.array_equal(other.images, before.images)
    assert cache_key(tree, Preprocess(20, 1, 40)) != cache_key(tree, prep) != cache_key(tree, Preprocess(16, 3, 40))
    # a changed image file: the same entry, rebuilt, with the new pixels
    target = tree / "Bob_B" / "Bob_B_0001.jpg"
    Image.fromarray(np.zeros((60, 60, 3), np.uint8), "RGB").save(target)
    os.utime(target, ns=(1, 1))  # a different mtime even on a coarse-clock file system
    after = load_cached_faces(tree, prep, cache, workers=0, progress=False)
    assert after.rebuilt and after.cache_file == before.cache_file
    row = after.paths.index(str(target.resolve()))
    assert after.images[row].max() == 0 and before.images[row].max() > 0
    # a new image: rebuilt with one more row
    _write_jpegs(tree, people=(("Dee_D", 2),), seed=5)
    assert len(load_cached_faces(tree, prep, cache, workers=0, progress=False).images) == 8


def test_batches_from_cache_and_from_jpeg_are_byte_identical(tree, tmp_path):
    prep = Preprocess(image_size=24, channels=3, crop_box=50)
    cached = load_cached_faces(tree, prep, tmp_path / "cache", workers=2, progress=False)  # decoded by 2 workers
    cached = load_cached_faces(tree, prep, tmp_path / "cache", workers=0, progress=False)  # read back from disk
    assert not cached.rebuilt
    jpeg = JpegFaces([f for files in list_image_folder(tree).values() for f in files], prep)
    data = all_faces(cached)
    cfg = TrainConfig(data=str(tree), identities_per_batch=2, images_per_identity=2, singletons=1, seed=4)
    sampler = build_sampler(cfg, data.labels)
    loader, _ = batch_loader(data, sampler, cfg, rank=0, start=0, stop=5)
    for images, labels, idx in loader:
        decoded = torch.from_numpy(np.stack([jpeg[i][1] for i in idx.tolist()]))
        assert images.dtype == torch.uint8 and torch.equal(images, decoded)
        assert torch.equal(labels, data.labels[idx])


def test_corrupt_jpeg_is_skipped_and_counted(tree, tmp_path):
    (tree / "Ann_A" / "Ann_A_0004.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 10)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        faces = load_cached_faces(tree, Preprocess(16), tmp_path / "cache", workers=0, progress=False)
    assert len(faces.images) == 6 and [p.rsplit("/", 1)[-1] for p, _ in faces.skipped] == ["Ann_A_0004.jpg"]
    again = load_cached_faces(tree, Preprocess(16), tmp_path / "cache", workers=0, progress=False)
    assert not again.rebuilt and len(again.skipped) == 1  # the count survives in the manifest


def test_bad_arguments(tree, tmp_path):
    with pytest.raises(ValueError, match="inside the data folder"):
        load_cached_faces(tree, Preprocess(16), tree / "cache", workers=0, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cached_faces(tmp_path / "nowhere", Preprocess(16), tmp_path / "cache", workers=0)
    with pytest.raises(ValueError, match="crop_box"):
        Preprocess(16, crop_box=4)
    with pytest.warns(UserWarning, match="skipped 6"), pytest.raises(ValueError, match="none of its 6"):
        load_cached_faces(tree, Preprocess(16, crop_box=100), tmp_path / "cache", workers=0, progress=False)


def test_real_lfw_images_match_a_direct_decode(shared_data, tmp_path):
    src = shared_data / "lfw" / "images"
    if not src.is_dir():
        pytest.skip("LFW not in the shared data")
    root = tmp_path / "images"
    root.mkdir()
    for name in ("Aaron_Peirsol", "Abdullah_Gul"):
        (root / name).symlink_to(src / name)
    prep = Preprocess(72, 1, 110)
    faces = load_cached_faces(root, prep, tmp_path / "cache", workers=0, progress=False)
    with Image.open(src / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg") as im:
        expected = np.asarray(im.convert("L").crop((70, 70, 180, 180)).resize((72, 72), Image.Resampling.BILINEAR))
    row = [p.rsplit("/", 1)[-1] for p in faces.paths].index("Abdullah_Gul_0013.jpg")
    assert np.array_equal(faces.images[row, 0], expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_building_the_cache_leaves_the_global_rng_alone(tree, tmp_path, workers):
    """A seeded run must not depend on whether it built the cache (a DataLoader draws its workers' seed
    from torch's global generator unless given its own)."""
    state = torch.get_rng_state()
    faces = load_cached_faces(tree, Preprocess(16), tmp_path / "cache", workers=workers, progress=False)
    assert faces.rebuilt
    assert torch.equal(torch.get_rng_state(), state)
