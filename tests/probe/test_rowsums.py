"""The probe's grouped sums: the same bits however rows are dealt to processes, and the right values."""

from __future__ import annotations

import pytest
import torch

from clip_lightning.probe import rowsums
from clip_lightning.probe.rowsums import GROUPS, chunk_rows, group_sums, loss_and_gradient


def _problem(n: int = 1003, d: int = 48, k: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    target = torch.randint(0, k, (n,), generator=g)
    # sparse, unordered dataset keys, as a few-shot draw or a refit's train + val hand over
    index = torch.randperm(4 * n, generator=g)[:n]
    # each class's weights, its bias last
    theta = torch.cat([torch.randn(k, d, generator=g) * 0.2, torch.randn(k, 1, generator=g)], dim=1)
    return x, target, index, theta


def _dealt(x, target, index, theta, world: int) -> torch.Tensor:
    """What ``world`` processes holding ``index % world == rank`` all-reduce, summed here in rank order."""
    counts = torch.bincount(index % GROUPS, minlength=GROUPS)
    total = torch.zeros(GROUPS, 1 + theta.numel(), dtype=torch.float64)
    for rank in range(world):
        mine = index % world == rank
        total += group_sums(chunk_rows(x[mine], target[mine], index[mine], counts), theta)
    return total.cumsum(0)[-1]


@pytest.mark.parametrize("world", [2, 4, 8])
def test_processes_dealt_rows_by_index_sum_the_same_bits_as_one(world: int) -> None:
    x, target, index, theta = _problem()
    alone = loss_and_gradient(chunk_rows(x, target, index), theta)
    assert torch.equal(_dealt(x, target, index, theta, world), alone)


def test_the_sums_do_not_depend_on_the_thread_count_or_on_batching_groups() -> None:
    x, target, index, theta = _problem(n=2500, seed=1)
    chunks = chunk_rows(x, target, index)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = group_sums(chunks, theta)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(group_sums(chunks, theta), one_thread)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rowsums, "BATCH_ELEMENTS", 1)  # one group per batched product
        assert torch.equal(group_sums(chunks, theta), one_thread)


def test_the_sums_are_the_summed_cross_entropy_and_its_gradient() -> None:
    x, target, index, theta = _problem(seed=2)
    t64 = theta.double().requires_grad_()
    loss = torch.nn.functional.cross_entropy(x.double() @ t64[:, :-1].T + t64[:, -1], target, reduction="sum")
    loss.backward()
    assert t64.grad is not None
    expected = torch.cat([loss.detach()[None], t64.grad.flatten()])
    got = loss_and_gradient(chunk_rows(x, target, index), theta)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_a_process_lacking_a_group_adds_exact_zeros_there() -> None:
    x, target, index, theta = _problem(n=40)
    mine = index % GROUPS < 3
    sums = group_sums(chunk_rows(x[mine], target[mine], index[mine]), theta)
    assert sums[3:].count_nonzero() == 0 and bool((sums[:3, 0] > 0).all())


def test_processes_holding_parts_of_groups_pad_only_their_parts() -> None:
    # 3 processes (3 does not divide GROUPS): every group is split over them
    x, target, index, theta = _problem(n=3000, seed=3)
    parts = [index % 3 == rank for rank in range(3)]
    counts = torch.stack([torch.bincount(index[p] % GROUPS, minlength=GROUPS) for p in parts]).amax(0)
    total = torch.zeros(GROUPS, 1 + theta.numel(), dtype=torch.float64)
    for mine in parts:
        chunks = chunk_rows(x[mine], target[mine], index[mine], counts)
        # its own rows and a little padding, not every process's rows of its groups
        assert chunks.x.shape[0] * chunks.x.shape[1] < 1.2 * int(mine.sum())
        total += group_sums(chunks, theta)
    alone = loss_and_gradient(chunk_rows(x, target, index), theta)
    torch.testing.assert_close(total.cumsum(0)[-1], alone, rtol=1e-5, atol=1e-4)


def test_blocks_of_rows_group_as_the_joined_rows_do() -> None:
    # a refit hands train and val features as two blocks, which are grouped without joining them
    x, target, index, _ = _problem(n=1000, seed=4)
    joined = chunk_rows(x, target, index, dtype=torch.float64)
    blocks = chunk_rows([x[:700], x[700:]], target, index, dtype=torch.float64)
    assert blocks.groups == joined.groups and blocks.chunks == joined.chunks
    assert blocks.x.dtype == torch.float64
    assert torch.equal(blocks.x, joined.x) and torch.equal(blocks.target, joined.target)
    assert int(blocks.valid.sum()) == len(x)
