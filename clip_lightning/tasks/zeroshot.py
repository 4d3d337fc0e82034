"""The frozen-backbone LightningModule: image features, zero-shot predictions and metrics."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from ..datamodule import CLIPDataModule, clip_datamodule
from ..datasets.prompts import dataset_prompts, known_prompt_datasets, read_list
from ..distributed import gather_by_index
from ..errors import ConfigError
from ..metrics import classification_metrics, confusion_matrix
from ..models.loading import checkpoint_sha256, load, resolve_checkpoint
from ..models.model import CLIP, MODEL_CONFIGS, ModifiedResNet, _on_rows
from ..models.transform import image_transform, transform_resolution
from ..ops.packed import PackedWeights
from ..reporting import log_figures, print_summary, results_dir, write_predictions, write_results
from .classifier import build_zero_shot_classifier

__all__ = ["CLIPEvaluator"]

FeatureKind = Literal["projected", "penultimate"]

# Classifier weights per (checkpoint, class names, templates, precision), so validate and test
# (or repeated runs in one process) encode the prompts once.
_CLASSIFIERS: dict[tuple[str, tuple[str, ...], tuple[str, ...], str], torch.Tensor] = {}


class CLIPEvaluator(L.LightningModule):
    """Evaluates a frozen CLIP model: zero-shot classification and feature extraction.

    Args:
        name: a name from ``clip_lightning.available_models()`` or a checkpoint path.
        pretrained: ``False`` builds the named architecture with random weights (offline demos,
            tests); its accuracy is meaningless and every report says so.
        download_root: checkpoint cache folder (default ``~/.cache/clip``).
        templates: prompt templates: None (the dataset's own, from CLIP's prompts.md), a dataset
            name whose templates to use, a list, or a file (JSON list or one per line).
        zero_shot: compute zero-shot metrics on the test (or val) split.
        text_batch_size: prompts encoded per batch when building the classifier.
        seed: seed of the random weights when ``pretrained=False``.
    """

    def __init__(
        self,
        name: str = "ViT-B/32",
        pretrained: bool = True,
        download_root: str | None = None,
        templates: str | list[str] | None = None,
        zero_shot: bool = True,
        text_batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model, self.checkpoint_id = self._load_backbone(name, pretrained, download_root, seed)
        self.model.requires_grad_(False)
        self.model.eval()
        if isinstance(self.model.visual, ModifiedResNet):
            self.model.visual.to(memory_format=torch.channels_last)  # faster convolutions
        self.preprocess = image_transform(self.model.visual.input_resolution)
        self.templates_spec = templates
        self.zero_shot = zero_shot
        # Filled by a LinearProbe callback: splits whose features to keep, and which kind.
        self.feature_splits: set[str] = set()
        self.feature_kind: FeatureKind = "projected"
        self.classnames: list[str] = []
        self.templates: list[str] = []
        self.classifier: torch.Tensor | None = None
        self.extra_results: dict[str, Any] = {}
        self.log_folder = "."
        self._outputs: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
        self._packed = PackedWeights()

    @staticmethod
    def _load_backbone(name: str, pretrained: bool, download_root: str | None, seed: int) -> tuple[CLIP, str]:
        if not pretrained:
            if name not in MODEL_CONFIGS:
                raise ConfigError(
                    f"pretrained=False builds a published architecture with random weights; "
                    f"{name!r} is not one of {list(MODEL_CONFIGS)}. To load {name!r} as a model "
                    f"name or checkpoint file, pass pretrained=True (--model.pretrained true)."
                )
            rank_zero_warn(
                f"RANDOM WEIGHTS: {name} is built with random weights (seed {seed}), not OpenAI's; "
                "its accuracies are meaningless. Use pretrained=True for real numbers."
            )
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                return CLIP(MODEL_CONFIGS[name]).eval(), f"random:{name}:seed={seed}"
        path = resolve_checkpoint(name, download_root)
        model, _ = load(path, device="cpu")
        assert isinstance(model, CLIP)
        return model, f"sha256:{checkpoint_sha256(name, path)}"

    # ---- set-up -------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = clip_datamodule(self.trainer)
        resolution = transform_resolution(getattr(datamodule, "transform", None))
        if resolution != self.model.visual.input_resolution:
            raise ConfigError(
                f"the data transform crops to {resolution} px but {self.hparams['name']} takes "
                f"{self.model.visual.input_resolution} px: pass the model's preprocess as the "
                f"CLIPDataModule's transform (the CLI links it for you)"
            )
        self.classnames = list(datamodule.classnames)
        self.templates = self._resolve_templates(datamodule)
        self.log_folder = results_dir(self.trainer)  # a collective: resolved here, on every process

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
        if key not in _CLASSIFIERS:
            with self.trainer.precision_plugin.forward_context():
                weights = build_zero_shot_classifier(
                    self.model, self.classnames, self.templates, batch_size=self.hparams["text_batch_size"]
                )
            if len(_CLASSIFIERS) >= 8:
                _CLASSIFIERS.clear()
            with torch.inference_mode(False):  # a normal tensor, which can be packed (see _logits)
                _CLASSIFIERS[key] = weights.cpu().clone()
        self.classifier = _CLASSIFIERS[key].to(self.device)
        rank_zero_info(
            f"Zero-shot classifier: {len(self.classnames)} classes x {len(self.templates)} templates"
        )

    def on_test_start(self) -> None:
        self._outputs.clear()
        self._build_classifier()

    def on_validation_start(self) -> None:
        self._outputs.clear()
        self._build_classifier()

    def configure_optimizers(self) -> None:
        raise RuntimeError(
            "CLIPEvaluator evaluates a frozen model and has nothing to train: run `test` or `validate`."
        )

    # ---- steps --------------------------------------------------------------------------------

    def split_of(self, dataloader_idx: int, stage: str) -> str:
        if stage == "val":
            return "val"
        splits = clip_datamodule(self.trainer).test_splits
        return splits[dataloader_idx]

    def _step(self, batch: Any, dataloader_idx: int, stage: str) -> None:
        images, labels, index = batch
        split = self.split_of(dataloader_idx, stage)
        penultimate = self.model.encode_image(images, projected=False)
        projected = self.model.visual.project(penultimate)
        out = self._outputs[split]
        out["index"].append(index.detach())
        out["label"].append(labels.detach())
        if split in self.feature_splits:
            features = projected if self.feature_kind == "projected" else penultimate
            out["features"].append(features.detach().float())
        if self.zero_shot and split == ("val" if stage == "val" else "test"):
            logits = self._logits(projected)
            k = min(5, logits.shape[1])
            out["topk"].append(logits.topk(k, dim=-1).indices)

    def _logits(self, projected: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits: scaled cosine similarity of image embeddings with the classifier."""
        classifier, scale = self.classifier, self.model.logit_scale.exp().float()
        assert classifier is not None
        features = projected.float()
        features = features / features.norm(dim=-1, keepdim=True)
        # A plain matmul against few classes rounds a row differently by its batch's size and its
        # place in it (DDP batches differ from one process's); the packed product, on padded rows,
        # does not (and falls back to the matmul off x86 CPUs).
        return _on_rows(
            lambda rows: self._packed.linear("classifier", scale * rows, classifier.t(), None), features
        )

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, dataloader_idx, "test")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, dataloader_idx, "val")

    def on_predict_start(self) -> None:
        self._outputs.clear()
        self._build_classifier()

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        images, labels, index = batch
        features = self.model.encode_image(images).float()
        result = {"index": index, "label": labels, "features": features}
        if self.zero_shot:
            result["logits"] = self._logits(features)
        for key, value in result.items():  # the same tensors, kept for the file written at the end
            self._outputs["predict"][key].append(value.detach())
        return result

    def on_predict_epoch_end(self) -> None:
        keys = [k for k in ("label", "features", "logits") if self._outputs["predict"][k]]
        index, *values = self.gathered("predict", *keys)
        if self.trainer.is_global_zero:
            path = write_predictions(
                self.log_folder, dict(zip(keys, values, strict=True)), index, self.classnames
            )
            print(f"predictions: {index.numel()} images ({', '.join(keys)}) -> {path}", flush=True)

    # ---- gathering and metrics ----------------------------------------------------------------

    def gathered(self, split: str, *keys: str) -> tuple[torch.Tensor, ...]:
        """``(index, *values)`` of ``split`` from every process, each index once, in index order.

        A collective: every process must call it.
        """
        out = self._outputs[split]
        tensors = [torch.cat(out[k]) if out[k] else torch.empty(0) for k in ("index", *keys)]
        return gather_by_index(*tensors, device=self.device)

    def _finish(self, stage: str) -> None:
        split = "val" if stage == "val" else "test"
        metrics: dict[str, float] = {}
        if self.zero_shot:
            index, labels, topk = self.gathered(split, "label", "topk")
            metrics = classification_metrics(topk, labels, len(self.classnames))
            # Every process holds the same values; max reduces them exactly (a mean may round).
            self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, sync_dist=True, reduce_fx="max")
            self.log("hp_metric", metrics["acc1"], sync_dist=True, reduce_fx="max")
            if self.trainer.is_global_zero:
                matrix = confusion_matrix(topk[:, 0], labels, len(self.classnames))
                log_figures(self.trainer, self.log_folder, matrix, self.classnames, stage)
            metrics["num_samples"] = int(index.numel())
        if stage == "test" and self.trainer.is_global_zero:
            self._report(metrics)

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._finish("val")

    def _report(self, zero_shot_metrics: dict[str, float]) -> None:
        dm = clip_datamodule(self.trainer)
        metrics = {k: v for k, v in zero_shot_metrics.items() if k != "num_samples"}
        metrics.update(self.extra_results.get("metrics", {}))
        tasks = (["zeroshot_classification"] if zero_shot_metrics else []) + (
            ["linear_probe"] if "lp_acc1" in metrics else []
        )
        result = {
            "dataset": dm.dataset,
            "model": self.hparams["name"],
            "pretrained": "openai" if self.hparams["pretrained"] else "random",
            "task": "+".join(tasks) or "features",
            "metrics": metrics,
            "num_test_samples": zero_shot_metrics.get("num_samples"),
            "precision": str(self.trainer.precision),
            "world_size": self.trainer.world_size,
            "checkpoint": self.checkpoint_id,
            "classnames": self.classnames,
            "templates": self.templates,
            **{k: v for k, v in self.extra_results.items() if k != "metrics"},
        }
        path = write_results(self.log_folder, result)
        print_summary(result, path)
