"""Reference implementations built on scikit-learn, for tests only."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve


def voc07_reference(y: np.ndarray, s: np.ndarray) -> float:
    """VOC 2007's 11-point AP of one class (0/1 targets ``y``, scores ``s``), from scikit-learn's curve."""
    precision, recall, _ = precision_recall_curve(y, s)
    # scikit-learn closes the curve with (recall 0, precision 1); VOC 2007's devkit has no such point.
    precision, recall = precision[:-1], recall[:-1]
    return float(np.mean([precision[recall >= t - 1e-12].max(initial=0.0) for t in np.linspace(0, 1, 11)]))


def voc07_map_reference(target: np.ndarray, scores: np.ndarray) -> float:
    """The mean of :func:`voc07_reference` over the classes (columns) that have positives."""
    return float(
        np.mean(
            [
                voc07_reference(target[:, c], scores[:, c])
                for c in range(target.shape[1])
                if target[:, c].any()
            ]
        )
    )
