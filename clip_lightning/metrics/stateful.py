"""The metrics as ``torchmetrics.Metric`` classes: per-sample states that sync exactly under DDP.

Each keeps a few values per sample (a rank and a prediction, or the scores the metric needs) as
``cat`` states, which torchmetrics gathers from every process (uneven counts allowed) before
``compute``. Distributed samplers pad with repeated samples: pass each sample's dataset
``index`` to ``update`` and every index is counted once, so N processes give one process's value.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..distributed import dedup_by_index
from . import functional as F

__all__ = [
    "BinaryROCAUC",
    "MeanAveragePrecision11Point",
    "MeanPerClassRecall",
    "PerSampleMetric",
    "TopKAccuracy",
]


class PerSampleMetric(Metric):
    """A metric of per-sample values, kept as ``cat`` states (``columns``), optionally deduplicated by index.

    Subclasses name their ``columns`` and turn one batch into them in :meth:`rows`.
    """

    columns: tuple[str, ...] = ()
    index: list[torch.Tensor] | torch.Tensor  # a state (add_state)
    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("index", *self.columns):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def rows(self, scores: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """This batch's per-sample values, one entry per name in ``columns``."""
        raise NotImplementedError

    def update(self, scores: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None) -> None:
        """Add a batch; ``index`` (dataset positions) in every update or in none."""
        for name, value in self.rows(scores, target).items():
            getattr(self, name).append(value.detach())
        if index is not None:
            if index.shape != target.shape[:1]:
                raise ValueError(f"index must be [N] with N = {target.shape[0]}, got {tuple(index.shape)}")
            self._index_list().append(index.detach().long().to(target.device))

    def _index_list(self) -> list[torch.Tensor]:
        assert isinstance(self.index, list), "the index state is synced (a tensor), not a list of batches"
        return self.index

    def samples(self) -> dict[str, torch.Tensor]:
        """Every sample's values (after sync: every process's), each index once when indices were given."""
        values = [dim_zero_cat(getattr(self, name)) for name in self.columns]
        index = self.index  # a list until synced, a tensor after
        if len(index) if isinstance(index, list) else index.numel():
            index = dim_zero_cat(index)
            if index.numel() != values[0].shape[0]:
                raise ValueError("pass index to every update or to none")
            _, *values = dedup_by_index(index, *values)
        return dict(zip(self.columns, values, strict=True))


class TopKAccuracy(PerSampleMetric):
    """Share of samples whose true class is among the ``k`` best scores (ties: lower class index first)."""

    columns = ("rank",)

    def __init__(self, k: int = 1, **kwargs: Any) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        super().__init__(**kwargs)
        self.k = k

    def rows(self, scores: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"rank": F.true_class_rank(scores, target)}

    def compute(self) -> torch.Tensor:
        return (self.samples()["rank"] < self.k).double().mean()


class MeanPerClassRecall(PerSampleMetric):
    """Recall averaged over the classes present (``balanced_accuracy_score``); predictions or scores."""

    columns = ("preds", "target")

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def rows(self, scores: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        preds = scores.argmax(dim=1) if scores.ndim == 2 else scores
        return {"preds": preds.long(), "target": target.long()}

    def compute(self) -> torch.Tensor:
        s = self.samples()
        return torch.tensor(
            F.mean_per_class_recall(s["preds"], s["target"], self.num_classes), dtype=torch.float64
        )


class MeanAveragePrecision11Point(PerSampleMetric):
    """Multi-label 11-point interpolated mAP (Pascal VOC 2007) from full scores ``[N, C]`` and multi-hot targets."""

    columns = ("scores", "target")

    def rows(self, scores: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if scores.ndim != 2 or target.shape != scores.shape:
            raise ValueError(
                f"scores and target must both be [N, C]; got {tuple(scores.shape)}, {tuple(target.shape)}"
            )
        return {"scores": scores, "target": target}

    def compute(self) -> torch.Tensor:
        s = self.samples()
        return torch.tensor(F.mean_average_precision_11point(s["scores"], s["target"]), dtype=torch.float64)


class BinaryROCAUC(PerSampleMetric):
    """ROC AUC (``roc_auc_score``) of scores ``[N]`` or 2-class logits ``[N, 2]`` (class 1 minus class 0)."""

    columns = ("scores", "target")

    def rows(self, scores: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"scores": F.binary_scores(scores), "target": target}

    def compute(self) -> torch.Tensor:
        s = self.samples()
        return torch.tensor(F.binary_roc_auc(s["scores"], s["target"]), dtype=torch.float64)
