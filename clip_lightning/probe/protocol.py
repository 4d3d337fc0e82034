"""The CLIP paper's linear-probe protocol: check the labels, choose C on val, refit on train + val, test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from ..metrics import classification_metrics
from .search import Score, search_c
from .sklearn_solver import fit_logistic, topk_classes, validation_score

__all__ = ["ProbeResult", "check_classes", "linear_probe"]


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
    """The chosen C, the test metrics (``lp_*``) and the search's ``{log10 C: score}``."""

    C: float
    metrics: dict[str, float]
    search: dict[float, Score] = field(default_factory=dict)


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
    topk = topk_classes(model, test[0], 5)
    metrics = classification_metrics(topk, torch.from_numpy(test[1].astype(np.int64)), num_classes)
    return ProbeResult(C=float(C), metrics={f"lp_{k}": v for k, v in metrics.items()}, search=search)
