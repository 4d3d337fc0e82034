"""Retrieval at scale: blocked recall@k scoring (and embedding) throughput, and peak memory.

    python experiments/retrieval_benchmark.py [--captions 1000000] [--images 200000] [--dim 512]
        [--block-size 16384] [--query-block 256] [--brute-captions 20000] [--brute-images 4000]
        [--embed 64] [--threads 2] [--query-limit N]

Synthetic embeddings, seeded: ``images`` unit vectors, and ``captions`` = 5 per image, each its
image's vector plus Gaussian noise, normalized (so recall is neither 0 nor 1). Scoring both ways
(text->image: every caption against all images; image->text: every image against all captions)
runs through :func:`clip_lightning.tasks.recall.blocked_topk`; the script prints seconds, scored
pairs per second and the peak resident memory above the inputs (Linux VmHWM, reset before each
step), next to what one full score matrix would take.

At ``--brute-captions`` x ``--brute-images`` it also scores with one block (the whole matrix at
once, as open_clip's evaluation once did) and checks the blocked top-k equals a stable sort of
the full matrix, bitwise.

``--query-limit N`` scores only the first N queries each way (against all keys) and extrapolates
the time to all of them: the full 1M x 200k scoring takes hours on 2 CPU cores.

``--embed N``: times ViT-B/32 (random weights, this package's accelerated CPU model, fp32)
embedding N images and N captions, and extrapolates to the set's size.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from clip_lightning.tasks.recall import blocked_topk, hits_at_k, recall_at_k


def synthetic(images: int, captions: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    image_emb = F.normalize(torch.randn(images, dim, generator=gen), dim=-1)
    owner = torch.arange(captions) % images
    caption_emb = torch.empty(captions, dim)
    for start in range(0, captions, 100_000):  # in chunks: no second full-size temporary
        part = owner[start : start + 100_000]
        noise = torch.randn(len(part), dim, generator=gen) * (6.0 / dim**0.5)  # cosine to its image ~0.16
        caption_emb[start : start + len(part)] = F.normalize(image_emb[part] + noise, dim=-1)
    return image_emb, caption_emb, owner


def _status(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))  # type: ignore[union-attr]


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, seconds, peak MiB above the resident size before)``."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, (_status("VmHWM") - before) / 1024


def score(args: argparse.Namespace) -> None:
    images, captions, owner = synthetic(args.images, args.captions, args.dim)
    ids = torch.arange(args.images)
    print(f"scoring {args.captions:,} captions x {args.images:,} images, dim {args.dim}, "
          f"block {args.block_size} keys x {args.query_block} queries, {torch.get_num_threads()} threads")  # fmt: skip
    full_gib = args.captions * args.images * 4 / 2**30
    for name, queries, keys, query_group, key_group in (
        ("text->image", captions, images, owner, ids),
        ("image->text", images, captions, ids, owner),
    ):
        every = len(queries)
        if args.query_limit:  # all keys, the first queries only: the time is extrapolated
            queries, query_group = queries[: args.query_limit], query_group[: args.query_limit]
        (_, top), seconds, peak = measured(
            partial(blocked_topk, queries, keys, 10, args.block_size, args.query_block)
        )
        recall = recall_at_k(hits_at_k(top, query_group, key_group, [1, 5, 10]), [1, 5, 10])
        pairs = len(queries) * len(keys)
        whole = (
            f"; all {every:,} queries: {seconds * every / len(queries) / 60:.1f} min"
            if len(queries) < every
            else ""
        )
        print(f"  {name}: {seconds:8.1f} s, {pairs / seconds / 1e9:6.2f} G pairs/s "
              f"({2 * args.dim * pairs / seconds / 1e9:6.1f} GFLOP/s), peak +{peak:7.1f} MiB "
              f"(full fp32 matrix: {full_gib:,.1f} GiB){whole}; recall@1/5/10 "
              + " / ".join(f"{recall[k]:.4f}" for k in (1, 5, 10)))  # fmt: skip


def brute(args: argparse.Namespace) -> None:
    images, captions, _ = synthetic(args.brute_images, args.brute_captions, args.dim, seed=1)
    print(f"one block vs blocks, {args.brute_captions:,} captions x {args.brute_images:,} images:")
    runs = {}
    one = (args.brute_images, args.brute_captions)  # every key and every query in one product
    for label, block, rows in (("one block", *one), ("blocked", args.block_size, args.query_block)):
        (_values, top), seconds, peak = measured(partial(blocked_topk, captions, images, 10, block, rows))
        runs[label] = top
        print(f"  {label:9s}: {seconds:6.2f} s, peak +{peak:7.1f} MiB")
    order = (captions @ images.T).sort(dim=1, descending=True, stable=True).indices[:, :10]
    print(f"  blocked top-10 == one block's: {torch.equal(runs['blocked'], runs['one block'])}; "
          f"== stable sort of the full matrix: {torch.equal(runs['blocked'], order)}")  # fmt: skip


def embed(args: argparse.Namespace) -> None:
    from clip_lightning import build_model, tokenize
    from clip_lightning.models import CLIP, MODEL_CONFIGS

    torch.manual_seed(0)
    model = build_model(CLIP(MODEL_CONFIGS["ViT-B/32"]).state_dict()).eval()
    pixels = torch.randn(args.embed, 3, 224, 224)
    texts = tokenize([f"a photo of a thing number {i} on a table by a window" for i in range(args.embed)])
    rates = {}
    with torch.no_grad():
        for name, fn in (
            ("images", lambda: model.encode_image(pixels)),
            ("captions", lambda: model.encode_text(texts)),
        ):
            fn()  # warm-up: packing and first-call costs
            start = time.perf_counter()
            fn()
            rates[name] = args.embed / (time.perf_counter() - start)
    total = args.images / rates["images"] + args.captions / rates["captions"]
    print(f"embedding (ViT-B/32, fp32, batch {args.embed}): {rates['images']:.1f} images/s, "
          f"{rates['captions']:.1f} captions/s -> {total / 3600:.1f} h for {args.images:,} images and "
          f"{args.captions:,} captions on this machine")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--block-size", type=int, default=16384)
    parser.add_argument("--query-block", type=int, default=256)
    parser.add_argument("--brute-captions", type=int, default=20_000)
    parser.add_argument("--brute-images", type=int, default=4_000)
    parser.add_argument("--embed", type=int, default=64, help="0: skip the embedding timing")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--query-limit", type=int, default=0, help="score only this many queries each way")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    brute(args)
    score(args)
    if args.embed:
        embed(args)


if __name__ == "__main__":
    main()
