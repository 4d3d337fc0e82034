from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clip_lightning.distributed import dedup_by_index, gather_by_index


def test_dedup_keeps_first_of_each_index_in_order() -> None:
    index = torch.tensor([4, 0, 2, 0, 3, 1, 4])
    values = torch.tensor([40, 0, 20, 99, 30, 10, 98])
    idx, val = dedup_by_index(index, values)
    assert idx.tolist() == [0, 1, 2, 3, 4] and val.tolist() == [0, 10, 20, 30, 40]


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    # 7 samples over 2 ranks as DistributedSampler deals them: 0,2,4,6 | 1,3,5,0 (0 repeated)
    index = torch.tensor([0, 2, 4, 6]) if rank == 0 else torch.tensor([1, 3, 5, 0])
    feats = index.float()[:, None].repeat(1, 3) * 10
    # uneven shapes across ranks are allowed too
    if rank == 1:
        index, feats = index[:3], feats[:3]
    idx, got = gather_by_index(index, feats)
    out[rank] = (idx.tolist(), got[:, 0].tolist())
    dist.destroy_process_group()


@pytest.mark.ddp
def test_gather_by_index_two_processes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
    for rank in (0, 1):
        assert out[rank] == ([0, 1, 2, 3, 4, 5, 6], [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
