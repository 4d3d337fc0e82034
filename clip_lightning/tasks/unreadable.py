"""Images found unreadable while a stage runs, raised on every process at once.

The check before a run reads only file headers (unless ``--data.verify``), so a truncated file
is found when one process decodes it. Under DDP that process must not raise alone: at their
next collective the others would die on a closed connection (gloo) or wait until the process
group's timeout (NCCL). The DataModule's
``IndexedDataset`` marks such a sample instead (index ``-(i + 1)``, a blank image); the task
finds the marks among the indices it kept and :func:`raise_on_every_process` raises one error,
the same on every process, before any metric.
"""

from __future__ import annotations

import torch.distributed as dist
from torch.utils.data import Dataset

from ..distributed import in_process_group
from ..errors import UnreadableImageError

__all__ = ["raise_on_every_process", "read_error"]


def read_error(split: Dataset, name: str, position: int) -> str:
    """What reading sample ``position`` of split ``name`` says now: the data's own message, which
    names the file and the split (the sample is read again for it, in this process)."""
    try:
        split[position]
    except UnreadableImageError as err:
        return str(err)
    return (
        f"image {position} of the {name} split could not be read during the run but reads now: "
        "check the storage it lies on and run again"
    )


def raise_on_every_process(found: dict[tuple[str, int], str]) -> None:
    """One UnreadableImageError, the same on every process, naming what any process ``found``
    (``(split, position) -> message``); nothing when none found any. A collective."""
    found = dict(found)
    if in_process_group():  # called at a stage's end, which every process reaches
        parts: list[dict[tuple[str, int], str]] = [{} for _ in range(dist.get_world_size())]
        dist.all_gather_object(parts, found)
        for part in parts:  # samplers pad with repeats: two processes may find the same image
            found.update(part)
    order = {"train": 0, "val": 1, "test": 2}  # the splits' own order, then position in the split
    messages = [found[key] for key in sorted(found, key=lambda k: (order.get(k[0], 3), k))]
    if len(messages) == 1:
        raise UnreadableImageError(messages[0])
    if messages:
        listing = "".join(f"\n  {message}" for message in messages)
        raise UnreadableImageError(f"{len(messages)} images could not be read:{listing}")
