"""PML's miners with our fused ops underneath: same class names, arguments, ``indices_tuple`` and
bookkeeping (each class subclasses PML's own, so ``forward``, ``num_triplets``, ``collect_stats`` and the
``ref_emb``/``ref_labels`` handling are PML's code)."""

from __future__ import annotations

from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.miners import BaseMiner
from torch import Tensor

from .._checks import check_choice, check_margin
from ..distances import pairwise_sq_dist
from ..miners import mine
from ..mining import MINING
from ._inputs import Batch, check_batch
from .distance import Metric, resolve
from .window import window_triplets

Triplets = tuple[Tensor, Tensor, Tensor]

_TYPES = ("all", "hard", "semihard", "easy")


def _native(owner: str, kind: str, metric: Metric, b: Batch, margin: float | None, drop: bool = False) -> Triplets:
    """One of our miners (``kind`` in ``facenet_ext.mining.MINING``) on PML's inputs: the fused op on a
    plain batch, the reference-set path otherwise. ``margin`` in PML's units."""
    x = metric.rows(b.emb)
    m = None if margin is None else margin * metric.scale
    if b.plain:
        return mine(owner, kind, x, b.labels, m, metric.squared, drop)
    r = metric.rows(b.ref_emb)
    if b.exclude_self:  # ref_labels is labels but ref_emb is another tensor: PML drops (i, i) all the same
        d = pairwise_sq_dist(x, r)
        return MINING[kind].from_sq_dist(d, b.labels, b.ref_labels, True, m, metric.squared, drop)
    return mine(owner, kind, x, b.labels, m, metric.squared, drop, ref_emb=r, ref_labels=b.ref_labels)


def _rows(metric: Metric, b: Batch) -> tuple[Tensor, Tensor | None]:
    x = metric.rows(b.emb)
    return x, (None if b.plain else metric.rows(b.ref_emb))


class TripletMarginMiner(pml_miners.TripletMarginMiner):
    """PML's ``TripletMarginMiner``: every triplet with d_an - d_ap in a window of ``margin`` (similarities:
    s_ap - s_an), without PML's B x N x N triplet tensor.

    * ``type_of_triplets="semihard"``: 0 < d_an - d_ap <= margin, our fused
      :func:`facenet_ext.all_semi_hard_triplets` (not :func:`facenet_ext.semi_hard_triplets`, which is
      FaceNet's one-negative-per-pair rule: see :class:`FaceNetPerPairSemiHardMiner`);
    * ``"hard"``: d_an - d_ap <= 0; ``"all"`` (PML's default): d_an - d_ap <= margin; ``"easy"``:
      d_an - d_ap > margin. These list the triplets from per-anchor sorted negative distances
      (:mod:`facenet_ext.pml.window`): O(B·N) memory besides the output.

    ``distance``: ``LpDistance(p=2, power=1 or 2, normalize_embeddings=...)`` (PML's default is
    ``LpDistance()``, which normalises) or ``CosineSimilarity()``; any other raises ``ValueError``.
    ``margin`` must be finite and >= 0. Returns PML's ``(anchors, positives, negatives)``, int64, sorted
    as PML sorts them. With ``collect_stats=True`` the statistics ``pos_pair_dist``, ``neg_pair_dist`` and
    ``avg_triplet_margin`` (means over every triplet, as PML's) are computed in O(B·N).
    """

    def __init__(self, margin=0.2, type_of_triplets="all", **kwargs):
        super().__init__(margin=margin, type_of_triplets=type_of_triplets, **kwargs)
        check_choice("TripletMarginMiner", "type_of_triplets", type_of_triplets, _TYPES)
        check_margin("TripletMarginMiner", margin)
        resolve("TripletMarginMiner", self.distance)

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        owner = "TripletMarginMiner"
        metric = resolve(owner, self.distance)
        b = check_batch(owner, embeddings, labels, ref_emb, ref_labels)
        check_choice(owner, "type_of_triplets", self.type_of_triplets, _TYPES)
        margin = check_margin(owner, self.margin, dtype=b.emb.dtype)
        if self.collect_stats:
            self._set_window_stats(metric, b)
        if self.type_of_triplets == "semihard":
            return _native(owner, "all_semihard", metric, b, margin)
        low, high = {"all": (None, margin), "hard": (None, 0.0), "easy": (margin, None)}[self.type_of_triplets]
        x, r = _rows(metric, b)
        return window_triplets(metric.farness(x, r), b.labels, b.ref_labels, b.exclude_self, low, high)

    def _set_window_stats(self, metric: Metric, b: Batch) -> None:
        """PML's means over every triplet, from pair sums: a pair (a, p) enters the mean d_ap once per
        negative of a, a pair (a, n) enters the mean d_an once per positive of a."""
        x, r = _rows(metric, b)
        mat = metric.farness(x, r).double()
        if metric.cosine:
            mat = -mat
        same = b.labels.unsqueeze(1) == b.ref_labels.unsqueeze(0)
        pos = same.clone()
        if b.exclude_self:
            pos.fill_diagonal_(False)
        n_pos, n_neg = pos.sum(1).double(), (~same).sum(1).double()
        total = (n_pos * n_neg).sum()
        ap = ((mat * pos).sum(1) * n_neg).sum() / total
        an = ((mat * ~same).sum(1) * n_pos).sum() / total
        self.pos_pair_dist, self.neg_pair_dist = ap.item(), an.item()
        self.avg_triplet_margin = (ap - an if metric.cosine else an - ap).item()


