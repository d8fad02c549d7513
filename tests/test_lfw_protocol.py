"""LFW's protocol files read from the real data: counts, folds disjoint by person, every pair resolving
to an image; and the errors for malformed files and missing images."""

import numpy as np
import pytest

from facenet_ext.train.lfw.protocol import check_pairs_resolve, images_dir, is_lfw_root, read_people, view1, view2


@pytest.fixture(scope="module")
def lfw(shared_data):
    root = shared_data / "lfw"
    if not root.is_dir():
        pytest.skip("LFW not in the shared data")
    return root


def test_layout_is_recognised(lfw, shared_data):
    assert is_lfw_root(lfw) and images_dir(lfw) == lfw / "images"
    assert not is_lfw_root(shared_data / "orl_faces")


def test_people_files_count_every_image(lfw):
    sets = read_people(lfw / "people.txt").sets
    assert len(sets) == 10 and [len(s) for s in sets] == [601, 555, 552, 560, 567, 527, 597, 601, 580, 609]
    names = [n for s in sets for n, _ in s]
    assert len(names) == len(set(names)) == 5749  # every person in exactly one set
    assert sum(c for s in sets for _, c in s) == 13233
    listed = dict(line.split() for line in (lfw / "lfw-names.txt").read_text().split("\n") if line.strip())
    assert {n: c for s in sets for n, c in s} == {n: int(c) for n, c in listed.items()}
    folders = {d.name: len(list(d.glob("*.jpg"))) for d in images_dir(lfw).iterdir()}
    assert folders == {n: int(c) for n, c in listed.items()}


def test_view1_people_and_pairs(lfw):
    train = read_people(lfw / "peopleDevTrain.txt").sets[0]
    test = read_people(lfw / "peopleDevTest.txt").sets[0]
    assert (len(train), len(test)) == (4038, 1711)
    assert not {n for n, _ in train} & {n for n, _ in test}
    assert sum(c for _, c in train) == 9525 and sum(1 for _, c in train if c >= 2) == 1184
    split = view1(lfw)
    pairs = split.test_pairs
    assert len(pairs) == 1000 and pairs.issame.sum() == 500
    assert set(pairs.name1) | set(pairs.name2) <= {n for n, _ in test}  # DevTest pairs use DevTest people only
    check_pairs_resolve(split, lfw)


def test_view2_folds_are_disjoint_by_person_and_resolve(lfw):
    sets = [{n for n, _ in s} for s in read_people(lfw / "people.txt").sets]
    for k in range(10):
        split = view2(lfw, k)
        p = split.test_pairs
        assert len(p) == 600 and p.issame.sum() == 300
        in_pairs = set(p.name1) | set(p.name2)
        assert in_pairs <= sets[k]  # a fold's pairs use only its own set's people ...
        assert not in_pairs & set(split.train_people)  # ... none of whom trains that fold's model
        assert len(split.train_people) == 5749 - len(sets[k])
        check_pairs_resolve(split, lfw)
        assert split.pairs_first_line == 2 + 600 * k


def test_malformed_people_file_names_file_and_line(tmp_path):
    bad = tmp_path / "people.txt"
    bad.write_text("2\n1\nAlice\t3\n2\nBob\t1\nCarol x\n")
    with pytest.raises(ValueError, match=r"people.txt:6: expected 'name number_of_images'"):
        read_people(bad)
    bad.write_text("3\nAlice\t2\nBob\t1\n")
    with pytest.raises(ValueError, match="promises 3 people"):
        read_people(bad)


def test_pairs_naming_a_missing_image_is_reported_with_its_line(tmp_path):
    root = tmp_path / "lfw"
    for name, n in (("Alice", 2), ("Bob", 1)):
        (root / "images" / name).mkdir(parents=True)
        for i in range(1, n + 1):
            (root / "images" / name / f"{name}_{i:04d}.jpg").write_bytes(b"")
    (root / "peopleDevTrain.txt").write_text("1\nBob\t1\n")
    (root / "pairsDevTest.txt").write_text("1\nAlice\t1\t2\nAlice\t1\tBob\t2\n")
    split = view1(root)
    with pytest.raises(ValueError, match=r"pairsDevTest.txt:3: image 2 of Bob .* does not exist"):
        check_pairs_resolve(split, root)
    assert np.array_equal(split.test_pairs.issame, [True, False])
