"""Hypothesis strategies for labelled embedding batches full of edge cases.

Coordinates are small integers, so every squared distance is an integer <= 3 * 6**2 = 108: exact in every
dtype the ops compute in, ties everywhere, and margin tests that float32 and float64 decide alike
(test_miners.py checks that claim for all integer distances up to 300). A power-of-two scale keeps all of
this exact while pushing the norms towards overflow or underflow.
"""

import torch
from hypothesis import strategies as st

COORD = 3
MAX_DIM = 3
# Exponent ranges that keep scaled small integers, and their squared distances, normal numbers.
SCALE_EXPONENTS = {
    torch.float16: (-10, 10),
    torch.bfloat16: (-40, 40),
    torch.float32: (-40, 40),
    torch.float64: (-200, 200),
}
LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)
MARGINS = (0.0, 0.1, 0.2, 0.25, 0.5, 1.0, 1.5, 2.0)


@st.composite
def integer_points(draw, rows: int, dim: int):
    """rows x dim small-integer points: independent, drawn from a pool of 1-3 rows (duplicates), or all equal."""
    coord = st.integers(-COORD, COORD)
    row = st.lists(coord, min_size=dim, max_size=dim)
    kind = draw(st.sampled_from(["independent", "duplicates", "all_equal"]))
    if kind == "independent":
        pts = draw(st.lists(row, min_size=rows, max_size=rows))
    else:
        pool = draw(st.lists(row, min_size=1, max_size=1 if kind == "all_equal" else 3))
        pts = [pool[i] for i in draw(st.lists(st.integers(0, len(pool) - 1), min_size=rows, max_size=rows))]
    return torch.tensor(pts, dtype=torch.float64).reshape(rows, dim)


@st.composite
def labelled_batches(draw, max_batch: int = 14, dtype: torch.dtype | None = None, scaled: bool = True):
    """(emb, labels): B in [1, max_batch] (B = 1 included), 1-4 identities (one identity and identities with
    a single image included), small-integer coordinates times 2**k, any float dtype and integer label dtype."""
    batch = draw(st.integers(1, max_batch))
    dim = draw(st.integers(1, MAX_DIM))
    dtype = dtype or draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    lo, hi = SCALE_EXPONENTS[dtype]
    k = draw(st.integers(lo, hi)) if scaled and draw(st.booleans()) else 0
    emb = (draw(integer_points(batch, dim)) * 2.0**k).to(dtype)
    identities = draw(st.integers(1, 4))
    label_dtype = draw(st.sampled_from(LABEL_DTYPES))
    labels = torch.tensor(
        draw(st.lists(st.integers(0, identities - 1), min_size=batch, max_size=batch)), dtype=label_dtype
    )
    return emb, labels, k
