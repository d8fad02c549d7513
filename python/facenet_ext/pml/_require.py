"""Import pytorch-metric-learning, or fail with one message that says how to get it."""

from __future__ import annotations

try:
    import pytorch_metric_learning  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "facenet_ext.pml needs pytorch-metric-learning, which is an optional extra of facenet_ext: "
        "install it with `pip install --no-build-isolation 'facenet_ext[pml]'` "
        "(or `pip install pytorch-metric-learning`)"
    ) from err
