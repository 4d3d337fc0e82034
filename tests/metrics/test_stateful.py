"""The torchmetrics classes: batch by batch equal to the functions, and 2 processes equal to one."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clip_lightning.metrics import (
    BinaryROCAUC,
    MeanAveragePrecision11Point,
    MeanPerClassRecall,
    TopKAccuracy,
    binary_roc_auc,
    mean_average_precision_11point,
    mean_per_class_recall,
    topk_accuracy,
)

N = 101  # odd, so two processes hold different counts


def _data() -> dict[str, torch.Tensor]:
    """Scores with ties for a 7-class, a multi-label and a binary problem (the same on every process)."""
    gen = torch.Generator().manual_seed(0)
    return {
        "scores": torch.randint(0, 4, (N, 7), generator=gen).float(),
        "target": torch.randint(0, 7, (N,), generator=gen),
        "ml_scores": torch.randn(N, 5, generator=gen).round(decimals=1),
        "ml_target": (torch.rand(N, 5, generator=gen) < 0.3).long(),
        "bin_scores": torch.randn(N, 2, generator=gen).round(),
        "bin_target": torch.randint(0, 2, (N,), generator=gen),
    }


def _expected(d: dict[str, torch.Tensor]) -> dict[str, float]:
    return {
        "top1": topk_accuracy(d["scores"], d["target"], 1),
        "top5": topk_accuracy(d["scores"], d["target"], 5),
        "recall": mean_per_class_recall(d["scores"], d["target"], 7),
        "map": mean_average_precision_11point(d["ml_scores"], d["ml_target"]),
        "auc": binary_roc_auc(d["bin_scores"], d["bin_target"]),
    }


def _compute(d: dict[str, torch.Tensor], batches: list[torch.Tensor], with_index: bool) -> dict[str, float]:
    """Every metric class fed ``batches`` (row indices of ``d``), then computed (synced under DDP)."""
    metrics = {
        "top1": (TopKAccuracy(1), "scores", "target"),
        "top5": (TopKAccuracy(5), "scores", "target"),
        "recall": (MeanPerClassRecall(7), "scores", "target"),
        "map": (MeanAveragePrecision11Point(), "ml_scores", "ml_target"),
        "auc": (BinaryROCAUC(), "bin_scores", "bin_target"),
    }
    out = {}
    for name, (metric, scores, target) in metrics.items():
        for rows in batches:
            metric.update(d[scores][rows], d[target][rows], rows if with_index else None)
        out[name] = float(metric.compute())
    return out


def test_batches_equal_the_functions_and_repeats_count_once() -> None:
    d = _data()
    expected = _expected(d)
    batches = list(torch.arange(N).split(16))
    assert _compute(d, batches, with_index=False) == expected
    padded = [*batches, torch.tensor([0, 5, 100])]  # repeated samples, as a distributed sampler pads
    assert _compute(d, padded, with_index=True) == expected
    assert _compute(d, padded, with_index=False) != expected  # without indices, repeats count twice


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    d = _data()
    # DistributedSampler's deal of 101 samples: 51 each, rank 1's last one repeats sample 0;
    # batches of different sizes on the two processes.
    share = torch.cat([torch.arange(rank, N, 2), torch.tensor([0] if rank == 1 else [], dtype=torch.long)])
    padded = list(share.split(13 if rank == 0 else 20))
    unpadded = list(torch.arange(rank, N, 2).split(9))  # 51 and 50 samples, no repeats
    out[rank] = (_compute(d, padded, with_index=True), _compute(d, unpadded, with_index=False))
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_processes_equal_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
    expected = _expected(_data())
    for rank in (0, 1):
        padded, unpadded = out[rank]
        assert padded == expected  # exactly: same samples, any order and split, same bits
        assert unpadded == expected
