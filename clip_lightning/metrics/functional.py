"""Metrics as functions of a whole split's scores and targets (torchmetrics' functional style).

Every function here gives the same value for the same multiset of samples in any order, so
rows gathered from many processes score exactly as one process's rows (ties are grouped, sums
are of integers or half-integers, or in a fixed order).

Ties in scores, single-label: the lower class index ranks first (``torch.argmax``'s and
``numpy.argmax``'s rule), so ``acc1`` always equals the confusion matrix's trace over N.
scikit-learn's ``top_k_accuracy_score`` ranks the higher index first among ties.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

__all__ = [
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

# Rows compared at a time in true_class_rank: bounds its [rows, classes] temporaries.
_ROWS = 8192


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[num_classes, num_classes]`` counts, rows are true classes."""
    metric = MulticlassConfusionMatrix(num_classes=num_classes).to(preds.device)
    return metric(preds, target).long()


def per_class_recall(matrix: torch.Tensor) -> torch.Tensor:
    """Recall of each class; NaN for classes absent from the targets."""
    support = matrix.sum(dim=1).double()
    recall = matrix.diagonal().double() / support
    return torch.where(support > 0, recall, torch.full_like(recall, float("nan")))


def mean_per_class_recall(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Recall averaged over the classes present in ``target`` (scikit-learn's ``balanced_accuracy_score``).

    ``preds`` are class indices ``[N]`` or scores ``[N, C]`` (their argmax). torchmetrics' macro
    average would also count predicted-but-absent classes as zero.
    """
    if preds.ndim == 2:
        preds = preds.argmax(dim=1)
    recall = per_class_recall(confusion_matrix(preds, target, num_classes))
    present = recall[~recall.isnan()]
    return float(present.mean()) if present.numel() else float("nan")


def true_class_rank(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How many classes rank above each sample's true class (``[N]``, 0 = top-1); ties: lower index first."""
    if scores.ndim != 2 or target.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be [N, C] and target [N]; got {tuple(scores.shape)} and {tuple(target.shape)}"
        )
    target = target.long().to(scores.device)
    classes = torch.arange(scores.shape[1], device=scores.device)
    ranks = []
    for rows, labels in zip(scores.split(_ROWS), target.split(_ROWS), strict=True):
        true = rows.gather(1, labels[:, None])
        before = (rows > true) | ((rows == true) & (classes < labels[:, None]))
        ranks.append(before.sum(dim=1))
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long, device=scores.device)


def ranked_metrics(
    rank: torch.Tensor, preds: torch.Tensor, target: torch.Tensor, num_classes: int
) -> dict[str, float]:
    """``acc1``, ``acc5`` (with at least 5 classes) and ``mean_per_class_recall`` from kept ranks.

    ``rank`` is :func:`true_class_rank` of the scores and ``preds`` their argmax: two integers per
    sample give all three metrics, so an evaluator need not keep every score.
    """
    out = {"acc1": float((rank < 1).double().mean())}
    if num_classes >= 5:
        out["acc5"] = float((rank < 5).double().mean())
    out["mean_per_class_recall"] = mean_per_class_recall(preds, target, num_classes)
    return out


def topk_accuracy(scores: torch.Tensor, target: torch.Tensor, k: int = 1) -> float:
    """Share of samples whose true class is among the ``k`` best scores ``[N, C]`` (ties: lower index first)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float((true_class_rank(scores, target) < k).double().mean())


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
    scikit-learn's ``balanced_accuracy_score``.
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
    out["mean_per_class_recall"] = mean_per_class_recall(topk[:, 0], target, num_classes)
    return out


def _check_binary(name: str, target: torch.Tensor) -> torch.Tensor:
    if target.numel() and not bool(((target == 0) | (target == 1)).all()):
        raise ValueError(f"{name} targets must be 0 or 1, got values {target.unique()[:5].tolist()}")
    return target.bool()


def average_precision_11point(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each class's 11-point interpolated average precision (Pascal VOC 2007's), ``[C]`` float64.

    ``scores`` ``[N, C]``; ``target`` multi-hot ``[N, C]`` (0 or 1). For a class, precision and
    recall are taken at every distinct score as threshold (tied samples enter together), and
    AP is the mean over t = 0, 0.1, ..., 1 of the highest precision at recall >= t (VOC 2007's
    ``VOCevalcls``, which has no extra point of precision 1 at recall 0). Recall >= t is compared
    exactly in integers (``np.arange(0, 1.1, 0.1)`` puts 0.3 just above 3/10). NaN for a class
    without positives.
    """
    if scores.ndim != 2 or target.shape != scores.shape:
        raise ValueError(
            f"scores and multi-hot target must both be [N, C]; got {tuple(scores.shape)} and {tuple(target.shape)}"
        )
    positive = _check_binary("average precision", target).cpu()
    scores = scores.detach().double().cpu()
    levels = torch.arange(11, dtype=torch.long)
    out = torch.full((scores.shape[1],), float("nan"), dtype=torch.float64)
    for c in range(scores.shape[1]):
        num_pos = int(positive[:, c].sum())
        if num_pos == 0:
            continue
        values, order = scores[:, c].sort(descending=True, stable=True)
        hits = positive[order, c]
        tp = hits.long().cumsum(0)
        seen = torch.arange(1, len(hits) + 1)
        last = torch.ones_like(hits)  # the last sample of each run of equal scores: one threshold
        last[:-1] = values[1:] != values[:-1]
        tp, seen = tp[last], seen[last]
        precision = tp.double() / seen.double()
        reached = tp[None, :] * 10 >= levels[:, None] * num_pos  # [11, thresholds]: recall >= t
        best = torch.where(reached, precision[None, :], torch.zeros(())).amax(dim=1)
        out[c] = best.sum() / 11
    return out


def mean_average_precision_11point(scores: torch.Tensor, target: torch.Tensor) -> float:
    """:func:`average_precision_11point` averaged over the classes that have positives (NaN if none)."""
    ap = average_precision_11point(scores, target)
    present = ap[~ap.isnan()]
    return float(present.mean()) if present.numel() else float("nan")


def binary_scores(scores: torch.Tensor) -> torch.Tensor:
    """One score per sample: itself for ``[N]``; class 1's minus class 0's for 2-class logits ``[N, 2]``.

    The difference orders samples as the softmax probability of class 1 does.
    """
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1].double() - scores[:, 0].double()
    if scores.ndim != 1:
        raise ValueError(f"binary scores must be [N] or [N, 2], got {tuple(scores.shape)}")
    return scores.double()


def binary_roc_auc(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``); ``target`` 0/1 ``[N]``.

    ``scores``: ``[N]`` or 2-class logits ``[N, 2]`` (see :func:`binary_scores`). Computed as the
    Mann-Whitney statistic with average ranks (a tie counts one half), which is the trapezoidal
    area. NaN when only one class is present.
    """
    score = binary_scores(scores).detach().cpu()
    positive = _check_binary("ROC AUC", target).cpu()
    if target.shape != score.shape:
        raise ValueError(f"target must be [N] with N = {score.shape[0]}, got {tuple(target.shape)}")
    num_pos = int(positive.sum())
    num_neg = positive.numel() - num_pos
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(score, sorted=True, return_inverse=True, return_counts=True)
    end = counts.cumsum(0)
    # 1-based ranks start - count + 1 .. end share their mean; twice it is an integer.
    twice_rank = 2 * end - counts + 1
    twice_sum = int(twice_rank[inverse][positive].sum())
    u = (twice_sum - num_pos * (num_pos + 1)) / 2
    return u / (num_pos * num_neg)
