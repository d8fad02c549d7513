"""Bad input fails with an error that names the function and the argument.

NaN/Inf embeddings: every public op raises ValueError, found by the native op in a pass it makes anyway
(so the message is the same under torch.compile); triplet_loss reports it from the miner it calls.
Labels and index tensors on the wrong device are exercised with the meta device, so the checks run
without a GPU; embeddings on two devices need one. Direct torch.ops calls: tests/test_direct_ops.py.
"""

import pytest
import torch

import facenet_ext as fx
from facenet_ext.eval.clustering import LINKAGES, cluster
from facenet_ext.train.config import LOSSES, OPTIMIZERS, TrainConfig

ops = torch.ops.facenet_ext
EMB = torch.randn(6, 3)
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
IDX = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([2, 4]))


def with_value(value):
    e = EMB.clone()
    e[2, 1] = value
    return e


BAD_EMBEDDINGS = [
    ("1-D", torch.randn(6), ValueError),
    ("3-D", torch.randn(6, 3, 1), ValueError),
    ("integer", torch.ones(6, 3, dtype=torch.int64), TypeError),
    ("bool", torch.ones(6, 3, dtype=torch.bool), TypeError),
    ("complex", torch.ones(6, 3, dtype=torch.complex64), TypeError),
    ("NaN", with_value(float("nan")), ValueError),
    ("+Inf", with_value(float("inf")), ValueError),
    ("-Inf", with_value(float("-inf")), ValueError),
    ("not a tensor", [[0.0, 1.0]], TypeError),
]

# public function -> how to call it with `emb` in the embeddings slot (and good everything else)
EMB_CALLS = {
    "pairwise_sq_dist": lambda e: fx.pairwise_sq_dist(e),
    "semi_hard_triplets": lambda e: fx.semi_hard_triplets(e, LABELS),
    "batch_hard_triplets": lambda e: fx.batch_hard_triplets(e, LABELS),
    "all_semi_hard_triplets": lambda e: fx.all_semi_hard_triplets(e, LABELS),
    "triplet_loss": lambda e: fx.triplet_loss(e, LABELS),
}
EMB_NAME = {"pairwise_sq_dist": "x"}
# Who reports NaN/Inf: the native op that reads the values (triplet_loss's miner), in eager and compiled mode.
NON_FINITE_REPORTER = {"triplet_loss": "semi_hard_triplets"}


def assert_names(err, fn, arg):
    msg = str(err.value)
    assert f"{fn}:" in msg, msg
    assert arg in msg, msg


@pytest.mark.parametrize("fn", EMB_CALLS)
@pytest.mark.parametrize("what, emb, exc", BAD_EMBEDDINGS, ids=[c[0] for c in BAD_EMBEDDINGS])
def test_bad_embeddings(fn, what, emb, exc):
    with pytest.raises(exc) as err:
        EMB_CALLS[fn](emb)
    reporter = NON_FINITE_REPORTER.get(fn, fn) if what in ("NaN", "+Inf", "-Inf") else fn
    assert_names(err, reporter, EMB_NAME.get(fn, "emb"))


@pytest.mark.parametrize("what, y, exc", BAD_EMBEDDINGS, ids=[c[0] for c in BAD_EMBEDDINGS])
def test_bad_y(what, y, exc):
    with pytest.raises(exc) as err:
        fx.pairwise_sq_dist(EMB, y)
    assert_names(err, "pairwise_sq_dist", "y")


@pytest.mark.parametrize(
    "what, y, exc",
    [
        ("width differs", torch.randn(4, 5), ValueError),
        ("dtype differs", torch.randn(4, 3, dtype=torch.float64), TypeError),
    ],
)
def test_y_mismatching_x(what, y, exc):
    with pytest.raises(exc) as err:
        fx.pairwise_sq_dist(EMB, y)
    assert_names(err, "pairwise_sq_dist", "y")


BAD_LABELS = [
    ("float", LABELS.float(), TypeError),
    ("bool", LABELS.bool(), TypeError),
    ("complex", LABELS.to(torch.complex64), TypeError),
    ("2-D", LABELS.unsqueeze(1), ValueError),
    ("0-D", torch.tensor(1), ValueError),
    ("too short", LABELS[:5], ValueError),
    ("too long", torch.arange(7), ValueError),
    ("other device", LABELS.to("meta"), ValueError),
    ("not a tensor", [0, 0, 1, 1, 2, 2], TypeError),
    ("None", None, TypeError),
]
LABEL_CALLS = {
    "semi_hard_triplets": lambda y: fx.semi_hard_triplets(EMB, y),
    "batch_hard_triplets": lambda y: fx.batch_hard_triplets(EMB, y),
    "all_semi_hard_triplets": lambda y: fx.all_semi_hard_triplets(EMB, y),
    "triplet_loss": lambda y: fx.triplet_loss(EMB, y),
}


