"""The reference solver: scikit-learn's L-BFGS logistic regression, as the CLIP paper ran it."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from .search import Score

__all__ = ["fit_logistic", "topk_classes", "validation_score"]


def fit_logistic(x: np.ndarray, y: np.ndarray, C: float, max_iter: int = 1000) -> LogisticRegression:
    """The paper's classifier: L-BFGS logistic regression, seeded, in float64.

    scikit-learn fits float32 input in float32 (weights and loss), and L-BFGS on that rounded
    objective stops at scattered points (measured on the digits' ViT-B/32 features at C=1e-4:
    10 iterations in float32, 18 in float64, 5% of test predictions apart); float64 is its
    precise answer, and the one the torch solver is checked against.
    """
    model = LogisticRegression(solver="lbfgs", max_iter=max_iter, random_state=0, C=C)
    with warnings.catch_warnings():
        # Strong-regularization or tiny problems may stop at max_iter; the search copes.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.asarray(x, dtype=np.float64), y)
    return model


def validation_score(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> Score:
    """``(accuracy, -log loss)``: accuracy decides; log loss breaks its frequent ties."""
    proba = model.predict_proba(x)
    accuracy = float((model.classes_[proba.argmax(axis=1)] == y).mean())
    return accuracy, -float(log_loss(y, proba, labels=model.classes_))


def topk_classes(model: LogisticRegression, x: np.ndarray, k: int) -> torch.Tensor:
    """Each row's ``k`` most probable classes, best first (``[N, k]``, class labels)."""
    proba = model.predict_proba(x)
    k = min(k, proba.shape[1])
    columns = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return torch.from_numpy(model.classes_[columns].astype(np.int64))
