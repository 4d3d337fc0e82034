"""Gathering per-sample outputs across processes, exactly once per dataset index."""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torchmetrics.utilities.distributed import gather_all_tensors

__all__ = [
    "all_reduce",
    "broadcast_from_zero",
    "dedup_by_index",
    "destroy_group_at_exit",
    "gather_by_index",
    "in_process_group",
    "local_only",
    "own_by_index",
    "raise_on_every_rank",
]


def in_process_group() -> bool:
    """Whether this process is one of several in an initialized process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


_destroy_registered = False


def destroy_group_at_exit() -> None:
    """Destroy the process groups when the interpreter exits, while Python is still whole.

    Gloo's threads keep finished collectives' work (and their tensors) until the group is freed;
    freed only during interpreter finalization, that aborts the process ("terminate called
    without an active exception") in about one exit in three. Lightning registers this for NCCL
    only. Registered once; a group the user destroyed first is left alone.
    """
    global _destroy_registered
    if not _destroy_registered:
        _destroy_registered = True
        atexit.register(_destroy_if_initialized)


def _destroy_if_initialized() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def raise_on_every_rank(error: Exception | None) -> None:
    """Raise the lowest rank's ``error`` on every process if any process has one; a collective.

    For failures only some processes see (``prepare_data`` runs on each node's first process):
    the others would wait at the next collective until the failed peer's exit cut them off.
    """
    if in_process_group():
        errors: list[Exception | None] = [None] * dist.get_world_size()
        dist.all_gather_object(errors, error)
        error = next((e for e in errors if e is not None), None)
    if error is not None:
        raise error


def dedup_by_index(index: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sort by ``index`` and keep one row per index (the first seen).

    Distributed samplers pad the last batches with repeated samples so every process gets
    the same count; those repeats would otherwise be counted twice.
    """
    order = torch.argsort(index, stable=True)
    index = index[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return (index[keep], *(v[order][keep] for v in values))


def gather_by_index(
    index: torch.Tensor, *values: torch.Tensor, device: torch.device | None = None
) -> tuple[torch.Tensor, ...]:
    """All processes' rows (uneven counts allowed), deduplicated and in index order, on CPU.

    ``device`` is where the collective runs (the GPU under NCCL); without a process group
    this only deduplicates.
    """
    if in_process_group():
        gathered = []
        for tensor in (index, *values):
            parts = gather_all_tensors(tensor.to(device) if device is not None else tensor)
            gathered.append(torch.cat([p.cpu() for p in parts]))
        index, *rest = gathered
        values = tuple(rest)
    return dedup_by_index(index.cpu(), *(v.cpu() for v in values))


_alone = False


@contextmanager
def local_only() -> Iterator[None]:
    """Within it, :func:`all_reduce` and :func:`broadcast_from_zero` act as without a group:
    for work one process does alone (a fit on features gathered to rank 0)."""
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``tensor`` summed (``op="sum"``) or maxed (``"max"``) over processes; itself without a group.

    A collective. The probe's solver sums its loss and gradient with it at every L-BFGS
    evaluation: ring all-reduces give every process the same bits, so all take the same steps.
    """
    if in_process_group() and not _alone:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor


def broadcast_from_zero(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``tensor`` on every process (in place); itself without a group. A collective."""
    if in_process_group() and not _alone:
        dist.broadcast(tensor, src=0)
    return tensor


def own_by_index(
    index: torch.Tensor, *values: torch.Tensor, device: torch.device | None = None
) -> tuple[torch.Tensor, ...]:
    """This process's share of the rows, in index order: each index kept by one process only.

    Deduplicates locally, then drops indices a lower rank also holds (samplers pad with other
    processes' samples). Only the indices cross processes (a collective); the values stay put.
    """
    index, *rest = dedup_by_index(index, *values)
    if in_process_group():
        parts = gather_all_tensors(index.to(device) if device is not None else index)
        lower = parts[: dist.get_rank()]
        if lower:
            keep = ~torch.isin(index, torch.cat([p.to(index.device) for p in lower]))
            index, rest = index[keep], [v[keep] for v in rest]
    return (index, *rest)
