"""How zero-shot classification is scored: what is kept per image, and the metrics of the gathered rows.

Single-label data keeps two integers per image (the predicted class and the true class's rank),
enough for ``acc1``, ``acc5`` and ``mean_per_class_recall``. Full logits (float32) are kept only
where a metric needs them: multi-label data (11-point ``mean_average_precision``; the others do
not apply), 2-class data (``roc_auc``, class 1's logit minus class 0's), or a dataset whose main
metric is mAP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..datamodule import CLIPDataModule
from ..errors import ConfigError
from ..metrics import (
    binary_roc_auc,
    confusion_matrix,
    mean_average_precision_11point,
    ranked_metrics,
    true_class_rank,
)

__all__ = ["MAIN_METRICS", "Scoring"]

# The main metrics a dataset's registry entry may name (the CLIP paper's, Table 9).
MAIN_METRICS = ("acc1", "mean_per_class_recall", "mean_average_precision", "roc_auc")


@dataclass(frozen=True)
class Scoring:
    """The metrics of one run's zero-shot logits, decided once from the data.

    Attributes:
        num_classes: the classifier's classes.
        multilabel: labels are multi-hot ``[N, num_classes]``.
        main_metric: the metric the dataset is reported with (one of :data:`MAIN_METRICS`).
    """

    num_classes: int
    multilabel: bool = False
    main_metric: str = "acc1"

    def __post_init__(self) -> None:
        if self.main_metric not in MAIN_METRICS:
            raise ConfigError(
                f"main metric {self.main_metric!r} is not one zero-shot classification computes; "
                f"choose one of {list(MAIN_METRICS)} for the dataset's main_metric"
            )
        if self.multilabel and self.main_metric != "mean_average_precision":
            raise ConfigError(
                f"{self.main_metric!r} does not apply to multi-label data: "
                "its main metric must be 'mean_average_precision'"
            )
        if self.main_metric == "roc_auc" and self.num_classes != 2:
            raise ConfigError(f"'roc_auc' needs 2 classes, the data has {self.num_classes}")

    @classmethod
    def for_data(cls, datamodule: CLIPDataModule, num_classes: int) -> Scoring:
        """The scoring of ``datamodule``'s labels and main metric (multi-label data: mAP, whose
        registry entry may leave the default ``acc1``)."""
        main = datamodule.main_metric
        if datamodule.multilabel and main == "acc1":
            main = "mean_average_precision"
        return cls(num_classes, datamodule.multilabel, main)

    @property
    def keeps_logits(self) -> bool:
        """Whether every image's full logits are kept (a metric needs more than ranks)."""
        return self.multilabel or self.num_classes == 2 or self.main_metric == "mean_average_precision"

    @property
    def keys(self) -> tuple[str, ...]:
        """What :meth:`per_batch` keeps, besides ``label``, in order."""
        ranks = () if self.multilabel else ("pred", "rank")
        return (*ranks, *(("logits",) if self.keeps_logits else ()))

    def per_batch(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The values of one batch to keep (``keys``), from its logits ``[B, C]`` and labels."""
        if self.multilabel:
            if labels.shape != logits.shape:
                raise ConfigError(
                    f"multi-label data must give multi-hot labels [batch, {self.num_classes}], "
                    f"got {tuple(labels.shape)}: check the dataset's labels and class names"
                )
            kept: dict[str, torch.Tensor] = {}
        else:
            kept = {"pred": logits.argmax(dim=1), "rank": true_class_rank(logits, labels)}
        if self.keeps_logits:
            kept["logits"] = logits.float()
        return kept

    def metrics(self, label: torch.Tensor, kept: dict[str, torch.Tensor]) -> dict[str, float]:
        """The metrics of every image's ``label`` and kept values (gathered, each image once)."""
        out: dict[str, float] = {}
        if not self.multilabel:
            out.update(ranked_metrics(kept["rank"], kept["pred"], label, self.num_classes))
            if self.num_classes == 2:
                out["roc_auc"] = binary_roc_auc(kept["logits"], label)
        if self.main_metric == "mean_average_precision":
            target = label if self.multilabel else torch.nn.functional.one_hot(label.long(), self.num_classes)
            out["mean_average_precision"] = mean_average_precision_11point(kept["logits"], target)
        return out

    def confusion(self, label: torch.Tensor, kept: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The confusion matrix (rows: true classes); None for multi-label data, which has none."""
        if self.multilabel:
            return None
        return confusion_matrix(kept["pred"], label, self.num_classes)
