"""Metrics from full scores or kept ranks: functions (:mod:`.functional`) and torchmetrics classes (:mod:`.stateful`).

Names in results.json (CLIP_benchmark's): ``acc1``, ``acc5``, ``mean_per_class_recall``,
``mean_average_precision`` (11-point, multi-label), ``roc_auc`` (binary).
"""

from .functional import (
    average_precision_11point,
    binary_roc_auc,
    binary_scores,
    classification_metrics,
    confusion_matrix,
    mean_average_precision_11point,
    mean_per_class_recall,
    per_class_recall,
    ranked_metrics,
    topk_accuracy,
    true_class_rank,
)
from .stateful import (
    BinaryROCAUC,
    MeanAveragePrecision11Point,
    MeanPerClassRecall,
    PerSampleMetric,
    TopKAccuracy,
)

__all__ = [
    "BinaryROCAUC",
    "MeanAveragePrecision11Point",
    "MeanPerClassRecall",
    "PerSampleMetric",
    "TopKAccuracy",
    "average_precision_11point",
    "binary_roc_auc",
    "binary_scores",
    "classification_metrics",
    "confusion_matrix",
    "mean_average_precision_11point",
    "mean_per_class_recall",
    "per_class_recall",
    "ranked_metrics",
    "topk_accuracy",
    "true_class_rank",
]
