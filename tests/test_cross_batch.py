"""Mining beyond one batch: reference sets (ref_emb/ref_labels), the memory bank (memory=), and streaming
(chunk_size=): exact agreement with the float64 reference and with mining the concatenation, streaming
equal to the whole matrix for every chunk size, hypothesis edge cases, the loss and its gradients, the
bank's FIFO, and errors. Integer embeddings throughout the exactness tests: their distances are exact in
every dtype, so no result can depend on how the GEMM is blocked."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import facenet_ext as fx
from facenet_ext import cross_batch
from facenet_ext.oracle import (
    all_semi_hard_from_sq_dist_oracle,
    batch_hard_from_sq_dist_oracle,
    pairwise_sq_dist_oracle,
    semi_hard_from_sq_dist_oracle,
    triplet_loss_oracle,
)

from params import FULL, dtypes
from strategies import MARGINS, integer_points

# (miner, its options, the float64 reference on a given matrix with those options)
CASES = [
    (fx.semi_hard_triplets, {}, lambda d, y, ry: semi_hard_from_sq_dist_oracle(d, y, ref_labels=ry)),
    (
        fx.semi_hard_triplets,
        {"fallback": "drop", "margin": 2.0},
        lambda d, y, ry: semi_hard_from_sq_dist_oracle(d, y, 2.0, fallback="drop", ref_labels=ry),
    ),
    (
        fx.semi_hard_triplets,
        {"margin": 1.0, "squared": False},
        lambda d, y, ry: semi_hard_from_sq_dist_oracle(d, y, 1.0, squared=False, ref_labels=ry),
    ),
    (fx.batch_hard_triplets, {}, lambda d, y, ry: batch_hard_from_sq_dist_oracle(d, y, ref_labels=ry)),
    (
        fx.all_semi_hard_triplets,
        {"margin": 1.0},
        lambda d, y, ry: all_semi_hard_from_sq_dist_oracle(d, y, 1.0, ref_labels=ry),
    ),
    (
        fx.all_semi_hard_triplets,
        {"margin": 3.0, "squared": True},
        lambda d, y, ry: all_semi_hard_from_sq_dist_oracle(d, y, 3.0, squared=True, ref_labels=ry),
    ),
]
IDS = [
    "semihard",
    "semihard-drop-margin",
    "semihard-plain-margin",
    "batch_hard",
    "all_semihard",
    "all_semihard-squared",
]


def rows(triplets):
    a, p, n = triplets
    for t in (a, p, n):
        assert t.dtype == torch.int64 and t.dim() == 1 and t.shape == a.shape
    return list(zip(a.tolist(), p.tolist(), n.tolist()))


def integer_set(n, dim=3, identities=5, dtype=torch.float32):
    return torch.randint(-2, 3, (n, dim)).to(dtype), torch.randint(identities, (n,))


def restricted(triplets, batch):
    """The triplets of the concatenation [batch; bank] whose anchor is in the batch."""
    return [r for r in rows(triplets) if r[0] < batch]


# ---------------------------------------------------------------------------------------------------
# reference sets and the memory bank against the definitions
# ---------------------------------------------------------------------------------------------------
@dtypes(*FULL)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_set_matches_reference(dtype, case):
    miner, kwargs, reference = case
    emb, labels = integer_set(30, dtype=dtype)
    ref, ref_labels = integer_set(47, identities=7, dtype=dtype)  # identities the batch lacks, and the reverse
    got = miner(emb, labels, **kwargs, ref_emb=ref, ref_labels=ref_labels)
    assert rows(got) == rows(reference(pairwise_sq_dist_oracle(emb, ref), labels, ref_labels))


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("filled", [0, 9, 40], ids=["empty bank", "partly filled", "wrapped"])
def test_memory_equals_mining_the_concatenation(case, filled):
    """memory=bank mines the batch's anchors against [batch; bank]. The float64 reference on that
    concatenation is the independent check (with an empty bank, mining the concatenation with our own
    miner would be the very call under test); our miner on the concatenation must agree as well."""
    miner, kwargs, reference = case
    emb, labels = integer_set(20)
    bank = fx.MemoryBank(25, 3)
    if filled:
        bank.enqueue(*integer_set(filled))
    assert len(bank) == min(filled, 25)
    cat, cat_labels = torch.cat([emb, bank.embeddings]), torch.cat([labels, bank.labels])
    # The square reference on the concatenation (self excluded), restricted to the batch's anchors: each
    # anchor's triplets depend on its own row only, and the batch rows keep their indices 0..19.
    want = restricted(reference(pairwise_sq_dist_oracle(cat), cat_labels, None), 20)
    assert len(want) > 0
    assert restricted(miner(cat, cat_labels, **kwargs), 20) == want
    assert rows(miner(emb, labels, **kwargs, memory=bank)) == want
    assert rows(miner(emb, labels, **kwargs, memory=bank, chunk_size=4)) == want


# ---------------------------------------------------------------------------------------------------
# streaming == the whole matrix
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("reference_set", ["ref_emb", "memory", "the batch"])
def test_streaming_equals_whole_matrix(case, reference_set):
    miner, kwargs, _ = case
    emb, labels = integer_set(24)
    extra, extra_labels = integer_set(37, identities=6)
    if reference_set == "ref_emb":
        refs, n_ref = {"ref_emb": extra, "ref_labels": extra_labels}, 37
    elif reference_set == "memory":
        bank = fx.MemoryBank(30, 3)
        bank.enqueue(extra, extra_labels)
        refs, n_ref = {"memory": bank}, 24 + 30
    else:
        refs, n_ref = {}, 24
    want = rows(miner(emb, labels, **kwargs, **refs))
    assert len(want) > 0
    for chunk in (1, 2, 5, 11, n_ref - 1, n_ref, 10 * n_ref):
        assert rows(miner(emb, labels, **kwargs, **refs, chunk_size=chunk)) == want, chunk


def test_automatic_streaming_beyond_the_matrix_limit(monkeypatch):
    """Past MATRIX_LIMIT elements the miners stream in CHUNK_ELEMENTS // B columns, with the same result."""
    emb, labels = integer_set(16)
    ref, ref_labels = integer_set(50)
    want = {
        m: rows(m(emb, labels, ref_emb=ref, ref_labels=ref_labels))
        for m in (fx.semi_hard_triplets, fx.batch_hard_triplets)
    }
    want_self = rows(fx.semi_hard_triplets(emb, labels))
    calls = []
    real = cross_batch._stream
    monkeypatch.setattr(cross_batch, "_stream", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    monkeypatch.setattr(cross_batch, "MATRIX_LIMIT", 16 * 50 - 1)
    monkeypatch.setattr(cross_batch, "CHUNK_ELEMENTS", 16 * 7)
    for miner, expected in want.items():
        assert rows(miner(emb, labels, ref_emb=ref, ref_labels=ref_labels)) == expected
    assert calls == [7, 7]
    monkeypatch.setattr(cross_batch, "MATRIX_LIMIT", 16 * 16 - 1)
    assert rows(fx.semi_hard_triplets(emb, labels)) == want_self  # the plain batch path streams too
    assert cross_batch.chunk_columns(16, 50, None) == 7 and cross_batch.chunk_columns(16, 50, 3) == 3


@st.composite
def reference_problems(draw):
    """A batch and a reference set of small-integer points (ties everywhere, duplicates, all-equal sets),
    with identities that have one image in the reference set, none, or only there."""
    dim = draw(st.integers(1, 3))
    batch, n_ref = draw(st.integers(1, 10)), draw(st.integers(1, 16))
    emb, ref = draw(integer_points(batch, dim)), draw(integer_points(n_ref, dim))
    labels = st.integers(0, draw(st.integers(0, 4)))
    y = torch.tensor(draw(st.lists(labels, min_size=batch, max_size=batch)))
    ry = torch.tensor(draw(st.lists(labels, min_size=n_ref, max_size=n_ref)))
    dtype = draw(st.sampled_from(FULL))
    return emb.to(dtype), y, ref.to(dtype), ry


@given(
    problem=reference_problems(),
    case=st.sampled_from(CASES),
    chunk=st.integers(1, 17),
    mode=st.sampled_from(["ref_emb", "memory"]),
)
def test_streaming_edge_cases(problem, case, chunk, mode):
    miner, kwargs, reference = case
    emb, y, ref, ry = problem
    if mode == "ref_emb":
        refs = {"ref_emb": ref, "ref_labels": ry}
        want = rows(reference(pairwise_sq_dist_oracle(emb, ref), y, ry))
    else:
        refs = {"memory": fx.MemoryBank(ref.shape[0], ref.shape[1], dtype=ref.dtype)}
        refs["memory"].enqueue(ref, ry)
        want = restricted(miner(torch.cat([emb, ref]), torch.cat([y, ry]), **kwargs), emb.shape[0])
    assert rows(miner(emb, y, **kwargs, **refs)) == want
    assert rows(miner(emb, y, **kwargs, **refs, chunk_size=chunk)) == want


@given(problem=reference_problems(), margin=st.sampled_from(MARGINS))
def test_all_semi_hard_reference_set_matches_pytorch_metric_learning(problem, margin):
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.miners import TripletMarginMiner

    emb, y, ref, ry = problem
    emb, ref = emb.float(), ref.float()
    miner = TripletMarginMiner(
        margin=margin, type_of_triplets="semihard", distance=LpDistance(normalize_embeddings=False)
    )
    want = sorted(rows(tuple(t.long() for t in miner(emb, y, ref_emb=ref, ref_labels=ry))))
    assert rows(fx.all_semi_hard_triplets(emb, y, margin, ref_emb=ref, ref_labels=ry, chunk_size=5)) == want


def test_empty_reference_set_mines_nothing():
    emb, labels = integer_set(6)
    for miner in (fx.semi_hard_triplets, fx.batch_hard_triplets, fx.all_semi_hard_triplets):
        assert rows(miner(emb, labels, ref_emb=torch.empty(0, 3), ref_labels=torch.empty(0, dtype=torch.int64))) == []
    assert (
        fx.triplet_loss(emb, labels, ref_emb=torch.empty(0, 3), ref_labels=torch.empty(0, dtype=torch.int64)).item()
        == 0
    )


# ---------------------------------------------------------------------------------------------------
# the loss with a reference set: values and gradients
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mining", ["semihard", "batch_hard", "all_semihard"])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
def test_loss_with_ref_emb(mining, squared):
    emb, labels = integer_set(16, dtype=torch.float64)
    ref, ref_labels = integer_set(40, dtype=torch.float64)
    emb.requires_grad_()
    ref.requires_grad_()
    margin = 1.5  # integer distances: a hinge argument is never exactly 0 (no kink to disagree on)
    loss = fx.triplet_loss(emb, labels, margin, mining=mining, squared=squared, ref_emb=ref, ref_labels=ref_labels)
    miner = {"semihard": fx.semi_hard_triplets, "batch_hard": fx.batch_hard_triplets}.get(mining)
    if miner is None:
        a, p, n = fx.all_semi_hard_triplets(emb, labels, margin, squared=squared, ref_emb=ref, ref_labels=ref_labels)
    else:
        a, p, n = miner(
            emb, labels, **({} if mining == "batch_hard" else {"squared": squared}), ref_emb=ref, ref_labels=ref_labels
        )
    assert len(a) > 0
    want = triplet_loss_oracle(torch.cat([emb, ref]), None, margin, mining=(a, p + 16, n + 16), squared=squared)
    torch.testing.assert_close(loss, want)
    g = torch.autograd.grad(loss, (emb, ref))
    torch.testing.assert_close(g, torch.autograd.grad(want, (emb, ref)))
    assert g[1].abs().sum() > 0  # gradients reach the reference set
    streamed = fx.triplet_loss(
        emb, labels, margin, mining=mining, squared=squared, ref_emb=ref, ref_labels=ref_labels, chunk_size=3
    )
    torch.testing.assert_close(streamed, loss, rtol=0, atol=0)


def test_loss_with_memory_bank():
    emb, labels = integer_set(12, dtype=torch.float64)
    bank = fx.MemoryBank(30, 3, dtype=torch.float64)
    bank.enqueue(*integer_set(30, dtype=torch.float64))
    emb.requires_grad_()
    loss, stats = fx.triplet_loss(emb, labels, 0.5, memory=bank, return_stats=True)
    a, p, n = fx.semi_hard_triplets(emb, labels, memory=bank)
    assert int(stats["num_triplets"]) == len(a) > 0 and (p >= 12).any() and (n >= 12).any()
    want = triplet_loss_oracle(torch.cat([emb, bank.embeddings]), None, 0.5, mining=(a, p, n))
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(torch.autograd.grad(loss, emb)[0], torch.autograd.grad(want, emb)[0])
    assert not bank.embeddings.requires_grad
    # explicit indices follow the same convention
    torch.testing.assert_close(fx.triplet_loss(emb, None, 0.5, mining=(a, p, n), memory=bank), loss)


# ---------------------------------------------------------------------------------------------------
# MemoryBank
# ---------------------------------------------------------------------------------------------------
def test_memory_bank_fifo_and_wrap_around():
    bank = fx.MemoryBank(5, 2)
    assert len(bank) == 0 and bank.embeddings.shape == (0, 2)
    rows_of = lambda start, n: torch.arange(start, start + n).float().unsqueeze(1).repeat(1, 2)  # noqa: E731
    bank.enqueue(rows_of(0, 3), torch.arange(0, 3))
    assert len(bank) == 3 and bank.labels.tolist() == [0, 1, 2] and bank.steps.tolist() == [0, 0, 0]
    bank.enqueue(rows_of(3, 4), torch.arange(3, 7))  # wraps: 0 and 1 are dropped
    assert len(bank) == 5 and bank.labels.tolist() == [2, 3, 4, 5, 6] and bank.steps.tolist() == [0, 1, 1, 1, 1]
    assert torch.equal(bank.embeddings, rows_of(2, 5))
    bank.enqueue(rows_of(7, 1), torch.tensor([7]), step=42)
    assert bank.labels.tolist() == [3, 4, 5, 6, 7] and bank.steps.tolist() == [1, 1, 1, 1, 42]
    bank.enqueue(rows_of(100, 8), torch.arange(100, 108))  # larger than the bank: the newest 5 rows
    assert bank.labels.tolist() == [103, 104, 105, 106, 107] and torch.equal(bank.embeddings, rows_of(103, 5))
    storage = bank._emb.untyped_storage().data_ptr()
    assert bank.embeddings.untyped_storage().data_ptr() == storage  # a view, not a copy
    bank.reset()
    assert len(bank) == 0 and bank.labels.tolist() == []


def test_memory_bank_detaches():
    bank = fx.MemoryBank(4, 3)
    emb = torch.randn(2, 3, requires_grad=True)
    bank.enqueue(emb * 2, torch.tensor([0, 1]))
    assert not bank.embeddings.requires_grad
    torch.testing.assert_close(bank.embeddings, (emb * 2).detach())


# ---------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------
EMB, LABELS = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
REF, REF_LABELS = torch.randn(8, 3), torch.arange(8) % 3


def _bank(dim=3, dtype=torch.float32):
    bank = fx.MemoryBank(4, dim, dtype=dtype)
    bank.enqueue(torch.randn(2, dim).to(dtype), torch.tensor([0, 1]))
    return bank


BAD_REFERENCES = [
    ("ref_emb width", dict(ref_emb=torch.randn(8, 4), ref_labels=REF_LABELS), ValueError, "ref_emb"),
    ("ref_emb dtype", dict(ref_emb=REF.double(), ref_labels=REF_LABELS), TypeError, "ref_emb"),
    ("ref_emb device", dict(ref_emb=REF.to("meta"), ref_labels=REF_LABELS), ValueError, "ref_emb"),
    ("ref_emb 1-D", dict(ref_emb=torch.randn(8), ref_labels=REF_LABELS), ValueError, "ref_emb"),
    ("ref_emb NaN", dict(ref_emb=torch.full((8, 3), float("nan")), ref_labels=REF_LABELS), ValueError, "ref_emb"),
    ("ref_labels length", dict(ref_emb=REF, ref_labels=REF_LABELS[:7]), ValueError, "ref_labels"),
    ("ref_labels float", dict(ref_emb=REF, ref_labels=REF_LABELS.float()), TypeError, "ref_labels"),
    ("ref_emb alone", dict(ref_emb=REF), ValueError, "ref_labels"),
    ("ref_labels alone", dict(ref_labels=REF_LABELS), ValueError, "ref_emb"),
    ("memory and ref_emb", dict(memory=_bank(), ref_emb=REF, ref_labels=REF_LABELS), ValueError, "memory"),
    ("memory not a bank", dict(memory=REF), TypeError, "memory"),
    ("memory width", dict(memory=_bank(dim=4)), ValueError, "memory"),
    ("memory dtype", dict(memory=_bank(dtype=torch.float64)), TypeError, "memory"),
    ("chunk_size 0", dict(chunk_size=0), ValueError, "chunk_size"),
    ("chunk_size float", dict(chunk_size=2.5), TypeError, "chunk_size"),
]
CALLS = {
    "semi_hard_triplets": lambda **k: fx.semi_hard_triplets(EMB, LABELS, **k),
    "batch_hard_triplets": lambda **k: fx.batch_hard_triplets(EMB, LABELS, **k),
    "all_semi_hard_triplets": lambda **k: fx.all_semi_hard_triplets(EMB, LABELS, **k),
    "triplet_loss": lambda **k: fx.triplet_loss(EMB, LABELS, **k),
}


@pytest.mark.parametrize("fn", CALLS)
@pytest.mark.parametrize("what, kwargs, exc, arg", BAD_REFERENCES, ids=[c[0] for c in BAD_REFERENCES])
def test_bad_reference_sets(fn, what, kwargs, exc, arg):
    with pytest.raises(exc) as err:
        CALLS[fn](**kwargs)
    assert f"{fn}:" in str(err.value) and arg in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "call, exc, arg",
    [
        (lambda b: b.enqueue(torch.randn(2, 4), torch.tensor([0, 1])), ValueError, "width"),
        (lambda b: b.enqueue(torch.randn(2, 3).double(), torch.tensor([0, 1])), TypeError, "dtype"),
        (lambda b: b.enqueue(torch.randn(2, 3), torch.tensor([0])), ValueError, "labels"),
        (lambda b: b.enqueue(torch.randn(2, 3), torch.tensor([0.0, 1.0])), TypeError, "labels"),
        (lambda b: b.enqueue(torch.full((2, 3), float("inf")), torch.tensor([0, 1])), ValueError, "emb"),
        (lambda b: fx.MemoryBank(0, 3), ValueError, "size"),
        (lambda b: fx.MemoryBank(4, 3, dtype=torch.int64), TypeError, "dtype"),
    ],
    ids=["width", "dtype", "labels length", "float labels", "Inf", "size 0", "integer dtype"],
)
def test_bad_memory_bank_use(call, exc, arg):
    with pytest.raises(exc) as err:
        call(fx.MemoryBank(4, 3))
    assert "MemoryBank" in str(err.value) and arg in str(err.value), str(err.value)


