"""Per-process feature shares and the feature cache: one merged file, written and read without gathering.

A cache entry holds a split's per-sample features in index order (``index``, ``labels``,
``features``), the same file whatever the number of processes. Under DDP it is written in
chunks of rows (each chunk gathered to rank 0 and appended), and each process reads back only
its own rows (``rank, rank + world, ...``) through a memory map: no process ever holds the whole
split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..distributed import all_reduce, gather_by_index, in_process_group
from .cache import FeatureCache, read_rows

__all__ = ["cached_share", "save_merged"]

# Rows per chunk of a streamed write: bounds what rank 0 holds at once (16k x 2048 floats: 128 MB).
CHUNK_ROWS = 16384


def _rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if in_process_group() else (0, 1)


def save_merged(
    cache: FeatureCache,
    key: dict[str, Any],
    index: torch.Tensor,
    labels: torch.Tensor,
    features: torch.Tensor,
) -> None:
    """Write every process's share as one entry (a collective; rank 0 writes).

    Indices and labels (small) are gathered whole; features go through in chunks of rows.
    """
    rank, _ = _rank_world()
    all_index, all_labels = gather_by_index(index, labels, device=index.device)
    n = len(all_index)
    # A process whose share is empty has no feature width of its own.
    width = torch.tensor([features.shape[1] if features.ndim == 2 else 0], device=index.device)
    dims = int(all_reduce(width, op="max"))

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, n, CHUNK_ROWS):
            low, high = all_index[start], all_index[min(start + CHUNK_ROWS, n) - 1]
            mine = (index >= low) & (index <= high)
            _, rows = gather_by_index(index[mine], features[mine].float(), device=index.device)
            yield rows.numpy()

    if rank == 0:
        arrays = {"index": all_index.numpy(), "labels": all_labels.numpy().astype(np.int64)}
        cache.save_streamed(key, arrays, ("features", np.dtype(np.float32), (n, dims), chunks()))
    else:
        for _ in chunks():  # the same collectives as rank 0's writer
            pass


def cached_share(
    cache: FeatureCache, key: dict[str, Any], device: torch.device
) -> dict[str, np.ndarray] | None:
    """This process's rows of a cached split (``rank::world``); None on every process unless all
    of them find it (nodes may not share the cache folder). A collective on ``device``."""
    rank, world = _rank_world()
    hit = cache.peek(key)
    found = all_reduce(
        torch.tensor([int(hit is not None)], device=device),
    )
    if int(found) != world or hit is None:
        return None
    path, n = hit
    rows = np.arange(rank, n, world)
    return {
        "index": read_rows(path, "index", rows),
        "labels": read_rows(path, "labels", rows),
        "features": read_rows(path, "features", rows),
    }
