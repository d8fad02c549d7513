"""Shared inputs for the facenet_ext.pml tests: random batches, PML's distance objects, odd layouts."""

import torch
from pytorch_metric_learning import distances

# Every distance facenet_ext.pml fuses, with the test id it gets.
DISTANCES = {
    "lp_normalized": lambda: distances.LpDistance(),  # PML's default
    "lp_raw": lambda: distances.LpDistance(normalize_embeddings=False),
    "lp_squared": lambda: distances.LpDistance(power=2),
    "lp_squared_raw": lambda: distances.LpDistance(normalize_embeddings=False, power=2),
    "cosine": lambda: distances.CosineSimilarity(),
}


def batch(b: int = 48, d: int = 8, classes: int = 6, dtype=torch.float64, device="cpu"):
    """Random embeddings [b, d] and integer labels with ``classes`` identities (each with >= 2 members
    when b allows), so every kind of triplet occurs."""
    emb = torch.randn(b, d, dtype=dtype, device=device)
    labels = torch.arange(b, device=device) % classes
    return emb, labels[torch.randperm(b, device=device)]


def layouts(t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values as ``t`` in other memory layouts: contiguous, transposed storage, a strided slice
    of a wider tensor, and (1-D) every other element of a longer tensor."""
    out = {"contiguous": t.contiguous()}
    if t.dim() == 2:
        out["transposed"] = t.T.contiguous().T
        wide = torch.zeros(t.shape[0], 2 * t.shape[1], dtype=t.dtype, device=t.device)
        wide[:, ::2] = t
        out["column_slice"] = wide[:, ::2]
    else:
        long = torch.zeros(2 * t.shape[0], dtype=t.dtype, device=t.device)
        long[::2] = t
        out["strided"] = long[::2]
    return out


def assert_same_triplets(ours, theirs):
    """Equal (anchor, positive, negative), element by element and in the same order."""
    assert len(ours) == len(theirs) == 3
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == torch.int64, f"indices_tuple[{i}] has dtype {a.dtype}"
        assert torch.equal(a.cpu(), b.cpu()), f"indices_tuple[{i}] differs ({a.shape[0]} vs {b.shape[0]} triplets)"
