"""Issue 16's quality experiment, piece by piece on small synthetic data (degradations deterministic per
seed, the error-versus-reject curve against a hand count, the template split disjoint, the picture grid
written, one seed's report end to end), and a short MagFace training run on a few real LFW people (when
the shared data is present) through `train --loss magface` and `eval` with its magnitudes."""

import json

import numpy as np
import pytest
import torch

from facenet_ext.__main__ import main
from facenet_ext.quality import (
    error_versus_reject,
    fnmr_at,
    plot_quality_grid,
    quality_auc_by_kind,
    random_rejection,
    rank_auc,
    split_templates,
    template_verification,
)
from facenet_ext.train.config import TrainConfig
from facenet_ext.train.data.degrade import CLASSIC, DEGRADATIONS, degrade, parse_kinds
from facenet_ext.train.data.images import ImageSet
from facenet_ext.train.lfw.protocol import read_people
from facenet_ext.train.lfw.quality import cap_per_person, degraded_copy, quality_report


# --- degradations ------------------------------------------------------------------------------------
def test_degradations_are_deterministic_per_seed_and_cover_every_kind():
    images = torch.randint(0, 256, (25, 1, 24, 24), dtype=torch.uint8)
    a, kind = degrade(images, 0.8, torch.Generator().manual_seed(5), kinds="all")
    b, kind_b = degrade(images, 0.8, torch.Generator().manual_seed(5), kinds="all")
    c, kind_c = degrade(images, 0.8, torch.Generator().manual_seed(6), kinds="all")
    assert torch.equal(a, b) and torch.equal(kind, kind_b)
    assert not torch.equal(a, c) or not torch.equal(kind, kind_c)
    assert torch.bincount(kind[kind >= 0], minlength=5).tolist() == [4, 4, 4, 4, 4]  # 20 degraded, a fifth each
    assert torch.equal(a[kind == -1], images[kind == -1])
    for i in (kind >= 0).nonzero().flatten().tolist():
        assert not torch.equal(a[i], images[i]), DEGRADATIONS[kind[i]]
    # low resolution is smooth: neighbouring pixels differ far less than in the random original
    low = kind == DEGRADATIONS.index("lowres")
    step = lambda x: (x[..., 1:].float() - x[..., :-1].float()).abs().mean()  # noqa: E731
    assert step(a[low]) < 0.5 * step(images[low])


def test_degrade_kinds_subset_and_rgb():
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    out, kind = degrade(images, 1.0, torch.Generator().manual_seed(0), kinds="lowres,jpeg")
    assert sorted(set(kind.tolist())) == [DEGRADATIONS.index("lowres"), DEGRADATIONS.index("jpeg")]
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert parse_kinds("all") == DEGRADATIONS and parse_kinds(CLASSIC) == CLASSIC
    with pytest.raises(ValueError, match="kinds"):
        parse_kinds("blur,sharpen")
    with pytest.raises(ValueError, match="degrade_kinds|kinds"):
        TrainConfig(degrade_kinds="fog")


# --- AUC and the error-versus-reject curve -----------------------------------------------------------
def test_rank_auc_and_per_kind_auc_hand_case():
    assert rank_auc([3, 2, 1], [True, False, False]) == 1.0
    assert rank_auc([1, 1, 2], [True, False, False]) == 0.25  # one tie (half) and one loss, over 2 pairs
    quality = np.array([10.0, 9.0, 2.0, 11.0, 1.0, 8.0])
    kind = np.array([-1, -1, 0, 0, 1, -1])  # clean 10, 9, 8; kind 0 has 2 and 11; kind 1 has 1
    auc = quality_auc_by_kind(quality, kind, ("a", "b", "c"))
    assert auc == {
        "all": pytest.approx(6 / 9),
        "a": pytest.approx(3 / 6),
        "b": 1.0,
    }  # 11 beats every clean one; "c" absent


def test_erc_against_a_hand_count():
    # person 0: A0, A1 (cos 0.6); person 1: B0, B1 (cos 0). Impostor cosines: A0-B0 0, A0-B1 -1, A1-B0 0.8,
    # A1-B1 -0.6. far 0.25 of 4 impostors: one may pass, so the accepted pairs are those more similar than the
    # second largest, 0; the smallest accepted similarity, 0.6, is the threshold (accept cos >= 0.6): genuine
    # A0-A1 accepted, B0-B1 rejected (FNMR 1/2); impostor A1-B0 accepted (1/4).
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    quality = torch.tensor([4.0, 3.0, 2.0, 1.0])  # B1 worst: rejecting 25% drops it and its pairs
    erc = error_versus_reject(emb, labels, quality, fractions=(0.0, 0.25), far=0.25)
    assert float(erc["threshold"]) == pytest.approx(0.6)
    np.testing.assert_allclose(erc["fnmr"], [0.5, 0.0])
    np.testing.assert_allclose(erc["fmr"], [0.25, 0.5])  # left: A0-B0 (rejected), A1-B0 (accepted)
    assert fnmr_at(erc, 0.25) == 0.0
    rnd = random_rejection(emb, labels, draws=5, seed=1, fractions=(0.0, 0.25), far=0.25)
    assert rnd["fnmr"].shape == (5, 2) and np.all(rnd["fnmr"][:, 0] == 0.5)
    again = random_rejection(emb, labels, draws=5, seed=1, fractions=(0.0, 0.25), far=0.25)
    np.testing.assert_array_equal(rnd["fnmr"], again["fnmr"])


