"""Retrieval recall@k: blocked similarities with a running top-k, in bounded memory.

A query is a hit at ``k`` when any of its positives is among its ``k`` best-scoring keys
(CLIP_benchmark's and the CLIP paper's recall@k); recall@k is the share of queries that hit. A pair
is positive when ``query_group[q] == key_group[key]``: for text->image the query group of a caption
is its image and the key group of an image its own index; for image->text the other way round.
A query without any positive never hits (CLIP_benchmark counts it the same way).

Scores are cosine similarities of L2-normalized fp32 embeddings, computed ``query_block`` queries
by ``block_size`` keys at a time; each key block's best ``k`` are merged into a running top-k, so
memory is ``O(query_block x block_size + block_size x D)`` (the BLAS's packed copy of a key block)
whatever the number of keys, plus the ``[Q, k]`` result.

Exactness contract:

* Ties are broken by the lower key index: each score is mapped to an int64 whose high half orders
  like the fp32 score (``-0.0`` counted as ``+0.0``) and whose low half is ``2**32 - 1 - key``, so
  every candidate is distinct and ``torch.topk`` has one answer on every device and in every
  block order (a block's float top-(k+1) picks its candidates; a row whose k-th and (k+1)-th
  scores tie is ranked in full by those int64 keys).
* Each score is an element of a ``[query_block, D] x [D, B]`` fp32 product of the same shape
  wherever its query and key sit (the last query chunk and key block are padded with zero rows;
  ``B = max(MIN_ROWS, min(block_size, num_keys))``). Queries split over processes, in any chunks,
  therefore get bitwise the scores one process gives them, and the same top-k, as long as the
  GEMM rounds an element independently of its row and column within one shape (MKL: tested here;
  no GPU has been available to test cuBLAS).
* Another ``block_size`` changes ``B``; the top-k stays bitwise the same where the GEMM rounds an
  element independently of ``B`` too: x86 MKL does for ``B >= MIN_ROWS`` (tested), GPUs promise
  nothing, and there a different block size can only swap keys whose scores differ by rounding.
* Embeddings must be finite (NaN has no order): :func:`blocked_topk` raises ValueError otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..distributed import gather_by_index
from ..ops import MIN_ROWS

__all__ = ["BlockedRecall", "blocked_topk", "hits_at_k", "recall_at_k", "retrieval_recall"]

_LOW = 0xFFFFFFFF  # the low 32 bits of a candidate key hold 2**32 - 1 - key index
_PAD = torch.iinfo(torch.int64).min  # a padded key column: below every real candidate


def _sortable(scores: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """int64 candidates ordered like (score, -key index): distinct, so top-k has one answer."""
    bits = (scores + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into +0.0
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # sign-magnitude -> two's-complement order
    return (bits << 32) | (_LOW - keys)


def _decode(candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    bits = candidates >> 32
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).int()
    return bits.view(torch.float32), _LOW - (candidates & _LOW)


def _block_best(scores: torch.Tensor, first: int, k: int) -> torch.Tensor:
    """The ``k`` best candidates of one block of scores (its keys numbered from ``first``).

    A float top-(k+1) finds them; where the k-th and (k+1)-th scores tie, torch.topk may keep
    either, so those rows are ranked again in full by (score, -key index).
    """
    columns = torch.arange(first, first + scores.shape[1], device=scores.device)
    if scores.shape[1] <= k:
        return _sortable(scores, columns.expand_as(scores))
    values, where = scores.topk(k + 1, dim=1)
    best = _sortable(values[:, :k], where[:, :k] + first)
    tied = torch.nonzero(values[:, k] == values[:, k - 1]).flatten()
    if tied.numel():
        best[tied] = _sortable(scores[tied], columns.expand(len(tied), -1)).topk(k, dim=1).values
    return best


@torch.no_grad()
def blocked_topk(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    block_size: int = 16384,
    query_block: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best keys of every query: ``(scores [Q, k'] fp32, key indices [Q, k'] int64)``.

    ``queries [Q, D]`` and ``keys [K, D]`` are L2-normalized embeddings (scores are their fp32 dot
    products), ``k' = min(k, K)``; rows are best first, ties by lower key index. Computed on
    ``queries``' device; see the module's exactness contract (for it, a query chunk is always
    ``query_block`` rows, zero-padded: keep it near or below the number of queries).
    """
    if k < 1 or block_size < 1 or query_block < 1:
        raise ValueError(
            f"k, block_size and query_block must be at least 1, got {k}, {block_size}, {query_block}"
        )
    device = queries.device
    queries = queries.float().contiguous()
    keys = keys.to(device=device, dtype=torch.float32).contiguous()
    num_queries, num_keys = queries.shape[0], keys.shape[0]
    k = min(k, num_keys)
    best = torch.empty(num_queries, k, dtype=torch.int64, device=device)
    if num_queries == 0 or k == 0:
        return torch.empty(num_queries, k, device=device), best
    width = max(MIN_ROWS, min(block_size, num_keys))
    rows = max(MIN_ROWS, query_block)
    for q0 in range(0, num_queries, rows):
        chunk = queries[q0 : q0 + rows]
        n = chunk.shape[0]
        _check_finite(chunk)
        if n < rows:  # the same product shape for every chunk (see the exactness contract)
            chunk = F.pad(chunk, (0, 0, 0, rows - n))
        running: torch.Tensor | None = None
        for k0 in range(0, num_keys, width):
            block = keys[k0 : k0 + width]
            real = block.shape[0]
            if q0 == 0:
                _check_finite(block)
            if real < width:
                block = F.pad(block, (0, 0, 0, width - real))
            top = _block_best((chunk @ block.T)[:n, :real], k0, k)  # padding rows and columns dropped
            merged = top if running is None else torch.cat([running, top], dim=1)
            running = merged.topk(min(k, merged.shape[1]), dim=1, sorted=False).values
        assert running is not None
        best[q0 : q0 + n] = running.sort(dim=1, descending=True).values
    return _decode(best)


