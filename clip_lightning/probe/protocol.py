"""Linear probe: scikit-learn logistic regression with the CLIP paper's search for C."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from ..errors import ConfigError
from ..metrics import classification_metrics

__all__ = ["ProbeResult", "check_classes", "fit_logistic", "linear_probe", "search_c", "validation_score"]

# C is searched over 10^-6 .. 10^6 (log10 exponents), the paper's range.
LOG10_C_RANGE = (-6.0, 6.0)
Score = tuple[float, float]


def fit_logistic(x: np.ndarray, y: np.ndarray, C: float, max_iter: int = 1000) -> LogisticRegression:
    """The paper's classifier: L-BFGS logistic regression, seeded."""
    model = LogisticRegression(solver="lbfgs", max_iter=max_iter, random_state=0, C=C)
    with warnings.catch_warnings():
        # Strong-regularization or tiny problems may stop at max_iter; the search copes.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def validation_score(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> Score:
    """``(accuracy, -log loss)``: accuracy decides; log loss breaks its frequent ties."""
    proba = model.predict_proba(x)
    accuracy = float((model.classes_[proba.argmax(axis=1)] == y).mean())
    return accuracy, -float(log_loss(y, proba, labels=model.classes_))


def _best(scores: dict[float, Score]) -> float:
    # Highest score; among equal scores the smaller C (stronger regularization).
    return max(scores, key=lambda e: (scores[e], -e))


def search_c(
    evaluate: Callable[[float], Score],
    low: float = LOG10_C_RANGE[0],
    high: float = LOG10_C_RANGE[1],
    start_step: float = 2.0,
    steps_per_decade: int = 8,
    on_evaluate: Callable[[float, Score], None] | None = None,
) -> tuple[float, dict[float, Score]]:
    """The paper's parametric binary search over log10(C).

    Evaluates C at every ``start_step`` decades across [low, high], then around the best so far
    at half the step, and again, until the step is ``1 / steps_per_decade`` decades.
    Returns ``(best C, {log10 C: score})``.
    """
    scores: dict[float, Score] = {}

    def visit(exponent: float) -> None:
        exponent = round(exponent, 9)
        if low - 1e-9 <= exponent <= high + 1e-9 and exponent not in scores:
            scores[exponent] = evaluate(10.0**exponent)
            if on_evaluate is not None:
                on_evaluate(10.0**exponent, scores[exponent])

    for exponent in np.arange(low, high + 1e-9, start_step):
        visit(float(exponent))
    step = start_step / 2
    while step >= 1.0 / steps_per_decade - 1e-12:
        center = _best(scores)
        visit(center - step)
        visit(center + step)
        step /= 2
    return 10.0 ** _best(scores), scores


def exhaustive_c(
    evaluate: Callable[[float], Score],
    low: float = LOG10_C_RANGE[0],
    high: float = LOG10_C_RANGE[1],
    steps_per_decade: int = 8,
) -> tuple[float, dict[float, Score]]:
    """Every point of the search's final grid (for checking the search)."""
    n = round((high - low) * steps_per_decade)
    scores = {
        round(low + i / steps_per_decade, 9): evaluate(10.0 ** (low + i / steps_per_decade))
        for i in range(n + 1)
    }
    return 10.0 ** _best(scores), scores


def check_classes(train: np.ndarray, num_classes: int, **others: np.ndarray | None) -> None:
    """Refuse, before any fit, training labels that cannot make a probe for ``others``' labels.

    A class in the val or test labels but not in ``train`` could never be predicted; fewer
    than two classes cannot be fitted, fewer than five leave top-5 accuracy undefined.
    """
    hint = "use whole splits (is --trainer.limit_test_batches cutting them? splits are often in class order)"
    seen = set(np.unique(train).tolist())
    for name, labels in others.items():
        missing = sorted(set(np.unique(labels).tolist()) - seen) if labels is not None else []
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise ConfigError(
                f"the probe's {name} features hold {len(missing)} "
                f"{'class' if len(missing) == 1 else 'classes'} that its train features lack "
                f"({'index' if len(missing) == 1 else 'indices'} {shown}), which it could never predict; {hint}"
            )
    if len(seen) < 2 or (num_classes >= 5 and len(seen) < 5):
        raise ConfigError(
            f"the probe's training data holds only {len(seen)} of {num_classes} classes, too few to fit "
            f"a probe{' and score top-5 accuracy' if num_classes >= 5 else ''}; {hint}"
        )


@dataclass
class ProbeResult:
    C: float
    metrics: dict[str, float]
    search: dict[float, Score] = field(default_factory=dict)


def _topk_classes(model: LogisticRegression, x: np.ndarray, k: int) -> torch.Tensor:
    proba = model.predict_proba(x)
    k = min(k, proba.shape[1])
    columns = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return torch.from_numpy(model.classes_[columns].astype(np.int64))


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    C: float | None = None,
    max_iter: int = 1000,
    on_evaluate: Callable[[float, Score], None] | None = None,
) -> ProbeResult:
    """Choose C on ``val`` (unless given), refit on train + val, report test metrics.

    Metrics: ``lp_acc1``, ``lp_acc5`` (with at least 5 classes), ``lp_mean_per_class_recall``.
    """
    check_classes(train[1], num_classes, val=None if val is None else val[1], test=test[1])
    search: dict[float, Score] = {}
    if C is None:
        if val is None or len(val[1]) == 0:
            raise ValueError("choosing C needs a validation split; give one or a fixed C")
        x_tr, y_tr = train
        x_val, y_val = val
        C, search = search_c(
            lambda c: validation_score(fit_logistic(x_tr, y_tr, c, max_iter), x_val, y_val),
            on_evaluate=on_evaluate,
        )
    x_fit, y_fit = train
    if val is not None and len(val[1]):
        x_fit, y_fit = np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]])
    model = fit_logistic(x_fit, y_fit, C, max_iter)
    topk = _topk_classes(model, test[0], 5)
    metrics = classification_metrics(topk, torch.from_numpy(test[1].astype(np.int64)), num_classes)
    return ProbeResult(C=float(C), metrics={f"lp_{k}": v for k, v in metrics.items()}, search=search)