def test_explicit_indices_range_against_the_reference_set():
    with pytest.raises(IndexError, match=r"negative.*\[0, 8\)"):
        fx.triplet_loss(
            EMB,
            None,
            mining=(torch.tensor([0]), torch.tensor([1]), torch.tensor([8])),
            ref_emb=REF,
            ref_labels=REF_LABELS,
        )
    with pytest.raises(IndexError, match=r"anchor.*\[0, 6\)"):
        fx.triplet_loss(
            EMB,
            None,
            mining=(torch.tensor([6]), torch.tensor([1]), torch.tensor([7])),
            ref_emb=REF,
            ref_labels=REF_LABELS,
        )


def test_benchmark_baselines_agree_on_integer_embeddings():
    """The naive cdist + mask baselines of benchmarks/bench_reference_set.py mine what we mine (integer
    embeddings: cdist and our GEMM then give the same distances)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_reference_set.py"
    spec = importlib.util.spec_from_file_location("bench_reference_set", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    emb, labels = integer_set(30)
    ref, ref_labels = integer_set(60, identities=7)
    for naive, ours in (
        (bench.naive_semi_hard, fx.semi_hard_triplets),
        (bench.naive_batch_hard, fx.batch_hard_triplets),
    ):
        assert sorted(rows(naive(emb, labels, ref, ref_labels))) == rows(
            ours(emb, labels, ref_emb=ref, ref_labels=ref_labels)
        )


def test_memory_bank_state_round_trip():
    bank = fx.MemoryBank(5, 3)
    for step in range(3):
        bank.enqueue(torch.randn(2, 3), torch.tensor([step, step]))
    copy = fx.MemoryBank(5, 3)
    copy.load_state_dict(bank.state_dict())
    assert torch.equal(copy.embeddings, bank.embeddings) and torch.equal(copy.labels, bank.labels)
    assert torch.equal(copy.steps, bank.steps) and len(copy) == len(bank) == 5
    bank.enqueue(torch.ones(1, 3), torch.tensor([9]))
    copy.enqueue(torch.ones(1, 3), torch.tensor([9]))
    assert torch.equal(copy.embeddings, bank.embeddings)
    with pytest.raises(ValueError, match="size 5"):
        fx.MemoryBank(4, 3).load_state_dict(bank.state_dict())


def test_memory_bank_is_a_module():
    """.to() moves it, a parent module's state_dict carries it, and a checkpoint holds only the valid
    entries (10 rows of a 1000-row bank), not the mirrored storage."""
    import io

    parent = torch.nn.Module()
    parent.bank = fx.MemoryBank(1000, 16)
    parent.bank.enqueue(torch.randn(10, 16), torch.arange(10))
    parent.bank.to(torch.float64)
    assert parent.bank.dtype == torch.float64 and parent.bank.embeddings.dtype == torch.float64
    state = parent.state_dict()
    assert "bank._extra_state" in state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    assert buffer.tell() < 16 * 1024, buffer.tell()  # 10 x 16 float64 rows, labels, steps and the header
    other = torch.nn.Module()
    other.bank = fx.MemoryBank(1000, 16, dtype=torch.float64)
    other.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert torch.equal(other.bank.embeddings, parent.bank.embeddings) and len(other.bank) == 10
    assert torch.equal(other.bank.labels, parent.bank.labels) and torch.equal(other.bank.steps, parent.bank.steps)
