"""Before a baseline is timed, check that it computes what we claim it computes, against our ops.

Where the rules coincide we require the same triplets (as sets: orders differ) or the same loss and
gradient. Where they differ by design (random negatives), we check everything the rules share. The
checks run in float64 on a small batch, where rounding cannot flip a comparison, and, for the exact
rule, also on small-integer embeddings where distances tie everywhere and only the tie-breaking decides.
The same functions back ``tests/test_bench_baselines.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

import facenet_ext as fx

from . import baselines as bl
from .methods import MARGIN
from .workload import Workload


@dataclass
class Agreement:
    method: str
    ok: bool
    verdict: str  # "same triplets" | "same loss" | "same pairs, random negatives" | "DIFFERS"
    detail: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def small_batch(device: str = "cpu") -> tuple[Tensor, Tensor]:
    """12 identities x 8 images, 16-d, float64: distances overlap across identities at this width."""
    return Workload(batch=96, dim=16, per_id=8, seed=1, dtype="float64", device=device).make()


def integer_batch(device: str = "cpu") -> tuple[Tensor, Tensor]:
    """Small-integer embeddings: every distance exact, ties everywhere."""
    gen = torch.Generator().manual_seed(2)
    emb = torch.randint(-2, 3, (80, 6), generator=gen).double()
    return emb.to(device), (torch.arange(80) // 8).to(device)


def _sorted_set(t: tuple[Tensor, ...]) -> Tensor:
    s = torch.stack([x.cpu() for x in t], 1)
    for col in reversed(range(s.shape[1])):
        s = s[s[:, col].argsort(stable=True)]
    return s


def _same_triplets(ours: tuple, theirs: tuple) -> tuple[bool, str]:
    a, b = _sorted_set(ours), _sorted_set(theirs)
    if a.shape == b.shape and torch.equal(a, b):
        return True, f"{a.shape[0]} triplets identical"
    return (
        False,
        f"ours {a.shape[0]} triplets, theirs {b.shape[0]}; first rows ours {a[:3].tolist()} theirs {b[:3].tolist()}",
    )


def _same_loss_and_grad(ours_fn: Callable, theirs_fn: Callable, emb: Tensor) -> tuple[bool, str]:
    e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    l1, l2 = ours_fn(e1), theirs_fn(e2)
    l1.backward()
    l2.backward()
    ok = torch.allclose(l1, l2, rtol=1e-9, atol=1e-12) and torch.allclose(e1.grad, e2.grad, rtol=1e-7, atol=1e-10)
    err = (e1.grad - e2.grad).abs().max().item()
    return ok, f"loss ours {l1.item():.12g} theirs {l2.item():.12g}; max |grad diff| {err:.2g}"


def check_random_window(fn: Callable[[Tensor, Tensor], tuple], emb: Tensor, labels: Tensor) -> tuple[bool, str]:
    """The Python loops draw a random negative from FaceNet's window D_ap < D_an < D_ap + alpha (squared)
    for pairs a < p. Ours with ``margin=alpha, fallback="drop"`` returns a triplet for exactly the pairs
    whose window is non-empty, with the window's closest member: same pairs, and every drawn negative in
    the window and no closer than ours."""
    a, p, n = (t.cpu() for t in fn(emb, labels))
    oa, op, on = (t.cpu() for t in fx.semi_hard_triplets(emb, labels, margin=MARGIN, fallback="drop"))
    upper = oa < op
    oa, op, on = oa[upper], op[upper], on[upper]
    x, lab = emb.detach().cpu(), labels.cpu()
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    problems = []
    if not torch.equal(_sorted_set((a, p)), _sorted_set((oa, op))):
        problems.append(f"pairs differ: theirs {a.numel()}, ours {oa.numel()}")
    if (lab[n] == lab[a]).any():
        problems.append("a negative shares the anchor's label")
    in_window = (d[a, n] > d[a, p]) & (d[a, n] - d[a, p] < MARGIN)
    if not in_window.all():
        problems.append(f"{int((~in_window).sum())} negatives outside the window")
    ours_dan = torch.full_like(d, float("nan"))
    ours_dan[oa, op] = d[oa, on]
    if (d[a, n] < ours_dan[a, p]).any():
        problems.append("a drawn negative is closer than ours, the window's closest member")
    if problems:
        return False, "; ".join(problems)
    return True, f"same {a.numel()} anchor-positive pairs (a < p); each negative in the window, ours its closest member"


def _check_facenet(device):
    return ("same pairs, random negatives", *check_random_window(bl.facenet_loop, *small_batch(device)))


def _check_siamese(device):
    return ("same pairs, random negatives", *check_random_window(bl.siamese_triplet_loop, *small_batch(device)))


def _check_sort(device):
    results = []
    for batch in (small_batch(device), integer_batch(device)):
        for kw in ({}, {"margin": MARGIN}, {"margin": 1.0, "squared": False}):
            results.append(
                _same_triplets(fx.semi_hard_triplets(*batch, **kw), bl.sort_searchsorted_semi_hard(*batch, **kw))
            )
    ok = all(r[0] for r in results)
    detail = "float64 and small-integer (tied) batches, with and without margin: " + "; ".join(r[1] for r in results)
    return "same triplets", ok, detail


def _check_sort_loss(device):
    emb, labels = small_batch(device)
    ok, detail = _same_loss_and_grad(
        lambda e: fx.triplet_loss(e, labels, MARGIN),
        lambda e: bl.torch_triplet_loss(e, bl.sort_searchsorted_semi_hard(e, labels), MARGIN),
        emb,
    )
    return "same loss", ok, detail


def _check_tf_addons(device):
    emb, labels = small_batch(device)
    results = [
        _same_loss_and_grad(
            partial(fx.triplet_loss, labels=labels, margin=MARGIN, squared=sq),
            partial(bl.tf_addons_semihard_loss, labels=labels, margin=MARGIN, squared=sq),
            emb,
        )
        for sq in (False, True)
    ]
    return "same loss", all(r[0] for r in results), "L2: " + results[0][1] + "; squared-L2: " + results[1][1]


def _check_pml_semihard(device):
    emb, labels = small_batch(device)
    ok, detail = _same_triplets(
        fx.all_semi_hard_triplets(emb, labels, MARGIN), bl.pml_semihard_miner(MARGIN)(emb, labels)
    )
    return "same triplets", ok, detail


def _pml_loss_check(miner_factory, mining: str, emb: Tensor, labels: Tensor):
    """PML's distance L2-normalises its input, so its gradient is ours composed with that normalisation
    (the values agree on unit-norm input, the gradients only once ours is given the same normalisation)."""
    miner, loss_fn = miner_factory(), bl.pml_triplet_loss(MARGIN)
    unit = torch.nn.functional.normalize
    return _same_loss_and_grad(
        lambda e: fx.triplet_loss(
            unit(e, dim=1), labels, MARGIN, mining=mining, squared=False, reduction="mean_active"
        ),
        lambda e: loss_fn(e, labels, miner(e, labels)),
        emb,
    )


def _check_pml_semihard_loss(device):
    emb, labels = small_batch(device)
    return "same loss", *_pml_loss_check(lambda: bl.pml_semihard_miner(MARGIN), "all_semihard", emb, labels)


def _check_pml_batch_hard_loss(device):
    emb, labels = small_batch(device)
    same, detail = _same_triplets(fx.batch_hard_triplets(emb, labels), bl.pml_batch_hard_miner()(emb, labels))
    ok, loss_detail = _pml_loss_check(bl.pml_batch_hard_miner, "batch_hard", emb, labels)
    return "same triplets, same loss", same and ok, detail + "; " + loss_detail


CHECKS: dict[str, Callable[[str], tuple[str, bool, str]]] = {
    "facenet_loop": _check_facenet,
    "siamese_loop": _check_siamese,
    "sort_searchsorted": _check_sort,
    "sort_searchsorted.loss": _check_sort_loss,
    "tf_addons": _check_tf_addons,
    "pml.semihard": _check_pml_semihard,
    "pml.semihard.loss": _check_pml_semihard_loss,
    "pml.batch_hard.loss": _check_pml_batch_hard_loss,
}


def check(method: str, device: str = "cpu") -> Agreement:
    """Run the agreement check of one baseline; never raises (a crash is a disagreement)."""
    try:
        verdict, ok, detail = CHECKS[method](device)
    except Exception as e:
        return Agreement(method, False, "DIFFERS", f"check raised {type(e).__name__}: {e}")
    return Agreement(method, ok, verdict if ok else "DIFFERS", detail)
