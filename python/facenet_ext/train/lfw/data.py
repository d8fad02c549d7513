"""The image sets of one LFW protocol split: the training people's images and the test pairs' images,
from the decoded-image cache (:mod:`facenet_ext.train.data.face_cache`), with the pairs as row indices for evaluation.

People with a single image stay in the training set: the P x K sampler draws anchors only from people
with two or more images and can add single-image people to a batch as negatives (``--singletons``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...eval import IndexPairs, image_path, index_pairs
from ...eval.pairs import stratified_folds
from ..data.face_cache import CachedFaces, Preprocess, load_cached_faces
from ..data.images import ImageSet
from .protocol import Split, check_pairs_resolve, images_dir, split_for

EVAL_FOLDS = 10


@dataclass
class ProtocolData:
    split: Split
    train_set: ImageSet  # every image of the training people
    test_set: ImageSet  # the distinct images of the test pairs, in index_pairs order
    pairs: IndexPairs  # the test pairs as rows of test_set, with EVAL_FOLDS stratified folds
    faces: CachedFaces


def all_faces(faces: CachedFaces) -> ImageSet:
    """Every cached image as one ImageSet (identities in folder order)."""
    names = list(dict.fromkeys(faces.identities))
    index = {n: i for i, n in enumerate(names)}
    labels = torch.tensor([index[n] for n in faces.identities], dtype=torch.int64)
    return ImageSet(torch.from_numpy(faces.images), labels, names, list(faces.paths), list(faces.skipped))


def load_protocol(
    root: str | Path,
    protocol: str,
    fold: int | None,
    prep: Preprocess,
    *,
    cache_dir=None,
    workers: int = 2,
    progress: bool = True,
    seed: int = 0,
) -> ProtocolData:
    """The training and test sets of ``protocol`` ("view1", or "view2" with ``fold``) of the LFW root.

    The test pairs form one fold in the files (View 1's DevTest, one fold of View 2); their 10-fold
    accuracy is computed over ``EVAL_FOLDS`` stratified folds of them (seeded), the threshold picked
    on nine and applied to the tenth, as LFW prescribes for its own ten folds."""
    split = split_for(root, protocol, fold)
    check_pairs_resolve(split, root)
    faces = load_cached_faces(images_dir(root), prep, cache_dir, workers=workers, progress=progress)
    data = all_faces(faces)

    present = set(data.identities)
    missing = [n for n in split.train_people if n not in present]
    if missing:
        raise ValueError(
            f"{len(missing)} training people of {split.name} have no readable image under "
            f"{images_dir(root)}: {missing[:5]}"
        )
    train_set = data.select_identities(split.train_people)
    train_set.skipped = list(faces.skipped)  # reported in metrics.json with the training data

    needed, ipairs = index_pairs(split.test_pairs)
    row_of = {p: r for r, p in enumerate(data.paths)}
    base = images_dir(Path(root).expanduser().resolve())
    rows = []
    for name, idx in needed:
        row = row_of.get(str(image_path(base, name, idx)))
        if row is None:  # it exists (check_pairs_resolve) but could not be decoded
            raise ValueError(f"{split.pairs_file}: image {idx} of {name} could not be decoded (see the skipped files)")
        rows.append(row)
    names = list(dict.fromkeys(name for name, _ in needed))
    code = {n: i for i, n in enumerate(names)}
    test_set = ImageSet(
        data.images[rows],
        torch.tensor([code[n] for n, _ in needed], dtype=torch.int64),
        names,
        [data.paths[r] for r in rows],
    )
    folds = stratified_folds(ipairs.issame, EVAL_FOLDS, np.random.default_rng(seed))
    pairs = IndexPairs(ipairs.idx1, ipairs.idx2, ipairs.issame, folds)
    return ProtocolData(split, train_set, test_set, pairs, faces)
