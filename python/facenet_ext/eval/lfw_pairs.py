"""LFW-protocol pair lists: read and write ``pairs.txt``, make such lists for any labelled image set,
and map pairs to images.

Two formats, both whitespace-separated (the official files use tabs), image numbers 1-based:

- View 2, ``pairs.txt``: header ``n_folds n`` (``10 300``), then per fold ``n`` matched lines
  ``name i j`` followed by ``n`` mismatched lines ``name1 i name2 j``.
- View 1, ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: header ``n``, then ``n`` matched and ``n``
  mismatched lines; read as one fold (fold 0).

LFW image ``(name, i)`` is ``<root>/<name>/<name>_<i:04d>.jpg`` (:data:`LFW_PATTERN`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_int
from .pairs import IndexPairs, check_n_folds, stratified_folds

LFW_PATTERN = "{name}/{name}_{idx:04d}.jpg"


@dataclass(frozen=True, eq=False)
class Pairs:
    """Pair k compares image ``idx1[k]`` of ``name1[k]`` with image ``idx2[k]`` of ``name2[k]`` (1-based
    image numbers); ``issame[k]`` is ``name1[k] == name2[k]``; ``fold[k]`` is 0-based."""

    name1: np.ndarray
    idx1: np.ndarray
    name2: np.ndarray
    idx2: np.ndarray
    issame: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return int(self.issame.shape[0])

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1 if len(self) else 0


def _pairs(name1, idx1, name2, idx2, fold) -> Pairs:
    n1, n2 = np.asarray(name1, dtype=str), np.asarray(name2, dtype=str)
    return Pairs(
        n1,
        np.asarray(idx1, dtype=np.int64),
        n2,
        np.asarray(idx2, dtype=np.int64),
        n1 == n2,
        np.asarray(fold, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------------
# reading and writing
# ---------------------------------------------------------------------------------------------------
def _positive_int(path: str, lineno: int, what: str, token: str) -> int:
    try:
        value = int(token)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{path}:{lineno}: {what} must be a positive integer, got {token!r}")
    return value


def read_pairs(path: str | os.PathLike) -> Pairs:
    """Parse a View-1 or View-2 pairs file (format in the module doc). Malformed files raise ValueError
    with the file name and line number."""
    where = f"read_pairs: {path}"
    lines = Path(path).read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{where}: empty file")
    header = lines[0].split()
    if len(header) not in (1, 2):
        raise ValueError(
            f"{where}:1: expected a header 'n_folds pairs_per_fold' (View 2) or 'n_pairs' (View 1), got {lines[0]!r}"
        )
    n_folds = _positive_int(where, 1, "the number of folds", header[0]) if len(header) == 2 else 1
    n = _positive_int(where, 1, "the number of pairs", header[-1])
    body = lines[1:]
    if len(body) != 2 * n * n_folds:
        raise ValueError(
            f"{where}: the header promises {n_folds} fold(s) x ({n} matched + {n} mismatched) = "
            f"{2 * n * n_folds} pair lines, but {len(body)} follow it"
        )
    rows = []
    for k, line in enumerate(body):
        lineno, fold, same = k + 2, k // (2 * n), k % (2 * n) < n
        fields = line.split()
        if same and len(fields) != 3:
            raise ValueError(
                f"{where}:{lineno}: expected a matched pair 'name i j' (line {k % (2 * n) + 1} of "
                f"fold {fold}'s {n} matched lines), got {len(fields)} fields: {line!r}"
            )
        if not same and len(fields) != 4:
            raise ValueError(
                f"{where}:{lineno}: expected a mismatched pair 'name1 i name2 j' (fold {fold}'s "
                f"matched lines end after {n}), got {len(fields)} fields: {line!r}"
            )
        name1, name2 = fields[0], fields[0 if same else 2]
        i = _positive_int(where, lineno, "an image number", fields[1])
        j = _positive_int(where, lineno, "an image number", fields[2 if same else 3])
        if same and i == j:
            raise ValueError(f"{where}:{lineno}: a matched pair compares image {i} of {name1} with itself")
        if not same and name1 == name2:
            raise ValueError(f"{where}:{lineno}: a mismatched pair names {name1!r} twice")
        rows.append((name1, i, name2, j, fold))
    return _pairs(*zip(*rows))


def write_pairs(pairs: Pairs, path: str | os.PathLike) -> None:
    """Write ``pairs`` in the View-2 format (``pairs.txt``: header ``n_folds n``, tab-separated), which
    :func:`read_pairs` reads back unchanged. Needs folds 0..K-1, each with the same number n of matched
    and of mismatched pairs; within a fold, the pairs keep their order."""
    fn = "write_pairs"
    if not isinstance(pairs, Pairs):
        raise TypeError(f"{fn}: pairs must be a Pairs, got {type(pairs).__name__}")
    if len(pairs) == 0:
        raise ValueError(f"{fn}: pairs is empty")
    for name in np.unique(np.concatenate([pairs.name1, pairs.name2])):
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"{fn}: name {name!r} is empty or holds whitespace; the format cannot store it")
    if np.any(pairs.issame != (pairs.name1 == pairs.name2)):
        raise ValueError(f"{fn}: pairs.issame disagrees with name1 == name2")
    per_fold = [
        (int(((pairs.fold == f) & pairs.issame).sum()), int(((pairs.fold == f) & ~pairs.issame).sum()))
        for f in range(pairs.n_folds)
    ]
    n = per_fold[0][0]
    if pairs.fold.min() != 0 or n == 0 or any(c != (n, n) for c in per_fold):
        raise ValueError(
            f"{fn}: every fold 0..{pairs.n_folds - 1} needs the same number of matched and mismatched "
            f"pairs; (matched, mismatched) per fold: {per_fold}"
        )
    lines = [f"{pairs.n_folds}\t{n}"]
    for f in range(pairs.n_folds):
        for same in (True, False):
            for k in np.flatnonzero((pairs.fold == f) & (pairs.issame == same)):
                fields = (
                    (pairs.name1[k], pairs.idx1[k], pairs.idx2[k])
                    if same
                    else (pairs.name1[k], pairs.idx1[k], pairs.name2[k], pairs.idx2[k])
                )
                lines.append("\t".join(map(str, fields)))
    Path(path).write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------
# making pairs for any labelled set
# ---------------------------------------------------------------------------------------------------
def _sample_distinct(rng, need: int, total: int, enumerate_all, draw) -> np.ndarray:
    """``need`` distinct item pairs [need, 2] (i < j), uniform among ``total``: enumerated and chosen when
    they are few, else drawn in batches (``draw(size)``) with duplicates rejected."""
    if 2 * need > total:
        everything = enumerate_all()
        return everything[rng.choice(total, need, replace=False)]
    seen: dict[tuple[int, int], None] = {}
    while len(seen) < need:
        for p in draw(2 * (need - len(seen))):
            seen.setdefault((int(p[0]), int(p[1])))
    return np.array(list(seen)[:need], dtype=np.int64).reshape(need, 2)


def make_pairs(
    images: Sequence | Mapping[str, Sequence], *, n_folds: int = 10, pairs_per_fold: int | None = None, seed: int = 0
) -> Pairs:
    """LFW-style balanced pairs for any labelled set: ``n_folds`` folds, each of ``pairs_per_fold``
    matched pairs (two images of one identity) and as many mismatched ones (two identities), all distinct,
    drawn uniformly (seeded).

    ``images``: one identity per image (image numbers 1, 2, ... in order of appearance per identity), or
    a listing ``{identity: [images]}`` such as :func:`facenet_ext.image_folder.list_image_folder`'s.
    ``pairs_per_fold`` defaults to LFW's 300, or fewer when the set has fewer than 300 x n_folds matched
    pairs. Unlike LFW's official folds, identities are not kept apart across folds: with few identities
    they cannot be, and only a threshold is learned on the training folds.
    """
    fn = "make_pairs"
    n_folds = check_n_folds(fn, n_folds)
    if isinstance(images, Mapping):
        labels = [str(name) for name, files in images.items() for _ in files]
    else:
        labels = [str(x) for x in (images.tolist() if hasattr(images, "tolist") else images)]
    names, codes = np.unique(np.array(labels, dtype=str), return_inverse=True)
    if names.size < 2:
        raise ValueError(f"{fn}: images has {names.size} identities; mismatched pairs need at least 2")
    sizes = np.bincount(codes)
    number = np.empty(codes.size, dtype=np.int64)  # 1-based image number within its identity
    for c in range(names.size):
        number[codes == c] = np.arange(1, sizes[c] + 1)
    total_same = int((sizes * (sizes - 1) // 2).sum())
    total_diff = codes.size * (codes.size - 1) // 2 - total_same
    if pairs_per_fold is None:
        pairs_per_fold = min(300, total_same // n_folds)
    if check_int(fn, "pairs_per_fold", pairs_per_fold) < 1:
        raise ValueError(
            f"{fn}: pairs_per_fold must be an int >= 1, got {pairs_per_fold!r} "
            f"(the set has {total_same} matched pairs for {n_folds} folds)"
        )
    need = n_folds * pairs_per_fold
    if need > min(total_same, total_diff):
        raise ValueError(
            f"{fn}: {n_folds} folds x {pairs_per_fold} pairs need {need} matched and {need} mismatched "
            f"pairs; the set has {total_same} matched and {total_diff} mismatched"
        )

    rng = np.random.default_rng(seed)
    by_id = np.argsort(codes, kind="stable")  # identity c's items: by_id[start[c] : start[c] + sizes[c]]
    start = np.r_[0, np.cumsum(sizes)[:-1]]

    def all_same():
        parts = []
        for c in np.flatnonzero(sizes > 1):
            i, j = np.triu_indices(sizes[c], 1)
            parts.append(np.c_[by_id[start[c] + i], by_id[start[c] + j]])
        return np.concatenate(parts)

    def draw_same(size):
        ids = rng.choice(names.size, size, p=sizes * (sizes - 1) / (2 * total_same))
        a = rng.integers(0, sizes[ids])
        b = rng.integers(0, sizes[ids] - 1)
        b += b >= a  # a second, different image of the same identity
        i, j = by_id[start[ids] + a], by_id[start[ids] + b]
        return np.c_[np.minimum(i, j), np.maximum(i, j)]

    def all_diff():
        i, j = np.triu_indices(codes.size, 1)
        keep = codes[i] != codes[j]
        return np.c_[i[keep], j[keep]]

    def draw_diff(size):
        i, j = rng.integers(0, codes.size, (2, size))
        keep = codes[i] != codes[j]
        return np.c_[np.minimum(i, j)[keep], np.maximum(i, j)[keep]]

    same = _sample_distinct(rng, need, total_same, all_same, draw_same)
    diff = _sample_distinct(rng, need, total_diff, all_diff, draw_diff)
    both = np.r_[same, diff]
    fold = stratified_folds(np.r_[np.ones(need, bool), np.zeros(need, bool)], n_folds, rng)
    order = np.lexsort((np.arange(2 * need) >= need, fold))  # by fold, matched first
    i, j = both[order].T
    return _pairs(names[codes[i]], number[i], names[codes[j]], number[j], fold[order])


# ---------------------------------------------------------------------------------------------------
# from pairs to images
# ---------------------------------------------------------------------------------------------------
def image_path(root: str | os.PathLike, name: str, idx: int, pattern: str = LFW_PATTERN) -> Path:
    """The file of image ``idx`` (1-based) of ``name``: ``root / pattern.format(name=name, idx=idx)``;
    LFW's naming by default. For a folder tree with other file names use ``listing[name][idx - 1]``
    with :func:`facenet_ext.image_folder.list_image_folder`."""
    return Path(root) / pattern.format(name=name, idx=idx)


def index_pairs(pairs: Pairs) -> tuple[list[tuple[str, int]], IndexPairs]:
    """The distinct images ``[(name, idx), ...]`` in order of first appearance, and ``pairs`` as
    IndexPairs into that list: embed each image once, then evaluate with
    ``evaluate_embeddings(emb, [name for name, _ in images], pairs=...)``."""
    keys1 = list(zip(pairs.name1.tolist(), pairs.idx1.tolist()))
    keys2 = list(zip(pairs.name2.tolist(), pairs.idx2.tolist()))
    position: dict[tuple[str, int], int] = {}
    for key in (k for pair in zip(keys1, keys2) for k in pair):
        position.setdefault(key, len(position))
    idx1 = np.array([position[k] for k in keys1], dtype=np.int64)
    idx2 = np.array([position[k] for k in keys2], dtype=np.int64)
    return list(position), IndexPairs(idx1, idx2, pairs.issame.copy(), pairs.fold.copy())
