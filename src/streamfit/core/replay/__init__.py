"""A replay reservoir: a fixed-capacity weighted sample of past examples, kept in a state.

Each offered item gets a key ``log(u) / w`` (``u`` uniform from the state's generator, ``w``
its weight): the order of Efraimidis and Spirakis' A-ES keys ``u ** (1 / w)``, kept in logs so
that large weights do not round every key to 1. The reservoir holds the items of highest key
that fit: in key order, as long as the running count (and for CSR rows the running non-zeros)
stays within the capacity. That set depends on the keys alone, not on the order items came
in, so a reservoir fed in batches equals one fed everything at once, and merging two
reservoirs (the union's top keys) equals one built on both inputs with the same keys.

An item once cut can never come back (everything of higher key stays), so any later item whose
key is below the highest key ever cut (``floor``) is dropped without looking further: once the
reservoir is full, most batches cost one comparison per row.

Two layouts, all allocated when the reservoir is created, so that memory never grows:

* **records**: fixed-shape named tensors per item (dense rows: ``features`` and ``labels``;
  DeepAR's windows: context, future, mask, ...);
* **csr**: sparse rows of any length in a packed buffer of non-zeros, with a slack of half
  the capacity so that evicted rows' holes are compacted away once in a while, not per batch.

Everything lives in the state under a prefix (``tensors["replay.*"]``, ``meta["replay"]``):
a saved and resumed reservoir is the uninterrupted one bit for bit.

>>> import torch
>>> from streamfit.core.batch import Batch
>>> from streamfit.core.state import State
>>> state = State("demo", {}, 2)
>>> res = create_rows(state, n_features=2, capacity_bytes=10 * 21)
>>> res.slots
10
>>> res.offer_batch(Batch(torch.arange(60.0).reshape(30, 2), torch.arange(30.0)))
>>> len(res), res.sample_batch(4).n_rows
(10, 4)
"""

from __future__ import annotations

from streamfit.core.replay.csr import CSRReservoir, create_csr, csr_capacity
from streamfit.core.replay.records import RecordReservoir, create_records, create_rows
from streamfit.core.replay.reservoir import Reservoir
from streamfit.core.state import State
from streamfit.errors import IncompatibleStateError

__all__ = [
    "CSRReservoir",
    "RecordReservoir",
    "Reservoir",
    "create_csr",
    "create_records",
    "create_rows",
    "csr_capacity",
    "open_reservoir",
]


def open_reservoir(state: State, prefix: str = "replay") -> RecordReservoir | CSRReservoir:
    """The reservoir ``state`` holds under ``prefix``."""
    meta = state.meta.get(prefix)
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind == "records":
        return RecordReservoir(state, prefix)
    if kind == "csr":
        return CSRReservoir(state, prefix)
    raise IncompatibleStateError(f"the state holds no replay reservoir under {prefix!r}")
