"""Zero-shot image-text retrieval: image and caption embeddings -> recall@k both ways.

Images and captions are embedded on any number of processes (each index once, whatever the
samplers repeat); then every process takes an even share of the queries and scores it against all
keys in blocks (:mod:`.recall`), and the hits are gathered. Metrics use CLIP_benchmark's names:
``image_retrieval_recall@k`` (a caption retrieves images), ``text_retrieval_recall@k`` (an image
retrieves captions), and DataComp's ``mean_recall@k``, their mean.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..caption_datamodule import CaptionDataModule
from ..errors import ConfigError
from .base import FrozenBackboneTask
from .recall import BlockedRecall, blocked_topk
from .retrieval_figures import log_retrieval_examples

__all__ = ["RetrievalEvaluator"]


class RetrievalEvaluator(FrozenBackboneTask):
    """Zero-shot retrieval with a frozen CLIP model on a :class:`~clip_lightning.CaptionDataModule`.

    Args:
        name: a name from ``clip_lightning.available_models()`` or a checkpoint path.
        pretrained: ``False`` builds the named architecture with random weights.
        download_root: checkpoint cache folder (default ``~/.cache/clip``).
        recall_k: the ``k`` of recall@k.
        block_size: keys scored at once per query chunk; memory is about
            ``query_block x block_size x 16`` bytes, whatever the number of keys.
        query_block: queries scored at once.
        text_batch_size: captions encoded per forward pass (a loader batch is split to it).
        examples: example queries drawn in the figure of top-5 results (0: none).
        seed: seed of the random weights when ``pretrained=False``.
        activation, vision_head_width, text_heads: what a bare open_clip state dict's shapes cannot
            tell (``quick_gelu``/``gelu``, 64, width // 64 by default).
    """

    task_name = "zeroshot_retrieval"

    def __init__(
        self,
        name: str = "ViT-B/32",
        pretrained: bool = True,
        download_root: str | None = None,
        recall_k: list[int] | None = None,
        block_size: int = 16384,
        query_block: int = 256,
        text_batch_size: int = 256,
        examples: int = 4,
        seed: int = 0,
        activation: str | None = None,
        vision_head_width: int | None = None,
        text_heads: int | None = None,
    ) -> None:
        super().__init__(name, pretrained, download_root, seed, activation, vision_head_width, text_heads)
        self.save_hyperparameters()
        self.recall_k = list(recall_k) if recall_k is not None else [1, 5, 10]
        if not self.recall_k or min(self.recall_k) < 1:
            raise ConfigError(f"recall_k must be positive integers, got {self.recall_k}")
        for option, value in (("block_size", block_size), ("query_block", query_block)):
            if value < 1:
                raise ConfigError(f"{option} must be at least 1, got {value}")
        if text_batch_size < 1:
            raise ConfigError(f"text_batch_size must be at least 1, got {text_batch_size}")
        self.block_size, self.query_block = block_size, query_block
        self.text_batch_size, self.examples = text_batch_size, examples

    def task_datamodule(self) -> CaptionDataModule:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, CaptionDataModule):
            raise ConfigError(
                f"RetrievalEvaluator needs a CaptionDataModule (images and captions), got "
                f"{type(datamodule).__name__}; pass data: {{class_path: clip_lightning.CaptionDataModule}}"
            )
        return datamodule

    def setup(self, stage: str) -> None:
        if stage != "test":
            raise ConfigError(f"retrieval runs with `test`, not `{stage}`")
        super().setup(stage)

    # Lightning looks for these before setup runs; setup then refuses the stage with that message.
    def validation_step(self, *args: Any, **kwargs: Any) -> None:
        raise ConfigError("retrieval runs with `test`, not `validate`")

    def predict_step(self, *args: Any, **kwargs: Any) -> None:
        raise ConfigError("retrieval runs with `test`, not `predict`")

    # ---- steps --------------------------------------------------------------------------------

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        data, index = batch
        stream = self.task_datamodule().stream(dataloader_idx)
        if stream == "images":
            embedding = self.model.encode_image(data)
        else:
            parts = [self.model.encode_text(chunk) for chunk in data.split(self.text_batch_size)]
            embedding = torch.cat(parts)
        self.keep(stream, index=index, embedding=embedding.float())

    # ---- metrics ------------------------------------------------------------------------------

    def _embeddings(self, stream: str, expected: int) -> torch.Tensor:
        index, embedding = self.gathered(stream, "embedding")  # the same on every process
        if index.numel() != expected:
            raise ConfigError(
                f"retrieval needs every image and caption, but {index.numel()} of {expected} {stream} were "
                "embedded; run without --trainer.limit_test_batches"
            )
        return F.normalize(embedding, dim=-1).to(self.device)

    def on_test_epoch_end(self) -> None:
        dm = self.task_datamodule()
        images = self._embeddings("images", dm.num_images)
        captions = self._embeddings("captions", len(dm.captions))
        owner = dm.caption_image.to(self.device)
        image_ids = torch.arange(len(images), device=self.device)
        caption_ids = torch.arange(len(captions), device=self.device)
        rank, world = self.trainer.global_rank, self.trainer.world_size

        def share(n: int) -> slice:  # an even share of the queries, in index order
            return slice(rank * n // world, (rank + 1) * n // world)

        text_to_image = BlockedRecall(images, image_ids, self.recall_k, self.block_size, self.query_block)
        part = share(len(captions))
        text_to_image.update(captions[part], owner[part], caption_ids[part])
        image_to_text = BlockedRecall(captions, owner, self.recall_k, self.block_size, self.query_block)
        part = share(len(images))
        image_to_text.update(images[part], image_ids[part], image_ids[part])
        by_text, by_image = text_to_image.compute(self.device), image_to_text.compute(self.device)

        metrics: dict[str, float] = {}
        for k in self.recall_k:
            metrics[f"image_retrieval_recall@{k}"] = by_text[k]
            metrics[f"text_retrieval_recall@{k}"] = by_image[k]
        for k in self.recall_k:
            metrics[f"mean_recall@{k}"] = (by_text[k] + by_image[k]) / 2
        main = f"mean_recall@{1 if 1 in self.recall_k else self.recall_k[0]}"  # DataComp's retrieval score
        # Every process holds the same values; max reduces them exactly (a mean may round).
        self.log_dict({f"test/{k}": v for k, v in metrics.items()}, sync_dist=True, reduce_fx="max")
        self.log("hp_metric", metrics[main], sync_dist=True, reduce_fx="max")
        if self.trainer.is_global_zero and self.examples > 0:
            self._draw_examples(dm, images, captions)
        self.add_results(
            self.task_name, metrics, num_samples=len(images), main_metric=main, retrieval=self._details(dm)
        )

    def _draw_examples(self, dm: CaptionDataModule, images: torch.Tensor, captions: torch.Tensor) -> None:
        chosen = list(range(min(self.examples, len(images))))
        first_caption = [int(torch.nonzero(dm.caption_image == i)[0]) for i in chosen]
        k = min(5, len(captions), len(images))
        _, by_image = blocked_topk(images[chosen], captions, k, self.block_size, self.query_block)
        _, by_text = blocked_topk(captions[first_caption], images, k, self.block_size, self.query_block)
        log_retrieval_examples(
            self.trainer, self.log_folder, dm, list(zip(chosen, by_image.tolist(), strict=False)),
            list(zip(first_caption, by_text.tolist(), strict=False)),
        )  # fmt: skip

    def _details(self, dm: CaptionDataModule) -> dict[str, Any]:
        truncated = dm.truncated
        return {
            "split": dm.split_name,
            "num_images": dm.num_images,
            "num_captions": len(dm.captions),
            "recall_k": list(self.recall_k),
            "block_size": self.block_size,
            "query_block": self.query_block,
            "context_length": dm.context_length,
            # Captions longer than the context are cut to it, as CLIP_benchmark's tokenizer does.
            "truncated_captions": len(truncated),
            "truncated_examples": [{"index": j, "caption": dm.captions[j]} for j in truncated[:10]],
        }
