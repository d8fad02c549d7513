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

# Names this package exported before its surface was cut to __all__, and the submodule that holds each:
# still reachable here, with a DeprecationWarning saying where they live now.
_MOVED = {
    **dict.fromkeys(
        (
            "KFold",
            "OperatingPoint",
            "Roc",
            "auc",
            "best_accuracy_threshold",
            "eer",
            "kfold_accuracy",
            "roc",
            "val_at_far",
            "val_at_far_kfold",
            "val_far",
        ),
        "verification",
    ),
    **dict.fromkeys(("all_pairs", "check_index_pairs", "pair_sq_dist"), "pairs"),
    **dict.fromkeys(("gallery_probe_split", "identification_accuracy", "rank_accuracy"), "identification"),
    **dict.fromkeys(
        (
            "DEFAULT_CLUSTER_THRESHOLD",
            "LINKAGES",
            "PairScores",
            "best_f1_threshold",
            "cluster",
            "clustering_scores",
            "cut_into",
            "f1_sweep",
            "pairwise_scores",
        ),
        "clustering",
    ),
    "LFW_PATTERN": "lfw_pairs",
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    module = f"{__name__}.{_MOVED[name]}"
    warnings.warn(f"facenet_ext.eval.{name} moved to {module}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)
