"""Every registered op, called directly through torch.ops.facenet_ext (bypassing the Python wrappers),
validates every tensor argument: wrong rank or length raises ValueError, wrong dtype TypeError, an index
out of range IndexError (the classes the wrappers raise for the same faults), each message naming the op
and the argument. Nothing reads out of bounds. Hypothesis corrupts one argument of a valid call at a
time, in every way at once; a table pins the messages.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import facenet_ext as fx

from params import CUDA_MARKS

ops = torch.ops.facenet_ext
B, D = 6, 3
EMB = (torch.arange(B * D).reshape(B, D) % 5 - 2).float()  # fixed values: built at import, before any seed
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
SQ = torch.cdist(EMB, EMB).square()
A, P, N = torch.tensor([0, 2, 4]), torch.tensor([1, 3, 5]), torch.tensor([2, 4, 0])
LOSS, D_AP, D_AN = ops.triplet_loss_forward(EMB, A, P, N, 0.2, True)
X = torch.linspace(-1, 1, 50).reshape(1, 2, 5, 5)
OUT = ops.l2_pool2d(X, [3, 3], [2, 2], [1, 1], False)

# op -> (its valid tensor arguments by name, the call). Each argument's expected dtype kind and rank is
# in ROLE below.
CALLS = {
    "pairwise_sq_dist": ({"x": EMB, "y": EMB[:4]}, lambda t: ops.pairwise_sq_dist(t["x"], t["y"])),
    "semi_hard_from_sq_dist": (
        {"sq_dist": SQ, "labels": LABELS, "ref_labels": LABELS},
        lambda t: ops.semi_hard_from_sq_dist(t["sq_dist"], t["labels"], t["ref_labels"], True, 0.5, True, False),
    ),
    "batch_hard_from_sq_dist": (
        {"sq_dist": SQ, "labels": LABELS, "ref_labels": LABELS},
        lambda t: ops.batch_hard_from_sq_dist(t["sq_dist"], t["labels"], t["ref_labels"], False),
    ),
    "all_semi_hard_from_sq_dist": (
        {"sq_dist": SQ, "labels": LABELS, "ref_labels": LABELS},
        lambda t: ops.all_semi_hard_from_sq_dist(t["sq_dist"], t["labels"], t["ref_labels"], False, 0.5, True),
    ),
    "semi_hard_triplets": (
        {"emb": EMB, "labels": LABELS},
        lambda t: ops.semi_hard_triplets(t["emb"], t["labels"], None, True, False),
    ),
    "batch_hard_triplets": ({"emb": EMB, "labels": LABELS}, lambda t: ops.batch_hard_triplets(t["emb"], t["labels"])),
    "all_semi_hard_triplets": (
        {"emb": EMB, "labels": LABELS},
        lambda t: ops.all_semi_hard_triplets(t["emb"], t["labels"], 0.2, False),
    ),
    "all_semi_hard_loss": (
        {"emb": EMB, "labels": LABELS},
        lambda t: ops.all_semi_hard_loss(t["emb"], t["labels"], 0.2, False, True),
    ),
    "triplet_loss_forward": (
        {"emb": EMB, "anchor": A, "positive": P, "negative": N},
        lambda t: ops.triplet_loss_forward(t["emb"], t["anchor"], t["positive"], t["negative"], 0.2, True),
    ),
    "triplet_loss_backward": (
        {
            "grad_loss": torch.ones(3),
            "emb": EMB,
            "anchor": A,
            "positive": P,
            "negative": N,
            "loss": LOSS,
            "d_ap": D_AP,
            "d_an": D_AN,
        },
        lambda t: ops.triplet_loss_backward(
            t["grad_loss"], t["emb"], t["anchor"], t["positive"], t["negative"], t["loss"], t["d_ap"], t["d_an"], True
        ),
    ),
    "l2_pool2d": ({"x": X}, lambda t: ops.l2_pool2d(t["x"], [3, 3], [2, 2], [1, 1], False)),
    "l2_pool2d_backward": (
        {"grad_out": torch.ones_like(OUT), "x": X, "out": OUT},
        lambda t: ops.l2_pool2d_backward(t["grad_out"], t["x"], t["out"], [3, 3], [2, 2], [1, 1], False),
    ),
}
# argument -> the dtype kind it must have ("float", "int", "long" = int64 only, "acc" = float32 here)
ROLE = {
    "x": "float",
    "y": "float",
    "emb": "float",
    "sq_dist": "float32/64",
    "labels": "int",
    "ref_labels": "int",
    "anchor": "long",
    "positive": "long",
    "negative": "long",
    "grad_loss": "float",
    "loss": "acc",
    "d_ap": "acc",
    "d_an": "acc",
    "grad_out": "float",
    "out": "float",
}
WRONG_DTYPE = {
    "float": [torch.int64, torch.bool, torch.complex64],
    "float32/64": [torch.int64, torch.float16, torch.bool],
    "int": [torch.float32, torch.bool, torch.complex64],
    "long": [torch.int32, torch.float32, torch.bool],
    "acc": [torch.float64, torch.int64],
}
# l2 pooling's grad_out/out must match x's dtype (a fixed float), so their dtype faults are other floats.
SAME_AS_X = {"grad_out", "out"}


def op_name_in(msg: str, op: str) -> bool:
    return op in msg or (op == "semi_hard_from_sq_dist" and "semihard" in msg)


def corruptions(op: str, name: str, t: torch.Tensor):
    """(description, bad tensor, expected exception) for one argument."""
    yield "rank + 1", t.unsqueeze(0), ValueError
    if t.dim() > 1:
        yield "rank - 1", t[0], ValueError
    if name == "emb" and op.startswith("triplet_loss"):
        yield "one shorter", t[:-1], IndexError  # the indices then point past it
    elif t.dim() >= 1 and not (op.startswith("pairwise") or op.startswith("l2_pool2d")):
        yield "one shorter", t[:-1], ValueError
    kinds = [torch.float64] if name in SAME_AS_X else WRONG_DTYPE[ROLE[name]]
    for dtype in kinds:
        yield f"dtype {dtype}", t.to(dtype) if dtype != torch.bool else t != 0, TypeError


CASES = [
    pytest.param(op, name, what, bad, exc, id=f"{op}-{name}-{what}")
    for op, (args, _) in CALLS.items()
    for name, t in args.items()
    for what, bad, exc in corruptions(op, name, t)
]


@pytest.mark.parametrize("op, name, what, bad, exc", CASES)
def test_each_argument_is_checked(op, name, what, bad, exc):
    args, call = CALLS[op]
    with pytest.raises(exc) as err:
        call({**args, name: bad})
    msg = str(err.value)
    assert op_name_in(msg, op) and (name in msg or exc is IndexError), msg


@pytest.mark.parametrize("op", CALLS)
def test_valid_calls_succeed(op):
    """The table's valid arguments really are valid, so each failure above is the corrupted argument's."""
    args, call = CALLS[op]
    call(args)


@given(op=st.sampled_from(sorted(CALLS)), data=st.data())
def test_random_corruptions_raise_clearly(op, data):
    """Any one argument corrupted in rank, length and dtype at once (any order of checks may fire first):
    a ValueError/TypeError (IndexError when shortening emb leaves valid indices out of range) that names
    the op, never a crash."""
    args, call = CALLS[op]
    name = data.draw(st.sampled_from(sorted(args)))
    t = args[name]
    if data.draw(st.booleans()):
        t = t.unsqueeze(data.draw(st.integers(0, t.dim())))
    if data.draw(st.booleans()) and t.shape[0] > 1:
        t = t[: data.draw(st.integers(0, t.shape[0] - 1))]
    if data.draw(st.booleans()):
        t = t.to(data.draw(st.sampled_from([torch.int64, torch.int32, torch.float16, torch.float64, torch.uint8])))
    try:
        call({**args, name: t})
    except (ValueError, TypeError, IndexError) as err:
        assert op_name_in(str(err), op), str(err)


@pytest.mark.parametrize("which", ["anchor", "positive", "negative"])
@pytest.mark.parametrize("bad", [-1, B, 2**40], ids=["negative", "B", "huge"])
@pytest.mark.parametrize("op", ["triplet_loss_forward", "triplet_loss_backward"])
def test_triplet_indices_out_of_range(op, which, bad):
    args, call = CALLS[op]
    idx = args[which].clone()
    idx[1] = bad
    with pytest.raises(IndexError, match=rf"{op}: {which} indices must lie in \[0, {B}\)"):
        call({**args, which: idx})


@pytest.mark.parametrize(
    "op", [pytest.param(op, marks=CUDA_MARKS) for op in ("triplet_loss_forward", "triplet_loss_backward")]
)
def test_triplet_indices_out_of_range_cuda(op):
    """On CUDA a bad index costs no sync and no device assert: NaN where it would have gone, a bit that
    fx.check_errors() raises as IndexError, and a context that stays usable."""
    dev = torch.device("cuda")
    fx.check_errors(dev)  # start clean
    emb, a, p, n = EMB.to(dev), A.to(dev), P.to(dev), N.clone().to(dev)
    n[1] = B  # triplet 1: rows 2 and 3 in range, the negative out
    loss, d_ap, d_an = ops.triplet_loss_forward(emb, a, p, n, 0.2, True)
    if op == "triplet_loss_forward":
        assert loss[1].isnan() and d_ap[1].isnan() and d_an[1].isnan()
        assert not loss[[0, 2]].isnan().any()
    else:
        with pytest.raises(IndexError):
            fx.check_errors(dev)  # the forward's bit; the backward below must set it again on its own
        grad = ops.triplet_loss_backward(torch.ones(3, device=dev), emb, a, p, n, loss, d_ap, d_an, True)
        assert grad[[2, 3]].isnan().all()
        assert not grad[[0, 1, 4, 5]].isnan().any()
    torch.cuda.synchronize()  # no device assert: the context is still usable
    with pytest.raises(IndexError, match="outside"):
        fx.check_errors(dev)
    fx.check_errors(dev)  # cleared
    good = ops.triplet_loss_forward(emb, a, p, N.to(dev), 0.2, True)[0]
    torch.testing.assert_close(good.cpu(), LOSS)


@pytest.mark.parametrize("margin", [-0.5, float("nan"), float("inf"), 1e300])
def test_margins(margin):
    with pytest.raises(ValueError, match="margin"):
        ops.triplet_loss_forward(EMB, A, P, N, margin, True)
    with pytest.raises(ValueError, match="margin"):
        ops.semi_hard_from_sq_dist(SQ, LABELS, LABELS, True, margin, True, False)
    with pytest.raises(ValueError, match="margin"):
        ops.semi_hard_triplets(EMB, LABELS, margin, True, False)
    with pytest.raises(ValueError, match="margin"):
        ops.all_semi_hard_triplets(EMB, LABELS, margin, True)
    if margin == 1e300:  # representable in float64: the op computes in the embeddings' dtype
        ops.all_semi_hard_triplets(EMB.double(), LABELS, margin, True)


def test_exclude_self_needs_a_square_matrix():
    with pytest.raises(ValueError, match="exclude_self"):
        ops.semi_hard_from_sq_dist(SQ[:, :5], LABELS, LABELS[:5], True, None, True, False)


def test_crash_repro_formats_integers():
    """The message that crashed the first GPU build (an integer formatted into a C++ error) is raised."""
    with pytest.raises(ValueError, match=r"semi_hard_from_sq_dist: sq_dist must be 2-D \[B, N\], got shape \[3\]"):
        ops.semi_hard_from_sq_dist(
            torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), True, None, True, False
        )


@pytest.mark.parametrize("op", sorted(CALLS))
@pytest.mark.parametrize("name", ["first", "last"])
@CUDA_MARKS[1]
def test_arguments_on_another_device(op, name):
    args, call = CALLS[op]
    keys = sorted(args)
    moved = {k: (v.cuda() if k != (keys[0] if name == "first" else keys[-1]) else v) for k, v in args.items()}
    with pytest.raises((ValueError, RuntimeError)) as err:
        call(moved)
    assert "device" in str(err.value) or "cuda" in str(err.value).lower()


def test_zero_width_embeddings_are_refused_by_direct_calls():
    """D = 0 raises in C++ as in the Python wrappers (test_api_contract), so torch.ops calls agree."""
    ops = torch.ops.facenet_ext
    emb, labels, idx = torch.empty(6, 0), torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0])
    calls = {
        "pairwise_sq_dist": lambda: ops.pairwise_sq_dist(emb, None),
        "semi_hard_triplets": lambda: ops.semi_hard_triplets(emb, labels, None, True, False),
        "semi_hard_triplets_padded": lambda: ops.semi_hard_triplets_padded(emb, labels, None, True, False, 4),
        "batch_hard_triplets": lambda: ops.batch_hard_triplets(emb, labels),
        "all_semi_hard_triplets": lambda: ops.all_semi_hard_triplets(emb, labels, 0.2, False),
        "all_semi_hard_loss": lambda: ops.all_semi_hard_loss(emb, labels, 0.2, False, False),
        "triplet_loss_forward": lambda: ops.triplet_loss_forward(emb, idx, idx + 2, idx + 4, 0.2, True),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"{name.removesuffix('_padded')}: (emb|x) has width 0"):
            call()
