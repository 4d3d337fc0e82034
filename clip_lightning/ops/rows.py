"""Row-wise products and one-query attention whose per-sample results ignore the batch size.

BLAS and oneDNN pick special kernels for matrices of very few rows (fp32 with fewer than 12,
here), whose sums round differently; the fused attention kernel splits a single query's work by
thread count; and matmuls over strided views round by their layout. So a sample's features would
depend on how many others share its batch, and 2-process DDP would not equal one process.

Exactness contract: :func:`on_rows` computes exactly what ``fn`` computes on at least
:data:`MIN_ROWS` rows, and :func:`attend_one` is plain matmuls on contiguous tensors with an
fp32 softmax: each sample's result is bitwise independent of the batch size and of the thread
count (as far as ``fn`` is row-wise), on CPU; on GPUs no such guarantee is made. Values equal
``F.scaled_dot_product_attention`` up to summation order. Both work with gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["MIN_ROWS", "attend_one", "on_rows"]

# Above the row counts whose kernels round differently (see the module docstring).
MIN_ROWS = 16


def on_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` (row-wise) on ``[N, W]`` rows, padded with zero rows to at least :data:`MIN_ROWS`."""
    n = x.shape[0]
    if n >= MIN_ROWS:
        return fn(x)
    return fn(F.pad(x, (0, 0, 0, MIN_ROWS - n)))[:n]


def attend_one(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention of one query per sequence and head: ``q [N, H, 1, D]``, ``k, v [N, H, L, D]``.

    ``visible`` (``[N, L]``, bool) masks keys out. Returns ``[N, H, 1, D]``.
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.contiguous().transpose(-1, -2))
    if visible is not None:
        scores = scores.masked_fill(~visible[:, None, None, :], float("-inf"))
    weights = scores.float().softmax(dim=-1).to(v.dtype)  # fp32 softmax, as the fused kernel
    return torch.matmul(weights, v.contiguous())
