"""facenet_ext.pml refuses what it cannot do exactly, with errors that name the argument, and says how
to install PML when it is missing."""

import subprocess
import sys

import pytest
import torch
from pytorch_metric_learning import distances, reducers

from facenet_ext import pml

from pml_cases import batch

CLASSES = [pml.TripletMarginMiner, pml.BatchHardMiner, pml.FaceNetPerPairSemiHardMiner, pml.TripletMarginLoss]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "distance",
    [
        distances.LpDistance(p=1),
        distances.LpDistance(power=3),
        distances.DotProductSimilarity(normalize_embeddings=False),  # no Euclidean distance behind it
        distances.CosineSimilarity(power=2),
        distances.SNRDistance(),
    ],
    ids=["p1", "power3", "dot", "cosine_power2", "snr"],
)
def test_unfusable_distance_raises(cls, distance):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: distance .* cannot be fused"):
        cls(distance=distance)


def test_distance_swapped_after_construction_raises_at_call():
    miner = pml.TripletMarginMiner()
    miner.distance = distances.LpDistance(p=1)
    with pytest.raises(ValueError, match="distance LpDistance"):
        miner(*batch())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(swap=True), "swap"),
        (dict(smooth_loss=True), "smooth_loss"),
        (dict(triplets_per_anchor=5), "triplets_per_anchor"),
        (dict(margin=-0.1), "margin"),
        (dict(margin=float("nan")), "margin"),
    ],
)
def test_loss_unsupported_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"TripletMarginLoss: {name}"):
        pml.TripletMarginLoss(**kwargs)


def test_miner_arguments():
    with pytest.raises(ValueError, match="type_of_triplets"):
        pml.TripletMarginMiner(type_of_triplets="semi-hard")
    with pytest.raises(ValueError, match="TripletMarginMiner: margin"):
        pml.TripletMarginMiner(margin=-1)
    with pytest.raises(ValueError, match="allowed_pos_range"):
        pml.BatchHardMiner(allowed_pos_range=(0, 1))
    with pytest.raises(ValueError, match="fallback"):
        pml.FaceNetPerPairSemiHardMiner(fallback="hardest")


def test_unfusable_reducer_without_indices():
    emb, labels = batch()
    loss = pml.TripletMarginLoss(reducer=reducers.ThresholdReducer(low=0.1))
    with pytest.raises(ValueError, match="reducer ThresholdReducer cannot be fused"):
        loss(emb, labels)


@pytest.mark.parametrize("make", [pml.TripletMarginMiner, pml.BatchHardMiner, pml.TripletMarginLoss])
def test_bad_inputs(make):
    obj = make()
    name = make.__name__
    emb, labels = batch(b=10)
    with pytest.raises(TypeError, match=f"{name}: labels must be an integer tensor"):
        obj(emb, labels.double())
    with pytest.raises(TypeError, match=f"{name}: embeddings must be floating point"):
        obj(labels.view(-1, 1), labels)
    with pytest.raises(ValueError, match=f"{name}: embeddings must be 2-D"):
        obj(emb[:, 0].contiguous(), labels)
    with pytest.raises(ValueError, match=f"{name}: embeddings has width 0"):
        obj(emb[:, :0], labels)
    bad = emb.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=f"{name}: embeddings contains NaN"):
        obj(bad, labels)
    with pytest.raises(ValueError, match="Number of embeddings must equal number of labels"):  # PML's own check
        obj(emb, labels[:-1])
    ref_emb, ref_labels = batch(b=7, d=emb.shape[1] + 1)
    with pytest.raises(ValueError, match=f"{name}: ref_emb has width"):
        obj(emb, labels, ref_emb=ref_emb, ref_labels=ref_labels)


def test_bad_indices_tuple():
    emb, labels = batch(b=10)
    loss = pml.TripletMarginLoss()
    a = torch.tensor([0, 1])
    with pytest.raises(IndexError, match=r"indices_tuple\[2\] must lie in \[0, 10\)"):
        loss(emb, labels, (a, a + 1, torch.tensor([2, 10])))
    with pytest.raises(ValueError, match="different lengths"):
        loss(emb, labels, (a, a, a[:1]))
    with pytest.raises(TypeError, match=r"indices_tuple\[1\] must be an integer tensor"):
        loss(emb, labels, (a, a.double(), a))
    with pytest.raises(ValueError, match="labels and indices_tuple cannot both be None"):  # PML's own check
        loss(emb)


def test_int32_and_uint8_labels():
    emb, labels = batch(b=20)
    want = pml.TripletMarginMiner(0.3, "all")(emb, labels)
    for dtype in (torch.int32, torch.uint8, torch.int16):
        got = pml.TripletMarginMiner(0.3, "all")(emb, labels.to(dtype))
        assert all(torch.equal(g, w) for g, w in zip(got, want))


_BLOCK_PML = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'pytorch_metric_learning':
            raise ImportError('No module named ' + repr(name))
sys.meta_path.insert(0, Block())
import facenet_ext  # the core needs no PML
try:
    import facenet_ext.pml
except ImportError as e:
    print(e)
else:
    print('imported')
"""


def test_import_without_pml_names_the_extra():
    out = subprocess.run([sys.executable, "-c", _BLOCK_PML], capture_output=True, text=True, check=True)
    assert "facenet_ext[pml]" in out.stdout and "pytorch-metric-learning" in out.stdout
