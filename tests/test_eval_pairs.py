"""LFW pair lists (facenet_ext.eval.lfw_pairs): the real protocol files, write -> read round trips,
generated pairs for any labelled set, and malformed files."""

import numpy as np
import pytest

import facenet_ext.eval as fe

FIELDS = ("name1", "idx1", "name2", "idx2", "issame", "fold")


def assert_same_pairs(a, b):
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


# ---------------------------------------------------------------------------------------------------
# the real files
# ---------------------------------------------------------------------------------------------------
def test_real_pairs_txt(shared_data):
    p = fe.read_pairs(shared_data / "lfw_protocol" / "pairs.txt")
    assert len(p) == 6000 and p.n_folds == 10
    assert p.issame.sum() == 3000
    for f in range(10):
        in_fold = p.fold == f
        assert in_fold.sum() == 600
        # Each fold: 300 matched lines, then 300 mismatched.
        np.testing.assert_array_equal(p.issame[in_fold], np.arange(600) < 300)
    assert (p.name1[0], p.idx1[0], p.idx2[0]) == ("Abel_Pacheco", 1, 4)
    assert (p.name1[-1], p.idx1[-1], p.name2[-1], p.idx2[-1]) == ("Slobodan_Milosevic", 2, "Sok_An", 1)
    assert np.all(p.issame == (p.name1 == p.name2))


