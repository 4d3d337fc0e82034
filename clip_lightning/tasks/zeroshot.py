"""Zero-shot classification: class names x templates -> classifier; image embeddings -> logits -> metrics."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from ..datamodule import CLIPDataModule, clip_datamodule
from ..datasets.prompts import dataset_prompts, known_prompt_datasets, read_list
from ..ops import PackedWeights
from ..reporting import log_figures, write_predictions
from .base import FrozenBackboneTask
from .classifier import CLASSIFIERS, build_zero_shot_classifier, format_prompts, zero_shot_logits
from .scoring import Scoring

__all__ = ["CLIPEvaluator"]


class CLIPEvaluator(FrozenBackboneTask):
    """Zero-shot classification with a frozen CLIP model (and the features a LinearProbe needs).

    Args:
        name: a name from ``clip_lightning.available_models()`` or a checkpoint path.
        pretrained: ``False`` builds the named architecture with random weights (offline demos,
            tests); its accuracy is meaningless and every report says so.
        download_root: checkpoint cache folder (default ``~/.cache/clip``).
        templates: prompt templates: None (the dataset's own, from CLIP's prompts.md), a dataset
            name whose templates to use, a list, or a file (JSON list or one per line).
        zero_shot: compute zero-shot metrics on the test (or val) split: the dataset's main metric
            and the others that apply (see :mod:`clip_lightning.tasks.scoring`); results.json names
            the main one, and ``hp_metric`` is it.
        text_batch_size: prompts encoded per batch when building the classifier.
        seed: seed of the random weights when ``pretrained=False``.
        activation, vision_head_width, text_heads: what a bare open_clip state dict's shapes cannot
            tell (``quick_gelu``/``gelu``, 64, width // 64 by default); they override a folder's config.
    """

    task_name = "zeroshot_classification"

    def __init__(
        self,
        name: str = "ViT-B/32",
        pretrained: bool = True,
        download_root: str | None = None,
        templates: str | list[str] | None = None,
        zero_shot: bool = True,
        text_batch_size: int = 256,
        seed: int = 0,
        activation: str | None = None,
        vision_head_width: int | None = None,
        text_heads: int | None = None,
    ) -> None:
        super().__init__(name, pretrained, download_root, seed, activation, vision_head_width, text_heads)
        self.save_hyperparameters()
        self.templates_spec = templates
        self.zero_shot = zero_shot
        self.classnames: list[str] = []
        self.templates: list[str] = []
        self.classifier: torch.Tensor | None = None
        self.scoring = Scoring(num_classes=1)  # decided from the data in setup
        self._packed = PackedWeights()

    # ---- set-up -------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = clip_datamodule(self.trainer)
        self.classnames = list(datamodule.classnames)
        self.templates = self._resolve_templates(datamodule)
        if self.zero_shot:
            format_prompts(self.classnames, self.templates)  # a bad template stops here, before any image
            self.scoring = Scoring.for_data(datamodule, len(self.classnames))

    def prompt_templates(self) -> list[str]:
        return list(self.templates)

    def _resolve_templates(self, datamodule: CLIPDataModule) -> list[str]:
        spec = self.templates_spec
        if spec is None:
            return list(datamodule.templates)
        if isinstance(spec, str) and spec in known_prompt_datasets():
            return dataset_prompts(spec)[1]
        return read_list(spec, "templates")

    def _build_classifier(self) -> None:
        if not self.zero_shot or self.classifier is not None:
            return
        key = (self.checkpoint_id, tuple(self.classnames), tuple(self.templates), str(self.trainer.precision))

        def build() -> torch.Tensor:
            with self.trainer.precision_plugin.forward_context():
                return build_zero_shot_classifier(
                    self.model, self.classnames, self.templates, batch_size=self.hparams["text_batch_size"]
                )

        self.classifier = CLASSIFIERS.get(key, build).to(self.device)
        rank_zero_info(
            f"Zero-shot classifier: {len(self.classnames)} classes x {len(self.templates)} templates"
        )

    def on_test_start(self) -> None:
        super().on_test_start()
        self._build_classifier()

    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._build_classifier()

    def on_predict_start(self) -> None:
        super().on_predict_start()
        self._build_classifier()

    def logits(self, projected: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits of projected image embeddings ``[N, embed_dim]`` -> ``[N, classes]``."""
        assert self.classifier is not None
        return zero_shot_logits(projected, self.classifier, self.model.logit_scale.exp(), self._packed)

    # ---- steps --------------------------------------------------------------------------------

    def _step(self, batch: Any, dataloader_idx: int, stage: str) -> None:
        images, labels, index = batch
        split = self.split_of(dataloader_idx, stage)
        projected = self.encode_batch(images, split)
        self.keep(split, index=index, label=labels)
        if self.zero_shot and split == ("val" if stage == "val" else "test"):
            self.keep(split, **self.scoring.per_batch(self.logits(projected), labels))

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, dataloader_idx, "test")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, dataloader_idx, "val")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        images, labels, index = batch
        features = self.model.encode_image(images).float()
        result = {"index": index, "label": labels, "features": features}
        if self.zero_shot:
            result["logits"] = self.logits(features)
        self.keep("predict", **result)  # the same tensors, kept for the file written at the end
        return result

    def on_predict_epoch_end(self) -> None:
        keys = ["label", "features", *(["logits"] if self.zero_shot else [])]
        index, *values = self.gathered("predict", *keys)
        if self.trainer.is_global_zero:
            path = write_predictions(
                self.log_folder, dict(zip(keys, values, strict=True)), index, self.classnames
            )
            print(f"predictions: {index.numel()} images ({', '.join(keys)}) -> {path}", flush=True)

    # ---- metrics ------------------------------------------------------------------------------

    def _finish(self, stage: str) -> None:
        if not self.zero_shot:
            return
        keys = self.scoring.keys
        index, labels, *values = self.gathered("val" if stage == "val" else "test", "label", *keys)
        kept = dict(zip(keys, values, strict=True))
        metrics = self.scoring.metrics(labels, kept)
        main = self.scoring.main_metric
        # Every process holds the same values; max reduces them exactly (a mean may round).
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, sync_dist=True, reduce_fx="max")
        self.log("hp_metric", metrics[main], sync_dist=True, reduce_fx="max")
        undefined = [k for k, v in metrics.items() if v != v]
        if undefined:
            rank_zero_warn(
                f"{stage}: {', '.join(undefined)} undefined here (NaN): a class lacks positives or negatives"
            )
        if self.trainer.is_global_zero:
            matrix = self.scoring.confusion(labels, kept)
            if matrix is not None:  # multi-label data has none
                log_figures(self.trainer, self.log_folder, matrix, self.classnames, stage)
        if stage == "test":
            self.add_results(self.task_name, metrics, num_samples=int(index.numel()), main_metric=main)

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._finish("val")