@pytest.mark.parametrize("fn", LABEL_CALLS)
@pytest.mark.parametrize("what, labels, exc", BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_bad_labels(fn, what, labels, exc):
    with pytest.raises(exc) as err:
        LABEL_CALLS[fn](labels)
    assert_names(err, fn, "labels")


MARGIN_CALLS = {
    "semi_hard_triplets": lambda m: fx.semi_hard_triplets(EMB, LABELS, m),
    "all_semi_hard_triplets": lambda m: fx.all_semi_hard_triplets(EMB, LABELS, m),
    "triplet_loss": lambda m: fx.triplet_loss(EMB, LABELS, m),
}


@pytest.mark.parametrize("fn", MARGIN_CALLS)
@pytest.mark.parametrize(
    "margin, exc",
    [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("0.2", TypeError), (True, TypeError)],
    ids=["negative", "NaN", "Inf", "string", "bool"],
)
def test_bad_margin(fn, margin, exc):
    with pytest.raises(exc) as err:
        MARGIN_CALLS[fn](margin)
    assert_names(err, fn, "margin")


# Every argument that picks one of a few named options goes through _checks.check_choice.
CHOICE_CALLS = [
    (lambda v: fx.semi_hard_triplets(EMB, LABELS, fallback=v), "semi_hard_triplets", "fallback", ("easiest", "drop")),
    (lambda v: fx.triplet_loss(EMB, LABELS, mining=v), "triplet_loss", "mining", ("semihard", "batch_hard")),
    (lambda v: fx.triplet_loss(EMB, LABELS, reduction=v), "triplet_loss", "reduction", ("mean", "sum")),
    (lambda v: fx.aggregate_templates(EMB, LABELS, weights=v), "aggregate_templates", "weights", ("magnitude", "mean")),
    (lambda v: cluster(EMB.numpy(), linkage=v), "cluster", "linkage", LINKAGES),
    (lambda v: TrainConfig(loss=v), "TrainConfig", "loss", LOSSES),
    (lambda v: TrainConfig(optimizer=v), "TrainConfig", "optimizer", OPTIMIZERS),
]


@pytest.mark.parametrize("call, fn, arg, choices", CHOICE_CALLS, ids=[f"{c[1]}-{c[2]}" for c in CHOICE_CALLS])
def test_unknown_choice(call, fn, arg, choices):
    with pytest.raises(ValueError) as err:
        call("hardest")
    assert_names(err, fn, arg)
    assert "expected one of" in str(err.value) and all(repr(c) in str(err.value) for c in choices)


@pytest.mark.parametrize("value", [None, 3, b"mean"], ids=["None", "int", "bytes"])
@pytest.mark.parametrize(
    "call, fn, arg, choices",
    [c for c in CHOICE_CALLS if c[2] != "mining"],
    ids=[f"{c[1]}-{c[2]}" for c in CHOICE_CALLS if c[2] != "mining"],
)
def test_choice_of_another_type(call, fn, arg, choices, value):
    """Not a string at all: TypeError, as for every other argument of the wrong type."""
    with pytest.raises(TypeError) as err:
        call(value)
    assert_names(err, fn, arg)
    assert all(repr(c) in str(err.value) for c in choices)


def _idx(i, t):
    out = list(IDX)
    out[i] = t
    return tuple(out)


@pytest.mark.parametrize(
    "mining, exc, arg",
    [
        (IDX[:2], TypeError, "mining"),
        ([0, 1, 2], TypeError, "mining"),
        (_idx(1, [1, 3]), TypeError, "mining[1]"),
        (_idx(0, IDX[0].float()), TypeError, "anchor"),
        (_idx(2, IDX[2].int()), TypeError, "negative"),
        (_idx(1, IDX[1].unsqueeze(0)), ValueError, "positive"),
        (_idx(2, torch.tensor([2, 6])), IndexError, "negative"),  # out of range
        (_idx(0, torch.tensor([-1, 0])), IndexError, "anchor"),  # negative index
        (_idx(1, torch.tensor([1])), ValueError, "lengths"),
        (_idx(2, IDX[2].to("meta")), ValueError, "mining[2]"),
    ],
    ids=[
        "two tensors",
        "list of ints",
        "list inside",
        "float",
        "int32",
        "2-D",
        "out of range",
        "negative",
        "lengths",
        "other device",
    ],
)
def test_bad_explicit_triplets(mining, exc, arg):
    with pytest.raises(exc) as err:
        fx.triplet_loss(EMB, None, mining=mining)
    assert_names(err, "triplet_loss", arg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_embeddings_on_two_devices():
    with pytest.raises(ValueError) as err:
        fx.pairwise_sq_dist(EMB.cuda(), EMB)
    assert_names(err, "pairwise_sq_dist", "y")
    with pytest.raises(ValueError) as err:
        fx.triplet_loss(EMB.cuda(), LABELS)
    assert_names(err, "triplet_loss", "labels")


@pytest.mark.skipif(
    not torch.cuda.is_available() or fx.build_info()["cuda_kernels"], reason="needs a GPU and a CPU-only build"
)
def test_cuda_tensor_on_cpu_only_build_fails_clearly():
    with pytest.raises(RuntimeError, match="facenet_ext::pairwise_sq_dist.*CUDA"):
        fx.pairwise_sq_dist(EMB.cuda())
