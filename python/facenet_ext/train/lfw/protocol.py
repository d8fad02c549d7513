"""LFW's protocol files (the LFW README, section 3): which people train and which pairs test, per View.

A folder is an *LFW root* when it holds ``pairs.txt``, ``people.txt`` and the images, either under
``images/`` (this project's layout) or directly as ``<Name>/<Name>_NNNN.jpg``. Anything else is a plain
image folder (``ROOT/<identity>/<image>``) and is trained on as before.

- View 1 (development): train on the people of ``peopleDevTrain.txt``, test on the 1000 pairs of
  ``pairsDevTest.txt``. Its people are disjoint from DevTest's.
- View 2 (reporting, "unrestricted"): ``people.txt`` splits the people into 10 sets; fold k trains on
  the people of the other nine sets and tests on fold k's 600 pairs of ``pairs.txt``.

People files: a header (View 1: ``N``; View 2: the number of sets, then before each set its number of
people), then ``name count`` lines. Malformed files and pairs naming a missing image raise ValueError
with the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..._checks import check_choice
from ...eval.lfw_pairs import Pairs, image_path, read_pairs
from ..config import PROTOCOLS

PROTOCOL_FILES = ("pairs.txt", "people.txt")
VIEW1_FILES = ("peopleDevTrain.txt", "pairsDevTest.txt")
VIEW2_FOLDS = 10


@dataclass(frozen=True)
class People:
    """``sets[s]`` lists ``(name, number of images)`` of the people in set s (View 1 files: one set)."""

    sets: list[list[tuple[str, int]]]
    path: str

    def names(self, sets: list[int] | None = None) -> list[str]:
        chosen = range(len(self.sets)) if sets is None else sets
        return [name for s in chosen for name, _ in self.sets[s]]


def is_lfw_root(root: str | Path) -> bool:
    """True when ``root`` holds LFW's View 2 protocol files and an image folder."""
    root = Path(root).expanduser()
    return (
        root.is_dir()
        and all((root / f).is_file() for f in PROTOCOL_FILES)
        and any(d.is_dir() for d in images_dir(root).iterdir())
    )


def images_dir(root: str | Path) -> Path:
    """Where the person folders are: ``root/images`` if it exists, else ``root`` itself."""
    root = Path(root)
    return root / "images" if (root / "images").is_dir() else root


def read_people(path: str | Path) -> People:
    """Parse ``people.txt`` (View 2: several sets) or ``peopleDevTrain.txt`` / ``peopleDevTest.txt``
    (View 1: one set); see the module doc."""
    where = str(path)
    lines = [line for line in Path(path).read_text().splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{where}: empty file")

    def number(lineno: int, what: str) -> int:
        token = lines[lineno - 1].strip()
        if not token.isdigit() or int(token) < 1:
            raise ValueError(f"{where}:{lineno}: expected {what} (a positive integer), got {lines[lineno - 1]!r}")
        return int(token)

    first = number(1, "a header")
    # View 2 files have a second header line (the first set's size); View 1 files go straight to names.
    multi = len(lines) > 1 and lines[1].strip().isdigit()
    n_sets, lineno = (first, 2) if multi else (1, 1)
    sets = []
    for s in range(n_sets):
        if multi:
            if lineno > len(lines):
                raise ValueError(f"{where}: the header promises {n_sets} sets but the file ends after {s}")
            count = number(lineno, f"the number of people in set {s + 1}")
        else:
            count = first
        members = []
        for k in range(count):
            lineno += 1
            if lineno > len(lines):
                raise ValueError(f"{where}: set {s + 1} promises {count} people but the file ends after {k}")
            fields = lines[lineno - 1].split()
            if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) < 1:
                raise ValueError(f"{where}:{lineno}: expected 'name number_of_images', got {lines[lineno - 1]!r}")
            members.append((fields[0], int(fields[1])))
        sets.append(members)
        lineno += 1
    if lineno <= len(lines):
        raise ValueError(f"{where}:{lineno}: unexpected line after the last set: {lines[lineno - 1]!r}")
    return People(sets, where)


@dataclass(frozen=True)
class Split:
    """One train/test split of a protocol: the people to train on and the pairs to test on."""

    name: str  # "view1" or "view2-fold<k>"
    train_people: list[str]
    test_pairs: Pairs
    pairs_file: str
    pairs_first_line: int  # file line of test_pairs[0] (for error messages)


def view1(root: str | Path) -> Split:
    root = Path(root)
    missing = [f for f in VIEW1_FILES if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: View 1 needs {', '.join(VIEW1_FILES)}; missing {', '.join(missing)}")
    pairs_file = root / "pairsDevTest.txt"
    return Split("view1", read_people(root / "peopleDevTrain.txt").names(), read_pairs(pairs_file), str(pairs_file), 2)


def view2(root: str | Path, fold: int) -> Split:
    """Fold ``fold`` (0-based) of View 2: train on the other nine sets of people.txt, test on this
    fold's pairs of pairs.txt."""
    root = Path(root)
    people = read_people(root / "people.txt")
    pairs_file = root / "pairs.txt"
    pairs = read_pairs(pairs_file)
    if len(people.sets) != pairs.n_folds:
        raise ValueError(f"{people.path} has {len(people.sets)} sets but {pairs_file} has {pairs.n_folds} folds")
    if not 0 <= fold < pairs.n_folds:
        raise ValueError(f"fold must be in 0..{pairs.n_folds - 1}, got {fold}")
    keep = pairs.fold == fold
    test = Pairs(*(getattr(pairs, f)[keep] for f in ("name1", "idx1", "name2", "idx2", "issame", "fold")))
    first = 2 + int(keep.argmax())
    train = people.names([s for s in range(len(people.sets)) if s != fold])
    return Split(f"view2-fold{fold}", train, test, str(pairs_file), first)


def split_for(root: str | Path, protocol: str, fold: int | None = None) -> Split:
    check_choice("split_for", "protocol", protocol, PROTOCOLS)
    if protocol == "view1":
        return view1(root)
    if protocol == "view2":
        if fold is None:
            raise ValueError("protocol view2 needs a fold (0..9)")
        return view2(root, fold)
    raise AssertionError(f"split_for: no split for protocol {protocol!r}")  # PROTOCOLS lists only the two above


def check_pairs_resolve(split: Split, root: str | Path) -> None:
    """Every image the test pairs name exists; the first missing one is reported with its file:line."""
    base = images_dir(root)
    p = split.test_pairs
    for k in range(len(p)):
        for name, idx in ((p.name1[k], p.idx1[k]), (p.name2[k], p.idx2[k])):
            path = image_path(base, str(name), int(idx))
            if not path.is_file():
                raise ValueError(
                    f"{split.pairs_file}:{split.pairs_first_line + k}: image {idx} of {name} ({path}) does not exist"
                )
