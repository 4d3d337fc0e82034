from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from clip_lightning.errors import ConfigError
from clip_lightning.probe import torch_solver
from clip_lightning.probe.protocol import linear_probe

with warnings.catch_warnings():
    warnings.simplefilter("ignore")


def test_fixed_c_refits_on_train_plus_val_and_reports_lp_metrics() -> None:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    fits: list[Any] = []
    result = linear_probe(
        (x[:1000], y[:1000]), (x[1000:1200], y[1000:1200]), (x[1200:], y[1200:]), 10, C=0.316,
        on_fit=lambda c, model: fits.append(model),
    )  # fmt: skip
    assert result.C == 0.316 and not result.search and len(fits) == 1
    # The refit is the fit on train + val, rows in that order, bit for bit.
    alone = torch_solver.fit_logistic(x[:1200], y[:1200], 0.316)
    assert torch.equal(fits[0].weight, alone.weight) and torch.equal(fits[0].bias, alone.bias)
    # scikit-learn at the same C: within two of 597 test samples (measured: 549 against 550;
    # where L-BFGS stops at tol=1e-4 depends on rounding).
    ref = LogisticRegression(solver="lbfgs", max_iter=1000, random_state=0, C=0.316).fit(x[:1200], y[:1200])
    assert result.metrics["lp_acc1"] == pytest.approx(ref.score(x[1200:], y[1200:]), abs=2 / 597 + 1e-9)
    assert set(result.metrics) == {"lp_acc1", "lp_acc5", "lp_mean_per_class_recall"}


@pytest.mark.parametrize("C", [None, 0.316])
def test_training_labels_that_miss_classes_are_refused_before_any_fit(
    C: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("fitted before the labels were checked")

    monkeypatch.setattr("clip_lightning.probe.protocol.fit_logistic", no_fit)
    x, y = load_digits(return_X_y=True)
    head = np.isin(y, [0, 1])  # what a class-ordered split cut short holds
    with pytest.raises(ConfigError, match="val features hold 8 classes that its train features lack"):
        linear_probe((x[head], y[head]), (x[:50], y[:50]), (x[50:], y[50:]), 10, C=C)
    with pytest.raises(
        ConfigError, match=r"test features hold 8 classes that .* \(indices 2, 3, 4, 5, 6, \.\.\.\), which it"
    ):
        linear_probe((x[head], y[head]), None, (x, y), 10, C=0.316)
    with pytest.raises(ConfigError, match="only 2 of 10 classes, too few to fit a probe and score top-5"):
        linear_probe((x[head], y[head]), None, (x[head], y[head]), 10, C=0.316)
    only = y == 0
    with pytest.raises(ConfigError, match="only 1 of 3 classes, too few to fit a probe;"):
        linear_probe((x[only], y[only]), None, (x[only], y[only]), 3, C=0.316)
