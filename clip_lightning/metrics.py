"""Classification metrics from top-k predictions (torchmetrics)."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

__all__ = ["classification_metrics", "confusion_matrix", "per_class_recall"]


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[num_classes, num_classes]`` counts, rows are true classes."""
    metric = MulticlassConfusionMatrix(num_classes=num_classes).to(preds.device)
    return metric(preds, target).long()


def per_class_recall(matrix: torch.Tensor) -> torch.Tensor:
    """Recall of each class; NaN for classes absent from the targets."""
    support = matrix.sum(dim=1).double()
    recall = matrix.diagonal().double() / support
    return torch.where(support > 0, recall, torch.full_like(recall, float("nan")))


def _scores_from_topk(topk: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Scores whose top-k equals ``topk`` (k, k-1, ..., 1 on the predicted classes, 0 elsewhere)."""
    k = topk.shape[1]
    scores = torch.zeros(topk.shape[0], num_classes, device=topk.device)
    ranks = torch.arange(k, 0, -1, dtype=scores.dtype, device=topk.device).expand_as(topk)
    return scores.scatter_(1, topk, ranks)


def classification_metrics(topk: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, float]:
    """``acc1``, ``acc5`` (when there are at least 5 classes) and ``mean_per_class_recall``.

    ``topk`` holds each sample's predicted classes, best first (``[N, k]``, ``k >= 1``).
    Mean per-class recall averages over the classes present in ``target``, like
    scikit-learn's ``balanced_accuracy_score`` (torchmetrics' macro average would also count
    predicted-but-absent classes as zero).
    """
    if topk.ndim != 2 or topk.shape[0] != target.shape[0]:
        raise ValueError(f"topk must be [N, k] with N = len(target); got {tuple(topk.shape)}")
    top1 = MulticlassAccuracy(num_classes=num_classes, average="micro").to(topk.device)
    out = {"acc1": float(top1(topk[:, 0], target))}
    if num_classes >= 5:
        if topk.shape[1] < 5:
            raise ValueError("acc5 needs the top 5 predictions")
        top5 = MulticlassAccuracy(num_classes=num_classes, average="micro", top_k=5).to(topk.device)
        out["acc5"] = float(top5(_scores_from_topk(topk[:, :5], num_classes), target))
    recall = per_class_recall(confusion_matrix(topk[:, 0], target, num_classes))
    out["mean_per_class_recall"] = float(recall[~recall.isnan()].mean())
    return out
