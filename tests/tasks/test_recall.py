"""Blocked recall@k: equal to brute force, to itself in any blocks and shares, in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clip_lightning.tasks.recall import BlockedRecall, blocked_topk, hits_at_k, recall_at_k, retrieval_recall


def _unit(n: int, d: int = 32, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _brute_topk(queries: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One full score matrix, sorted best first with ties by lower key index (a stable sort)."""
    scores, order = (queries @ keys.T).sort(dim=1, descending=True, stable=True)
    return scores[:, :k], order[:, :k]


def _clip_benchmark_recall(scores: torch.Tensor, positive: torch.Tensor, k: int) -> float:
    """CLIP_benchmark's recall@k: a query hits when its top k hold a positive (full matrix, topk)."""
    top = scores.topk(k, dim=1).indices
    return float((positive.gather(1, top).sum(dim=1) > 0).double().mean())  # CB: float32 mean


@pytest.mark.parametrize("block_size", [1, 16, 37, 250, 10_000])
@pytest.mark.parametrize("query_block", [1, 16, 100, 1000])
def test_blocked_topk_is_bitwise_the_full_matrix_sorted(block_size: int, query_block: int) -> None:
    queries, keys = _unit(130), _unit(250, seed=1)
    keys[200] = keys[7]  # duplicate keys tie exactly: the lower index must come first
    keys[90] = keys[7]
    scores, top = blocked_topk(queries, keys, 12, block_size, query_block)
    ref_scores, ref_top = _brute_topk(queries, keys, 12)
    assert torch.equal(top, ref_top)
    assert torch.equal(scores, ref_scores)
    rows = (top == 7).any(dim=1)
    assert rows.any()  # the tie happens and is broken by index: 7, then 90, then 200
    for row in torch.nonzero(rows).flatten():
        where = [int(torch.nonzero(top[row] == key)[0]) for key in (7, 90, 200) if (top[row] == key).any()]
        assert where == sorted(where)


def test_query_shares_and_block_sizes_give_bitwise_the_same_topk() -> None:
    """What two processes (uneven shares, any chunking) compute equals one process's."""
    queries, keys = _unit(301, d=64), _unit(1500, d=64, seed=2)
    _, whole = blocked_topk(queries, keys, 10, block_size=1500)
    for cut in (1, 150, 300):
        first = blocked_topk(queries[:cut], keys, 10, block_size=64)[1]
        second = blocked_topk(queries[cut:], keys, 10, block_size=64)[1]
        assert torch.equal(torch.cat([first, second]), whole)


def test_recall_equals_clip_benchmarks_brute_force_both_ways() -> None:
    images, captions = _unit(40, seed=3), _unit(200, seed=4)
    owner = torch.arange(200) % 40
    captions = F.normalize(captions + 0.5 * images[owner], dim=-1)  # positives score higher: hits vary
    ks = [1, 5, 10]
    by_text = retrieval_recall(captions, images, owner, torch.arange(40), ks, block_size=16)
    by_image = retrieval_recall(images, captions, torch.arange(40), owner, ks, block_size=16)
    positive = owner[:, None] == torch.arange(40)[None, :]  # [captions, images]
    scores = captions @ images.T
    for k in ks:
        assert by_text[k] == _clip_benchmark_recall(scores, positive, k)
        assert by_image[k] == _clip_benchmark_recall(scores.T, positive.T, k)
    assert 0 < by_text[1] < by_text[10] <= 1 and 0 < by_image[1] < 1


def test_hits_count_any_positive_within_k() -> None:
    top = torch.tensor([[3, 1, 2], [0, 2, 1], [1, 3, 0]])
    key_group = torch.tensor([0, 0, 1, 2])  # keys 0 and 1 belong to group 0
    hits = hits_at_k(top, torch.tensor([0, 1, 5]), key_group, [1, 2, 3])
    assert hits.tolist() == [[False, True, True], [False, True, True], [False, False, False]]
    assert recall_at_k(hits, [1, 2, 3]) == {1: 0.0, 2: 2 / 3, 3: 2 / 3}


def test_class_form_accumulates_batches_and_counts_each_index_once() -> None:
    images, captions = _unit(30, seed=5), _unit(90, seed=6)
    owner = torch.arange(90) // 3
    expected = retrieval_recall(captions, images, owner, torch.arange(30), [1, 5])
    metric = BlockedRecall(images, torch.arange(30), ks=[1, 5], block_size=7)
    for part in torch.arange(90).split(25):
        metric.update(captions[part], owner[part], part)
    metric.update(captions[:4], owner[:4], torch.arange(4))  # a sampler's padding repeats these
    assert metric.compute() == expected
    metric.reset()
    assert metric.compute() == {1: 0.0, 5: 0.0}


def test_fewer_keys_than_k_and_bad_input() -> None:
    scores, top = blocked_topk(_unit(5), _unit(3, seed=1), 10)
    assert top.shape == (5, 3) and scores.shape == (5, 3)
    keys = _unit(20, seed=1)
    keys[11, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        blocked_topk(_unit(5), keys, 3, block_size=4)
    with pytest.raises(ValueError, match="at least 1"):
        blocked_topk(_unit(5), keys, 0)
    with pytest.raises(ValueError, match="positive integers"):
        BlockedRecall(keys, torch.arange(20), ks=[0])


_PEAK = """
import re, sys
from pathlib import Path
import torch, torch.nn.functional as F
from clip_lightning.tasks.recall import blocked_topk
n, block = int(sys.argv[1]), int(sys.argv[2])
queries = F.normalize(torch.randn(256, 64), dim=-1)
keys = F.normalize(torch.randn(n, 64), dim=-1)
status = lambda field: int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
before = status("VmRSS")
blocked_topk(queries, keys, 10, block_size=block)
print(status("VmHWM") - before)
"""


def _scoring_peak_kib(num_keys: int, block_size: int) -> int:
    """Peak resident memory (KiB) of scoring 256 queries against ``num_keys`` keys, above what the
    inputs take: a fresh process (Linux's VmHWM, reset just before scoring)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(num_keys), str(block_size)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc"
)
def test_scoring_memory_does_not_grow_with_the_number_of_keys() -> None:
    """256 queries against 20k and 200k keys in blocks of 2048: the working set stays one block's
    (256 x 2048 fp32 scores = 2 MiB, plus ~12 MiB of code paged in); one block of 200k keys (the full score matrix) takes 200 MiB,
    which shows the measurement sees a full matrix."""
    small, large = _scoring_peak_kib(20_000, 2048), _scoring_peak_kib(200_000, 2048)
    full = _scoring_peak_kib(200_000, 200_000)
    assert full > 190 * 1024, full
    assert large < 32 * 1024, (small, large)  # libraries paged in on first use take ~12 MiB
    assert abs(large - small) < 4 * 1024, (small, large)
