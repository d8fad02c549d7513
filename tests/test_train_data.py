"""Image folders, the digits default, the identity split, the P x K sampler and the augmentation."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from facenet_ext.image_folder import natural_key
from facenet_ext.train.data.images import augment, load_digits_set, load_image_folder, split_identities, standardize
from facenet_ext.train.data.sampler import PKSampler


def _write_tree(root, counts, mode="L", size=(20, 30)):
    rng = np.random.default_rng(0)
    for i, n in enumerate(counts):
        folder = root / f"s{i + 1}"
        folder.mkdir(parents=True)
        for j in range(n):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{j + 1}.png")
    return root


def test_natural_order():
    assert sorted(["s10", "s2", "s1"], key=natural_key) == ["s1", "s2", "s10"]


def test_folder_grayscale_resized_and_cropped(tmp_path):
    data = load_image_folder(_write_tree(tmp_path, [3, 2, 4]), image_size=16)
    assert data.images.shape == (9, 1, 16, 16) and data.images.dtype == torch.uint8
    assert data.identities == ["s1", "s2", "s3"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert data.counts().tolist() == [3, 2, 4]


def test_folder_rgb_and_forced_channels(tmp_path):
    root = _write_tree(tmp_path, [2, 2], mode="RGB")
    assert load_image_folder(root, 16).images.shape == (4, 3, 16, 16)
    assert load_image_folder(root, 16, channels=1).images.shape == (4, 1, 16, 16)


def test_corrupt_files_are_skipped_listed_and_counted(tmp_path):
    root = _write_tree(tmp_path, [3, 3])
    (root / "s1" / "broken.png").write_bytes(b"not an image at all")
    (root / "s2" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 10)
    (root / "s2" / "notes.txt").write_text("ignored: not an image suffix")
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        data = load_image_folder(root, 16)
    assert len(data) == 6
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in data.skipped) == ["broken.png", "truncated.jpg"]


@pytest.mark.parametrize(
    "setup,error,message",
    [
        (lambda p: p / "missing", FileNotFoundError, "does not exist"),
        (lambda p: p, ValueError, "holds no images"),
        (lambda p: _write_tree(p, [4]), ValueError, "need at least 2$"),
    ],
)
def test_bad_folders(tmp_path, setup, error, message):
    with pytest.raises(error, match=message):
        load_image_folder(setup(tmp_path), 16)


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        load_image_folder(tmp_path / "f", 16)


def test_digits_default():
    data = load_digits_set(16)
    assert data.images.shape == (1797, 1, 16, 16) and len(data.identities) == 10
    assert int(data.images.max()) > 200  # scaled from 0..16 to 0..255


def test_split_is_by_identity_never_by_image(tmp_path):
    data = load_image_folder(_write_tree(tmp_path, [2] * 12), 16)
    train, held = split_identities(data, 0.25)
    assert held.identities == ["s10", "s11", "s12"]
    assert not set(train.identities) & set(held.identities)
    assert len(train) + len(held) == len(data)
    assert set(held.labels.tolist()) == {0, 1, 2}
    train2, held2 = split_identities(data, ["s1", "s5"])
    assert held2.identities == ["s1", "s5"] and len(train2.identities) == 10
    with pytest.raises(ValueError, match="holdout"):
        split_identities(data, 1.5)


def test_orl_split_holds_out_s31_to_s40(shared_data):
    train, held = split_identities(load_image_folder(shared_data / "orl_faces", 32), 0.25)
    assert held.identities == [f"s{i}" for i in range(31, 41)]
    assert len(train) == 300 and len(held) == 100


def test_sampler_batches_are_p_by_k():
    labels = torch.arange(10).repeat_interleave(6)
    sampler = PKSampler(labels, identities_per_batch=4, images_per_identity=3)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        idx = sampler.batch(g)
        assert idx.numel() == 12 and idx.unique().numel() == 12
        assert torch.bincount(labels[idx]).sort(descending=True).values[:4].tolist() == [3, 3, 3, 3]


def test_sampler_small_identities_and_single_images():
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 1 + [3] * 4)
    with pytest.warns(UserWarning, match="single image"):
        sampler = PKSampler(labels, identities_per_batch=8, images_per_identity=4)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        counts = torch.bincount(labels[sampler.batch(g)], minlength=4).tolist()
        assert counts[2] == 0  # the single-image identity is never drawn
        assert counts[0] == 4 and counts[1] == 2 and counts[3] == 4
    assert sampler.batch_size == 12


def test_sampler_is_driven_by_the_generator():
    labels = torch.arange(20).repeat_interleave(5)
    sampler = PKSampler(labels, 5, 3)
    a, b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert all(torch.equal(sampler.batch(a), sampler.batch(b)) for _ in range(5))


def test_sampler_needs_two_usable_identities():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="at least two identities"):
            PKSampler(torch.tensor([0, 0, 1]), 2, 2)
    with pytest.raises(ValueError, match="identities_per_batch"):
        PKSampler(torch.tensor([0, 0, 1, 1]), 1, 2)


def test_standardize_and_augment():
    images = torch.randint(0, 256, (6, 1, 12, 12), dtype=torch.uint8)
    x = standardize(images)
    torch.testing.assert_close(x.flatten(1).mean(1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.flatten(1).std(1, unbiased=False), torch.ones(6), atol=1e-4, rtol=0)
    assert torch.isfinite(standardize(torch.full((1, 1, 8, 8), 7, dtype=torch.uint8))).all()  # flat image
    y1 = augment(x, torch.Generator().manual_seed(3))
    y2 = augment(x, torch.Generator().manual_seed(3))
    assert y1.shape == x.shape and torch.equal(y1, y2)
    flipped = augment(x, torch.Generator().manual_seed(3), shift=0)  # flips only permute each image's pixels
    assert torch.equal(flipped.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_degrade_changes_exactly_the_chosen_images():
    from facenet_ext.train.data.degrade import CLASSIC, degrade

    images = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8)
    out, kind = degrade(images, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert (kind >= 0).sum() == 6 and torch.bincount(kind[kind >= 0], minlength=3).tolist() == [2, 2, 2]
    clean = kind == -1
    assert torch.equal(out[clean], images[clean])
    assert all(not torch.equal(out[i], images[i]) for i in (kind >= 0).nonzero().flatten().tolist())
    again, _ = degrade(images, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and len(CLASSIC) == 3


def test_random_affine_rotates_and_zooms_about_the_centre():
    """No rotation and no zoom resample every pixel onto itself; a zoom keeps the centre pixel; the same
    generator state gives the same warp (resumed runs replay it), another gives another."""
    from facenet_ext.train.data.images import random_affine

    x = torch.randn(6, 1, 16, 16)
    same = random_affine(x, torch.Generator().manual_seed(0), rotate=0.0, scale=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    # a constant image stays constant inside the frame whatever the rotation (the border fills with 0)
    flat = torch.ones(4, 1, 32, 32)
    warped = random_affine(flat, torch.Generator().manual_seed(1), rotate=30.0, scale=0.0)
    torch.testing.assert_close(warped[..., 12:20, 12:20], flat[..., 12:20, 12:20])
    assert (warped[..., 0, 0] < 1).all()  # corners rotate out of the frame: a quarter of the way to 30 degrees
    # a centred bright cross: zoom and rotation both keep its centre on the centre pixel pair
    cross = torch.zeros(8, 1, 17, 17)
    cross[..., 8, :] = 1
    cross[..., :, 8] = 1
    out = random_affine(cross, torch.Generator().manual_seed(2), rotate=10.0, scale=0.2)
    assert (out[..., 8, 8] > 0.99).all()
    assert not torch.allclose(out, cross, atol=1e-3)
    again = random_affine(cross, torch.Generator().manual_seed(2), rotate=10.0, scale=0.2)
    assert torch.equal(out, again)
    other = random_affine(cross, torch.Generator().manual_seed(3), rotate=10.0, scale=0.2)
    assert not torch.equal(out, other)


@pytest.mark.parametrize("field, value", [("rotate", -1.0), ("rotate", 46.0), ("scale", -0.1), ("scale", 0.5)])
def test_affine_augmentation_ranges(field, value):
    from facenet_ext.train.config import TrainConfig

    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("identities", [1, 3])
def test_training_folder_states_the_real_minimum(tmp_path, identities, monkeypatch):
    """Training holds out 2 identities and trains on 2: a folder with fewer than 4 is refused saying so,
    from the listing, before any image is decoded."""
    from PIL import Image

    from facenet_ext.train import TrainConfig
    from facenet_ext.train.loop import load_data

    root = _write_tree(tmp_path / "faces", [3] * identities)

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded before the identity count was checked")

    monkeypatch.setattr(Image, "open", no_decoding)
    with pytest.raises(ValueError, match=r"need at least 4 \(2 held out for evaluation, 2 to train on\)"):
        load_data(TrainConfig(data=str(root)))
