"""The probe's loss and gradient as sums whose bits do not depend on how rows are split over processes.

Exactness contract: :func:`loss_and_gradient` gives the same bits on one process holding every
row as the all-reduced result of ``W`` processes holding rows ``index % W == rank`` (what a
``DistributedSampler`` deals them), whenever ``W`` divides :data:`GROUPS` (1, 2, 4 or 8), and
whatever the thread count. So a 2-process probe chooses the same C and fits the same weights as
one process. Other process counts give the same sums up to rounding.

How: every row belongs to group ``index % GROUPS``, which one process holds whole. A group's
rows, in index order, are cut into at least two equal chunks (zero rows pad the last), and
each chunk's sums are one batched product (``bmm``; a batch is never split over threads, which a
plain matrix product's long reduction is). Chunks add up in order (``cumsum``), groups in order
after the all-reduce; a group a process lacks is exact zeros there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributed import all_reduce

__all__ = ["GROUPS", "RowChunks", "chunk_rows", "loss_and_gradient"]

GROUPS = 8
# Rows per chunk at most: bounds a group's [chunks, classes, dims] partial sums in memory.
CHUNK_ROWS = 8192


@dataclass
class RowChunks:
    """A process's rows, per group it holds: ``x`` ``[chunks, R, D]``, ``target`` and ``valid``
    (1 for a row, 0 for padding) ``[chunks, R]``."""

    groups: list[int]
    x: list[torch.Tensor]
    target: list[torch.Tensor]
    valid: list[torch.Tensor]


def chunk_rows(x: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> RowChunks:
    """Regroup rows ``x`` ``[N, D]`` with class positions ``target`` and dataset keys ``index``."""
    index = index.to(x.device).long()
    target = target.to(x.device)
    out = RowChunks([], [], [], [])
    for group in range(GROUPS):
        rows = torch.nonzero(index % GROUPS == group, as_tuple=False).flatten()
        if rows.numel() == 0:
            continue
        rows = rows[torch.argsort(index[rows])]
        chunks = max(2, -(-rows.numel() // CHUNK_ROWS))
        size = -(-rows.numel() // chunks)
        pad = chunks * size - rows.numel()
        out.groups.append(group)
        out.x.append(torch.cat([x[rows], x.new_zeros(pad, x.shape[1])]).view(chunks, size, x.shape[1]))
        out.target.append(torch.cat([target[rows], target.new_zeros(pad)]).view(chunks, size))
        out.valid.append(torch.cat([x.new_ones(rows.numel()), x.new_zeros(pad)]).view(chunks, size))
    return out


def loss_and_gradient(chunks: RowChunks, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``[sum_i CE_i, d/dW (K x D, flat), d/db (K)]`` over every process's rows, float64.

    ``weight`` ``[K, D]`` and ``bias`` ``[K]`` in the features' dtype. A collective under DDP.
    """
    k, d = weight.shape
    size = 1 + k * d + k
    device = weight.device
    sums = torch.zeros(GROUPS, size, dtype=torch.float64, device=device)
    for group, xb, tb, vb in zip(chunks.groups, chunks.x, chunks.target, chunks.valid, strict=True):
        logits = torch.baddbmm(bias, xb, weight.T.expand(len(xb), d, k))
        log_p = torch.log_softmax(logits, dim=2)
        nll = -(log_p.gather(2, tb[..., None]).squeeze(2) * vb)
        residual = log_p.exp_()
        residual.scatter_add_(2, tb[..., None], -vb[..., None])
        residual.mul_(vb[..., None])  # padding rows add exact zeros
        parts = torch.cat(
            [
                nll.double().cumsum(1)[:, -1:],
                torch.bmm(residual.transpose(1, 2), xb).flatten(1).double(),
                residual.double().cumsum(1)[:, -1],
            ],
            dim=1,
        )
        sums[group] = parts.cumsum(0)[-1]
    return all_reduce(sums).cumsum(0)[-1]