@pytest.mark.parametrize("name, n", [("pairsDevTrain.txt", 2200), ("pairsDevTest.txt", 1000)])
def test_real_view1_files(shared_data, name, n):
    p = fe.read_pairs(shared_data / "lfw_protocol" / name)
    assert len(p) == n and p.n_folds == 1
    np.testing.assert_array_equal(p.issame, np.arange(n) < n // 2)


def test_real_pairs_txt_writes_back_byte_for_byte(shared_data, tmp_path):
    src = shared_data / "lfw_protocol" / "pairs.txt"
    fe.write_pairs(fe.read_pairs(src), tmp_path / "pairs.txt")
    assert (tmp_path / "pairs.txt").read_bytes() == src.read_bytes()


def test_real_pairs_to_images(shared_data):
    p = fe.read_pairs(shared_data / "lfw_protocol" / "pairsDevTest.txt")
    images, ip = fe.index_pairs(p)
    assert len(set(images)) == len(images)
    assert [images[k] for k in ip.idx1] == list(zip(p.name1.tolist(), p.idx1.tolist()))
    assert [images[k] for k in ip.idx2] == list(zip(p.name2.tolist(), p.idx2.tolist()))
    np.testing.assert_array_equal(ip.issame, p.issame)
    name, idx = images[0]
    assert fe.image_path("/lfw", name, idx) == fe.image_path("/lfw", "Abdullah_Gul", 13)
    assert str(fe.image_path("/lfw", "Abdullah_Gul", 13)) == "/lfw/Abdullah_Gul/Abdullah_Gul_0013.jpg"


# ---------------------------------------------------------------------------------------------------
# make_pairs and write -> read
# ---------------------------------------------------------------------------------------------------
def check_protocol(p, labels_per_name, n_folds, per_fold):
    assert p.n_folds == n_folds and len(p) == 2 * n_folds * per_fold
    for f in range(n_folds):
        np.testing.assert_array_equal(p.issame[p.fold == f], np.arange(2 * per_fold) < per_fold)
    keys = {tuple(sorted([(a, i), (b, j)])) for a, i, b, j in zip(p.name1, p.idx1, p.name2, p.idx2)}
    assert len(keys) == len(p), "a pair was drawn twice"
    for a, i, b, j in zip(p.name1, p.idx1, p.name2, p.idx2):
        assert 1 <= i <= labels_per_name[a] and 1 <= j <= labels_per_name[b]
    assert not np.any(p.issame & (p.idx1 == p.idx2))


@pytest.mark.parametrize(
    "ids, per, n_folds, per_fold",
    [
        (10, 10, 10, 45),  # ORL held-out: every matched pair is used (enumerated), mismatched ones drawn
        (40, 10, 10, 180),
        (300, 8, 10, 300),  # large: both kinds drawn with rejection
        (3, 2, 3, 1),  # tiny: both kinds enumerated
    ],
)
def test_make_pairs_protocol(fresh_seed, ids, per, n_folds, per_fold):
    labels = np.repeat(np.arange(ids), per)
    p = fe.make_pairs(labels, n_folds=n_folds, seed=fresh_seed)
    check_protocol(p, {str(k): per for k in range(ids)}, n_folds, per_fold)


def test_make_pairs_is_seeded_and_round_trips(fresh_seed, tmp_path):
    labels = np.repeat(np.arange(30), 6)
    p = fe.make_pairs(labels, n_folds=5, pairs_per_fold=40, seed=fresh_seed)
    assert_same_pairs(p, fe.make_pairs(labels, n_folds=5, pairs_per_fold=40, seed=fresh_seed))
    other = fe.make_pairs(labels, n_folds=5, pairs_per_fold=40, seed=fresh_seed + 1)
    assert not np.array_equal(p.idx1, other.idx1)
    fe.write_pairs(p, tmp_path / "pairs.txt")
    assert (tmp_path / "pairs.txt").read_text().splitlines()[0] == "5\t40"
    assert_same_pairs(fe.read_pairs(tmp_path / "pairs.txt"), p)


def test_make_pairs_draws_uniformly():
    # Identity 0 has 4 images (6 matched pairs), identity 1 has 2 (1 pair): over many seeds each of
    # the 7 matched pairs is drawn about equally often, so the large identity gets ~6/7 of them.
    labels = [0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    counts = sum(
        int((fe.make_pairs(labels, n_folds=2, pairs_per_fold=1, seed=s).name1[[0, 2]] == "0").sum()) for s in range(300)
    )
    assert 0.78 < counts / 600 < 0.93  # 6/7 = 0.857, binomial std 0.014


def test_make_pairs_from_an_image_folder(tmp_path):
    for name, n in (("alice", 3), ("bob", 2), ("carol", 4)):
        (tmp_path / name).mkdir()
        for k in range(n):
            (tmp_path / name / f"img{k}.pgm").write_bytes(b"P5")
    (tmp_path / "bob" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    listing = fe.list_image_folder(tmp_path)
    assert {k: len(v) for k, v in listing.items()} == {"alice": 3, "bob": 2, "carol": 4}
    p = fe.make_pairs(listing, n_folds=2, pairs_per_fold=3)
    check_protocol(p, {"alice": 3, "bob": 2, "carol": 4}, 2, 3)
    images, _ = fe.index_pairs(p)
    assert all(listing[name][idx - 1].parent.name == name for name, idx in images)


def test_make_pairs_on_orl(shared_data):
    listing = fe.list_image_folder(shared_data / "orl_faces")
    assert len(listing) == 40 and all(len(v) == 10 for v in listing.values())
    p = fe.make_pairs(listing)
    check_protocol(p, {k: 10 for k in listing}, 10, 180)


@pytest.mark.parametrize(
    "labels, kwargs, msg",
    [
        ([0, 0, 0], {}, "images has 1 identities"),
        ([0, 0, 1, 1], {"n_folds": 2, "pairs_per_fold": 2}, r"need 4 matched and 4 mismatched pairs; the set has 2"),
        ([0, 1, 2, 3], {"n_folds": 2}, "pairs_per_fold must be an int >= 1, got 0"),
        ([0, 0, 1, 1], {"n_folds": 1}, "n_folds must be an int >= 2"),
    ],
)
def test_make_pairs_errors(labels, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        fe.make_pairs(labels, **kwargs)


def test_write_pairs_errors(tmp_path):
    p = fe.make_pairs(np.repeat(np.arange(6), 3), n_folds=2, pairs_per_fold=3)
    unbalanced = fe.Pairs(p.name1, p.idx1, p.name2, p.idx2, p.issame, np.r_[1, p.fold[1:]])
    with pytest.raises(ValueError, match=r"\(matched, mismatched\) per fold: \[\(2, 3\), \(4, 3\)\]"):
        fe.write_pairs(unbalanced, tmp_path / "x.txt")
    spaced = fe.Pairs(np.char.add(p.name1, " x"), p.idx1, np.char.add(p.name2, " x"), p.idx2, p.issame, p.fold)
    with pytest.raises(ValueError, match="holds whitespace"):
        fe.write_pairs(spaced, tmp_path / "x.txt")


# ---------------------------------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------------------------------
GOOD = ["2\t1", "A\t1\t2", "A\t1\tB\t1", "C\t2\t3", "C\t1\tD\t4"]

MALFORMED = [
    ("empty", [], "empty file"),
    ("header words", ["ten folds of 300"], ":1: expected a header"),
    ("header not a number", ["10\tx"], ":1: the number of pairs must be a positive integer, got 'x'"),
    ("header zero", ["0\t300"], ":1: the number of folds must be a positive integer"),
    ("too few lines", GOOD[:-1], "the header promises 2 fold.s. x .1 matched \\+ 1 mismatched. = 4 pair lines, but 3"),
    ("too many lines", GOOD + ["E\t1\t2"], "= 4 pair lines, but 5 follow it"),
    ("mismatched where matched", GOOD[:3] + ["C\t2\tE\t3", GOOD[4]], ":4: expected a matched pair 'name i j'"),
    ("matched where mismatched", GOOD[:2] + ["A\t1\t2", *GOOD[3:]], ":3: expected a mismatched pair"),
    ("not a number", GOOD[:1] + ["A\tone\t2", *GOOD[2:]], ":2: an image number must be a positive integer, got 'one'"),
    ("zero", GOOD[:2] + ["A\t0\tB\t1", *GOOD[3:]], ":3: an image number must be a positive integer, got '0'"),
    ("same image twice", GOOD[:3] + ["C\t2\t2", GOOD[4]], ":4: a matched pair compares image 2 of C with itself"),
    ("one name twice", GOOD[:4] + ["C\t1\tC\t4"], ":5: a mismatched pair names 'C' twice"),
]


@pytest.mark.parametrize("lines, msg", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_files(tmp_path, lines, msg):
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    where = f"{path}{msg}" if msg.startswith(":") else f".*{msg}"
    with pytest.raises(ValueError, match=f"^read_pairs: {where}"):
        fe.read_pairs(path)


def test_good_small_file_and_trailing_blank_lines(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(GOOD) + "\n\n  \n")
    p = fe.read_pairs(path)
    np.testing.assert_array_equal(p.fold, [0, 0, 1, 1])
    np.testing.assert_array_equal(p.issame, [True, False, True, False])
    assert p.name2.tolist() == ["A", "B", "C", "D"] and p.idx2.tolist() == [2, 1, 3, 4]
