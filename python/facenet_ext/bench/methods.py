"""What the benchmark times: our ops, the baselines, and ``torch.cdist`` as the floor.

Each :class:`Method` turns (embeddings, labels) into a closure that runs the method once and returns its
triplet count (an int or a 0-d tensor, read after timing so that timing never waits on it; None for
the distance floor). Loss methods
run forward and backward from a fresh leaf each call. ``counterpart`` names our method doing the same job
(the speed-up a baseline row reports); ``cost`` is the work model used to extrapolate a method's time and
memory from a smaller batch before running it (``runner.estimate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import facenet_ext as fx

from . import baselines as bl
from .workload import Workload

MARGIN = 0.2
Run = Callable[[], "int | Tensor | None"]


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    family: str  # "ours" | "baseline" | "floor"
    job: str
    make: Callable[[Tensor, Tensor], Run]
    cost: Callable[[Workload], float]
    counterpart: str | None = None
    host_only: bool = False  # runs in NumPy on the host whatever the device
    note: str = ""  # how its rule differs from its counterpart's

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        if self.key.startswith("pml."):
            try:
                import pytorch_metric_learning  # noqa: F401
            except ImportError:
                return "pytorch-metric-learning not installed (pip install pytorch-metric-learning)"
        return None


# --- cost models (units only matter as ratios between batch sizes of one method) --------------------
def _b2(w: Workload) -> float:
    return float(w.batch) ** 2 * w.dim


def _b2_log_b(w: Workload) -> float:
    return float(w.batch) ** 2 * (w.dim + math.log2(w.batch))


def _b3(w: Workload) -> float:
    return float(w.batch) ** 3


def _pairs_times_b(w: Workload) -> float:
    return float(w.pair_counts()[0]) * w.batch


def _all_triplets(w: Workload) -> float:
    return float(max(w.pair_counts()[1], 1)) + _b2(w)


# --- closures ----------------------------------------------------------------------------------------
def _mine(fn: Callable[[Tensor, Tensor], tuple]) -> Callable[[Tensor, Tensor], Run]:
    def make(emb, labels):
        return lambda: fn(emb, labels)[0].numel()

    return make


def _fwd_bwd(fn: Callable[[Tensor, Tensor], tuple]) -> Callable[[Tensor, Tensor], Run]:
    """fn(leaf, labels) -> (loss, triplet count); the closure adds the backward pass."""

    def make(emb, labels):
        def run():
            leaf = emb.detach().requires_grad_()
            loss, count = fn(leaf, labels)
            loss.backward()
            return count

        return run

    return make


def _fx_loss(mining: str, **kw):
    def fn(e, labels):
        loss, stats = fx.triplet_loss(e, labels, MARGIN, mining=mining, return_stats=True, **kw)
        return loss, stats["num_triplets"]

    return fn


def _pml_pipeline(miner_factory):
    def make(emb, labels):
        miner, loss_fn = miner_factory(), bl.pml_triplet_loss(MARGIN)

        def fn(e, lab):
            idx = miner(e, lab)
            return loss_fn(e, lab, idx), idx[0].numel()

        return _fwd_bwd(fn)(emb, labels)

    return make


def _cdist(emb, labels):
    def run():
        torch.cdist(emb, emb)

    return run


def _pml_mine(emb, labels):
    miner = bl.pml_semihard_miner(MARGIN)
    return lambda: miner(emb, labels)[0].numel()


def _tf_addons(emb, labels):
    pairs = int((labels[:, None] == labels[None, :]).sum()) - labels.numel()
    return _fwd_bwd(lambda e, lab: (bl.tf_addons_semihard_loss(e, lab, MARGIN, squared=True), pairs))(emb, labels)


def _sort_loss(e, labels):
    t = bl.sort_searchsorted_semi_hard(e, labels)
    return bl.torch_triplet_loss(e, t, MARGIN), t[0].numel()


METHODS: list[Method] = [
    Method("cdist", "torch.cdist(x, x)", "floor", "distances only", _cdist, _b2),
    # ours
    Method("fx.semihard", "fx.semi_hard_triplets", "ours", "semi-hard mining", _mine(fx.semi_hard_triplets), _b2),
    Method("fx.batch_hard", "fx.batch_hard_triplets", "ours", "batch-hard mining", _mine(fx.batch_hard_triplets), _b2),
    Method(
        "fx.all_semihard",
        "fx.all_semi_hard_triplets",
        "ours",
        "all semi-hard triplets",
        _mine(lambda e, lab: fx.all_semi_hard_triplets(e, lab, MARGIN)),
        _all_triplets,
    ),
    Method(
        "fx.loss.semihard",
        "fx.triplet_loss semihard fwd+bwd",
        "ours",
        "semi-hard loss",
        _fwd_bwd(_fx_loss("semihard")),
        _b2,
    ),
    Method(
        "fx.loss.all_semihard",
        "fx.triplet_loss all_semihard fwd+bwd",
        "ours",
        "all-semi-hard loss",
        _fwd_bwd(_fx_loss("all_semihard", squared=False, reduction="mean_active")),
        _all_triplets,
    ),
    Method(
        "fx.loss.batch_hard",
        "fx.triplet_loss batch_hard fwd+bwd",
        "ours",
        "batch-hard loss",
        _fwd_bwd(_fx_loss("batch_hard", squared=False, reduction="mean_active")),
        _b2,
    ),
    # baselines
    Method(
        "facenet_loop",
        "per-pair Python loop (FaceNet re-impl.)",
        "baseline",
        "semi-hard mining",
        _mine(lambda e, lab: bl.facenet_loop(e, lab, MARGIN)),
        _pairs_times_b,
        counterpart="fx.semihard",
        note="pairs a < p only (half of ours); a random negative in D_ap < D_an < D_ap + 0.2 (squared), pairs with "
        "an empty window dropped; ours takes the closest negative farther than the positive, for every ordered "
        "pair, else the farthest",
        host_only=True,
    ),
    Method(
        "siamese_loop",
        "per-label Python loop (siamese-triplet)",
        "baseline",
        "semi-hard mining",
        _mine(lambda e, lab: bl.siamese_triplet_loop(e, lab, MARGIN)),
        _pairs_times_b,
        counterpart="fx.semihard",
        note="as the FaceNet loop (same window, random negative, pairs a < p), distance matrix computed once",
        host_only=True,
    ),
    Method(
        "sort_searchsorted",
        "sort + searchsorted (PyTorch)",
        "baseline",
        "semi-hard mining",
        _mine(bl.sort_searchsorted_semi_hard),
        _b2_log_b,
        counterpart="fx.semihard",
        note="our exact rule (identical triplets), O(B^2 log B)",
    ),
    Method(
        "pml.semihard",
        "PML TripletMarginMiner(semihard)",
        "baseline",
        "all semi-hard triplets",
        _pml_mine,
        _all_triplets,
        counterpart="fx.all_semihard",
        note="every triplet with 0 < D_an - D_ap <= 0.2 on plain distances of normalised embeddings: the rule of "
        "fx.all_semi_hard_triplets; in float32 a few triplets within rounding of the window edges differ (its cdist "
        "vs our Gram expansion)",
    ),
    Method(
        "tf_addons",
        "TF-Addons semihard loss port fwd+bwd",
        "baseline",
        "semi-hard loss",
        _tf_addons,
        _b3,
        counterpart="fx.loss.semihard",
        note="our rule and loss (squared-L2 here); Theta(B^3) memory from its tiled masks",
    ),
    Method(
        "sort_searchsorted.loss",
        "sort + searchsorted + loss fwd+bwd",
        "baseline",
        "semi-hard loss",
        _fwd_bwd(_sort_loss),
        _b2_log_b,
        counterpart="fx.loss.semihard",
        note="our rule and loss by plain autograd",
    ),
    Method(
        "pml.semihard.loss",
        "PML semihard miner + TripletMarginLoss fwd+bwd",
        "baseline",
        "all-semi-hard loss",
        _pml_pipeline(lambda: bl.pml_semihard_miner(MARGIN)),
        _all_triplets,
        counterpart="fx.loss.all_semihard",
        note="loss averaged over non-zero terms (our mean_active); its gradient passes through its L2 normalisation",
    ),
    Method(
        "pml.batch_hard.loss",
        "PML BatchHardMiner + TripletMarginLoss fwd+bwd",
        "baseline",
        "batch-hard loss",
        _pml_pipeline(bl.pml_batch_hard_miner),
        _b2,
        counterpart="fx.loss.batch_hard",
        note="loss averaged over non-zero terms (our mean_active); its gradient passes through its L2 normalisation",
    ),
]
BY_KEY = {m.key: m for m in METHODS}

# Ratios beyond "each baseline vs the op doing the same job": the pairs the project's speed targets name.
EXTRA_COMPARISONS: list[tuple[str, str]] = [
    ("fx.semihard", "cdist"),  # mining incl. distances, as a multiple of cdist alone (target <= 2x)
    ("fx.loss.semihard", "facenet_loop"),  # target >= 1000x
    ("fx.loss.semihard", "pml.semihard.loss"),  # target >= 200x
    ("fx.loss.semihard", "sort_searchsorted.loss"),  # target >= 20x
]


def comparisons() -> list[tuple[str, str]]:
    """(ours, other) pairs; the speed-up is time(other) / time(ours)."""
    pairs = [(m.counterpart, m.key) for m in METHODS if m.counterpart]
    return pairs + [c for c in EXTRA_COMPARISONS if c not in pairs]