def _check_finite(embeddings: torch.Tensor) -> None:
    # One float64 sum: NaN and inf propagate into it, and fp32 values cannot overflow it.
    if not bool(torch.isfinite(embeddings.sum(dtype=torch.float64))):
        raise ValueError("embeddings hold NaN or infinite values; they cannot be ranked")


def hits_at_k(
    topk_keys: torch.Tensor, query_group: torch.Tensor, key_group: torch.Tensor, ks: Sequence[int]
) -> torch.Tensor:
    """``[Q, len(ks)]`` bool: whether a positive key is among each query's first ``k`` (per ``k``)."""
    positive = key_group.to(topk_keys.device)[topk_keys] == query_group.to(topk_keys.device)[:, None]
    first_hit = torch.where(positive.any(dim=1), positive.int().argmax(dim=1), topk_keys.shape[1])
    return torch.stack([first_hit < k for k in ks], dim=1)


def recall_at_k(hits: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """The share of queries that hit, per ``k`` (``hits`` from :func:`hits_at_k`)."""
    count = max(1, hits.shape[0])
    return {k: int(hits[:, i].sum()) / count for i, k in enumerate(ks)}


def retrieval_recall(
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_group: torch.Tensor,
    key_group: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
    block_size: int = 16384,
    query_block: int = 256,
) -> dict[int, float]:
    """Recall@k of ``queries`` against ``keys`` (the functional form; one process)."""
    _, top = blocked_topk(queries, keys, max(ks), block_size, query_block)
    return recall_at_k(hits_at_k(top, query_group, key_group, ks), ks)


class BlockedRecall:
    """Recall@k over queries that arrive in batches, torchmetrics-style (``update``/``compute``/``reset``).

    The keys (all of them, the same on every process) are fixed at construction; each process
    ``update``s with its share of queries and their dataset indices; ``compute`` gathers every
    process's hits (a collective), counts each query index once, and returns ``{k: recall}``, the
    same on every process and equal to one process's (see the module's exactness contract).
    Only ``[queries, len(ks)]`` booleans are kept between updates.
    """

    def __init__(
        self,
        keys: torch.Tensor,
        key_group: torch.Tensor,
        ks: Sequence[int] = (1, 5, 10),
        block_size: int = 16384,
        query_block: int = 256,
    ) -> None:
        if not ks or min(ks) < 1:
            raise ValueError(f"recall k values must be positive integers, got {list(ks)}")
        self.keys, self.key_group = keys, key_group
        self.ks, self.block_size, self.query_block = list(ks), block_size, query_block
        self._index: list[torch.Tensor] = []
        self._hits: list[torch.Tensor] = []

    def update(self, queries: torch.Tensor, query_group: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Score ``queries`` (with their positives' group and dataset index); return their top-k keys."""
        _, top = blocked_topk(queries, self.keys, max(self.ks), self.block_size, self.query_block)
        self._index.append(index.long().cpu())
        self._hits.append(hits_at_k(top, query_group, self.key_group, self.ks).cpu())
        return top

    def compute(self, device: torch.device | None = None) -> dict[int, float]:
        """``{k: recall@k}`` over every process's queries, each index once; a collective."""
        index = torch.cat(self._index) if self._index else torch.empty(0, dtype=torch.long)
        hits = torch.cat(self._hits) if self._hits else torch.empty(0, len(self.ks), dtype=torch.bool)
        _, hits = gather_by_index(index, hits.to(torch.uint8), device=device)
        return recall_at_k(hits.bool(), self.ks)

    def reset(self) -> None:
        """Forget every update."""
        self._index.clear()
        self._hits.clear()