# --- templates ---------------------------------------------------------------------------------------
def test_template_split_is_disjoint_and_covers_each_person():
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 4 + [3] * 9)
    rows, tids, person = split_templates(labels, torch.Generator().manual_seed(0), min_images=4)
    assert rows.unique().numel() == rows.numel()  # no image in two templates
    assert person.tolist() == [0, 0, 2, 2, 3, 3]  # person 1 (2 images) left out
    for t in range(len(person)):
        members = rows[tids == t]
        assert members.numel() >= 2 and (labels[members] == person[t]).all()
    for p in (0, 2, 3):  # each person's two templates together hold all of its images, split in half
        mine = rows[labels[rows] == p]
        assert sorted(mine.tolist()) == (labels == p).nonzero().flatten().tolist()
        counts = torch.bincount(tids[labels[rows] == p]).tolist()
        assert max(counts) - min(c for c in counts if c) <= 1
    again = split_templates(labels, torch.Generator().manual_seed(0), min_images=4)
    assert all(torch.equal(x, y) for x, y in zip((rows, tids, person), again))
    with pytest.raises(ValueError, match="no person"):
        split_templates(labels, torch.Generator().manual_seed(0), min_images=20)


def _synthetic_faces(people=12, per=8, dim=16, seed=0):
    """Features of a toy "model": each person a direction; degraded images get a low magnitude and a
    noisy direction, clean ones a high magnitude and a little noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(people, dim, generator=g), dim=1)
    labels = torch.arange(people).repeat_interleave(per)
    images = torch.randint(0, 256, (people * per, 1, 20, 20), dtype=torch.uint8, generator=g)
    data = ImageSet(
        images, labels, [f"p{i}" for i in range(people)], [f"p{i}/{j}.png" for i in range(people) for j in range(per)]
    )
    qs = degraded_copy(data, 0.5, seed)

    def feats(bad: bool):
        noise = torch.randn(len(labels), dim, generator=g)
        spread = torch.where(qs.kind >= 0, 1.0, 0.1) if bad else torch.full((len(labels),), 0.1)
        d = torch.nn.functional.normalize(centres[labels] + spread[:, None] * noise, dim=1)
        scale = torch.where(qs.kind >= 0, 10.0, 40.0) if bad else torch.full((len(labels),), 40.0)
        return d * (scale + torch.rand(len(labels), generator=g))[:, None]

    return qs, feats(False), feats(True)


def test_magnitude_weighted_templates_beat_mean_ones_when_bad_images_are_small():
    qs, _, bad = _synthetic_faces(people=20, per=8)
    r = template_verification(bad, qs.clean.labels, torch.Generator().manual_seed(0), min_images=4)
    assert r["people"] == 20 and r["images"] == 160
    assert r["magnitude"]["pairs_same"] == 20 and r["magnitude"]["pairs_diff"] == 40 * 39 // 2 - 20
    assert r["magnitude"]["auc"] >= r["mean"]["auc"]
    assert set(r) == {"magnitude", "mean", "single", "people", "images"}


def test_quality_report_end_to_end_and_grid(tmp_path):
    qs, clean, bad = _synthetic_faces()
    rep = quality_report({"magface": (clean, bad), "arcface": (clean, clean)}, qs, seed=0, draws=3)
    m = rep["magface"]
    assert m["quality_auc"]["all"] > 0.95 and set(m["quality_auc"]) == {"all", *DEGRADATIONS}
    assert m["median_quality"]["clean"] > 30 > m["median_quality"]["blur"]
    s = m["erc_degraded_summary"]
    assert s["fnmr_20"] <= s["fnmr_0"] and np.asarray(m["erc_degraded_random_fnmr"]).shape == (3, 11)
    json.dumps(rep)  # plain numbers, ready for results.json
    path = plot_quality_grid(qs.clean.images, clean.norm(dim=1).numpy(), tmp_path / "quality_grid.png", n=8, columns=4)
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cap_per_person_keeps_the_first_images():
    data = ImageSet(
        torch.zeros(7, 1, 8, 8, dtype=torch.uint8),
        torch.tensor([0, 1, 0, 0, 1, 2, 0]),
        ["a", "b", "c"],
        [str(i) for i in range(7)],
    )
    capped = cap_per_person(data, 2)
    assert capped.paths == ["0", "1", "2", "4", "5"] and capped.labels.tolist() == [0, 1, 0, 1, 2]


# --- MagFace on a few real LFW people ---------------------------------------------------------------
TINY = (
    "--width 0.125 --depth 1 --image-size 20 --input-size 16 -P 4 -K 2 --epochs 1 --steps-per-epoch 3 "
    "--no-progress --threads 1"
).split()


@pytest.fixture(scope="module")
def few_lfw(shared_data, tmp_path_factory):
    """Two people with 5-12 images from each set of people.txt, as symlinks, with View 1 files (DevTrain =
    sets 1-9, DevTest = 6 matched and 6 mismatched pairs of set 0) and View 2 files."""
    lfw = shared_data / "lfw"
    if not lfw.is_dir():
        pytest.skip("LFW not in the shared data")
    root = tmp_path_factory.mktemp("few_lfw")
    (root / "images").mkdir()
    sets = [[(n, c) for n, c in members if 5 <= c <= 12][:2] for members in read_people(lfw / "people.txt").sets]
    pairs = []
    for (a, _), (b, _) in sets:
        pairs.append(
            [f"{a}\t1\t2", f"{a}\t1\t3", f"{a}\t2\t3", f"{b}\t1\t2", f"{b}\t1\t3", f"{b}\t2\t3"]
            + [f"{a}\t{i}\t{b}\t{j}" for i, j in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (4, 4))]
        )
    for members in sets:
        for name, _ in members:
            (root / "images" / name).symlink_to(lfw / "images" / name)
    (root / "people.txt").write_text(
        "\n".join(["10"] + [x for s in sets for x in [str(len(s))] + [f"{n}\t{c}" for n, c in s]]) + "\n"
    )
    (root / "pairs.txt").write_text("10\t6\n" + "\n".join(x for p in pairs for x in p) + "\n")
    dev = [(n, c) for s in sets[1:] for n, c in s]
    (root / "peopleDevTrain.txt").write_text(f"{len(dev)}\n" + "\n".join(f"{n}\t{c}" for n, c in dev) + "\n")
    (root / "pairsDevTest.txt").write_text("6\n" + "\n".join(pairs[0]) + "\n")
    return root


def test_magface_lfw_smoke(few_lfw, tmp_path):
    from facenet_ext.train.recipes import MAGFACE_LFW

    out, cache = tmp_path / "run", str(tmp_path / "cache")
    args = ["train", "--data", str(few_lfw), "--protocol", "view1", "--loss", "magface", "--out", str(out), "--cache"]
    args += [cache, "--min-class-images", "6", *TINY]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    cfg = metrics["config"]
    assert cfg["loss"] == "magface" and cfg["head_margin"] is None  # the MagFace recipe over the LFW one
    assert all(
        cfg[k] == MAGFACE_LFW[k]
        for k in ("mag_l_a", "mag_u_a", "mag_l_m", "mag_u_m", "mag_lambda_g", "degrade", "degrade_kinds")
    )
    assert 0 < len(metrics["data"]["train_identities"]) < 18  # only people with 6+ images are classes
    assert np.isfinite(metrics["history"]["epoch_loss"]).all()
    # eval on any image folder: each image's magnitude in embeddings.npz
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in sorted(p.name for p in (few_lfw / "images").iterdir())[:3]:
        (folder / name).symlink_to(few_lfw / "images" / name)
    args = ["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(folder), "--out", str(tmp_path / "ev")]
    args += ["--cache", cache]
    assert main(args) == 0
    z = np.load(tmp_path / "ev" / "embeddings.npz")
    assert z["magnitude"].shape == (len(z["paths"]),) and len(z["paths"]) >= 15 and (z["magnitude"] > 0).all()
    np.testing.assert_allclose(np.linalg.norm(z["embeddings"], axis=1), 1.0, atol=1e-5)


def test_people_fraction_trains_on_fewer_classes(few_lfw, tmp_path):
    out = tmp_path / "half"
    args = ["train", "--data", str(few_lfw), "--protocol", "view2", "--fold", "0", "--loss", "magface"]
    args += ["--people-fraction", "0.5", "--out", str(out), "--cache", str(tmp_path / "cache"), *TINY]
    assert main(args) == 0
    assert len(json.loads((out / "metrics.json").read_text())["data"]["train_identities"]) == 9  # half of 18
