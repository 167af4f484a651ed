"""Training on Ray workers: disjoint shards of the input, one per worker, combined by
merging states (PCA, K-Means) or through a parameter server (Linear Learner, Factorization
Machines), with checkpoints that a rerun resumes from.

For example, ``streamfit.train("linear-learner", "data/train/", workers=8,
ray_address="auto")`` trains eight workers on the Ray cluster this machine belongs to.

Ray is imported only when a run asks for workers (``pip install 'streamfit[ray]'``).
See ``docs/scaling.md`` for the design and how it scales.
"""

from __future__ import annotations

from streamfit.distributed.options import DistributedOptions

__all__ = ["DistributedOptions"]
