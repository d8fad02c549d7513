"""Drop-ins for pytorch-metric-learning (PML) users: change the import, keep the loop.

>>> from pytorch_metric_learning import distances, losses, miners        # before
>>> from facenet_ext.pml import TripletMarginMiner, TripletMarginLoss     # after   # doctest: +SKIP
>>> miner = TripletMarginMiner(margin=0.2, type_of_triplets="semihard")              # doctest: +SKIP
>>> loss = TripletMarginLoss(margin=0.2)(emb, labels, miner(emb, labels))           # doctest: +SKIP

The classes subclass PML's own (PML is the optional extra ``pml``: ``pip install 'facenet_ext[pml]'``),
take its arguments and distance objects, return its ``indices_tuple`` and equal it on the same inputs;
underneath run our fused ops. docs/pml.md is the migration guide (what maps to what, and what differs).
"""

from . import _require  # noqa: F401  (first: one clear ImportError when PML is missing)
from .loss import TripletMarginLoss
from .miners import BatchHardMiner, FaceNetPerPairSemiHardMiner, TripletMarginMiner

__all__ = ["TripletMarginMiner", "BatchHardMiner", "FaceNetPerPairSemiHardMiner", "TripletMarginLoss"]
