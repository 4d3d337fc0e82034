"""How a probe fit runs in its process: all its cores, and whether the test loop was cut short."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import torch

__all__ = ["every_core", "limited_batches"]


def limited_batches(trainer: L.Trainer) -> bool:
    """Whether test batches are cut: Lightning reads an int as a count of batches (1 = one batch)
    and only the float 1.0 as all of them."""
    limit = trainer.limit_test_batches
    return not (isinstance(limit, float) and limit == 1.0)


@contextmanager
def every_core() -> Iterator[None]:
    """Run the block with torch using every core this process may use."""
    # A CPU matmul's result depends on its thread count (the gradient's long reduction is split
    # across threads), and DDP leaves each process fewer threads: a fit that one process runs
    # alone uses them all, the same count a 1-process run uses, so both fit bit for bit alike.
    before = torch.get_num_threads()
    torch.set_num_threads(
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    try:
        yield
    finally:
        torch.set_num_threads(before)
