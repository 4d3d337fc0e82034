"""Inference speed-ups that keep the numerics, each module with its exactness contract.

:func:`accelerate` turns a reference CLIP model into the fast one in place; :mod:`.packed`
holds the packed oneDNN linears, :mod:`.rows` the batch-invariant row-wise helpers and
:mod:`.allocator` the process-wide heap setting of the ``clip-lightning`` command.
"""

from .allocator import keep_freed_memory
from .inference import accelerate
from .packed import PackedLinear, PackedWeights, clear_packed, packed_linears, packing_available
from .rows import MIN_ROWS, attend_one, on_rows

__all__ = [
    "MIN_ROWS",
    "PackedLinear",
    "PackedWeights",
    "accelerate",
    "attend_one",
    "clear_packed",
    "keep_freed_memory",
    "on_rows",
    "packed_linears",
    "packing_available",
]