class BatchHardMiner(pml_miners.BatchHardMiner):
    """PML's ``BatchHardMiner``: per anchor with a positive and a negative, the farthest positive and the
    closest negative (ties to the smallest index), by our fused :func:`facenet_ext.batch_hard_triplets`.
    Same distances as :class:`TripletMarginMiner`; ``allowed_pos_range``/``allowed_neg_range`` are not
    supported (``ValueError``). With ``collect_stats=True`` PML's own ``set_stats`` records the hardest
    and easiest pairs."""

    def __init__(self, **kwargs):
        for name in ("allowed_pos_range", "allowed_neg_range"):
            if kwargs.get(name) is not None:
                raise ValueError(f"BatchHardMiner: {name} is not supported by facenet_ext.pml; leave it None")
        super().__init__(**kwargs)
        resolve("BatchHardMiner", self.distance)

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        owner = "BatchHardMiner"
        metric = resolve(owner, self.distance)
        b = check_batch(owner, embeddings, labels, ref_emb, ref_labels)
        a, p, n = _native(owner, "batch_hard", metric, b, None)
        if self.collect_stats:
            x, r = _rows(metric, b)
            r = x if r is None else r
            self.set_stats(metric.pair_values(x, r, a, p), metric.pair_values(x, r, a, n))
        return a, p, n


class FaceNetPerPairSemiHardMiner(BaseMiner):
    """FaceNet's semi-hard rule (Schroff et al. 2015, eq. 4), which PML does not have: ONE triplet per
    anchor-positive pair, the negative being the closest one farther than the positive
    (:func:`facenet_ext.semi_hard_triplets`). This is not PML's ``type_of_triplets="semihard"``, which
    keeps every negative in the window (:class:`TripletMarginMiner`).

    ``margin``: ``None`` keeps every pair's triplet; a number keeps those with d_an < d_ap + margin (the
    ones with a non-zero loss), in the distance's units. ``fallback``: when no negative is farther than
    the positive, ``"easiest"`` takes the farthest negative (TF-Addons' rule), ``"drop"`` drops the pair.
    ``distance`` as for :class:`TripletMarginMiner`.
    """

    def __init__(self, margin=None, fallback="easiest", **kwargs):
        super().__init__(**kwargs)
        check_margin("FaceNetPerPairSemiHardMiner", margin, allow_none=True)
        check_choice("FaceNetPerPairSemiHardMiner", "fallback", fallback, ("easiest", "drop"))
        self.margin, self.fallback = margin, fallback
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)
        resolve("FaceNetPerPairSemiHardMiner", self.distance)

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        owner = "FaceNetPerPairSemiHardMiner"
        metric = resolve(owner, self.distance)
        b = check_batch(owner, embeddings, labels, ref_emb, ref_labels)
        margin = check_margin(owner, self.margin, allow_none=True, dtype=b.emb.dtype)
        return _native(owner, "semihard", metric, b, margin, drop=self.fallback == "drop")


__all__ = ["TripletMarginMiner", "BatchHardMiner", "FaceNetPerPairSemiHardMiner"]
