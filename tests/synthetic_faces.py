"""A tiny image-folder dataset for trainer tests: each identity a fixed random 16x16 pattern plus noise."""

import numpy as np
from PIL import Image


def write_faces(root, identities: int, images: int, seed: int = 0, prefix: str = "p"):
    rng = np.random.default_rng(seed)
    for i in range(identities):
        pattern = rng.integers(0, 256, (16, 16))
        (root / f"{prefix}{i}").mkdir()
        for j in range(images):
            pixels = np.clip(pattern + rng.normal(0, 30, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / f"{prefix}{i}" / f"img{j}.png")
    return root
