"""Evaluation of face embeddings (FaceNet §4): verification (VAL/FAR, ROC, AUC, EER, LFW 10-fold
accuracy), identification (rank-k) and clustering (pairwise F-score, NMI), for any model's embeddings.

>>> import numpy as np, facenet_ext.eval as fe
>>> emb, labels = np.random.randn(100, 128), np.repeat(np.arange(10), 10)
>>> metrics = fe.evaluate_embeddings(emb, labels)     # dict of plain floats
>>> far, val = fe.roc_curve_points(emb, labels)
>>> fe.plot_roc({"my model": (far, val)}, "roc.png")  # doctest: +SKIP

Here: the metrics, the ROC and its plot, and LFW-style pair lists (read, write, make, map to images). Each
metric on its own is in its module: :mod:`.verification` (``roc``, ``auc``, ``eer``, ``threshold_at_far``,
``val_at_far``, ``val_at_far_kfold``, ``kfold_accuracy`` on pair distances), :mod:`.pairs` (``all_pairs``,
``pair_sq_dist``), :mod:`.identification` and :mod:`.clustering`.

Needs scikit-learn (the ``train`` and ``test`` extras); ``plot_roc`` needs matplotlib.
"""

from ..image_folder import list_image_folder
from .lfw_pairs import Pairs, image_path, index_pairs, make_pairs, read_pairs, write_pairs
from .metrics import METRIC_KEYS, evaluate_embeddings, roc_curve_points
from .pairs import IndexPairs
from .plots import plot_roc

__all__ = [
    "evaluate_embeddings",
    "roc_curve_points",
    "plot_roc",
    "METRIC_KEYS",
    # pair lists (LFW's, or drawn for any labelled image folder)
    "read_pairs",
    "write_pairs",
    "make_pairs",
    "index_pairs",
    "image_path",
    "list_image_folder",
    "Pairs",
    "IndexPairs",
]
