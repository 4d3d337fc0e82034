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


def near_separable(
    per_class: int = 5, classes: int = 50, dims: int = 128, seed: int = 0
) -> list[tuple[Any, Any]]:
    """Few rows per class in many dimensions: train, val and test, Gaussian class means plus noise."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dims)).astype(np.float32) * 0.4

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(classes), n)
        return means[y] + rng.standard_normal((len(y), dims)).astype(np.float32), y

    return [draw(per_class), draw(max(1, per_class // 4)), draw(20)]


def test_without_warm_starts_the_torch_search_takes_scikit_learns_path_and_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On near-separable features a warm start can already meet tol at the next C, so fits there
    # return it (measured on these: C 4.217, test top-1 72.90% against scikit-learn's 13.34 and
    # 73.70%). From zeros every fit follows scikit-learn's path: the same C and metrics.
    (train, val, test), starts = near_separable(), []
    fit = torch_solver.LogisticProblem.fit
    monkeypatch.setattr(
        torch_solver.LogisticProblem,
        "fit",
        lambda self, C, m, init=None: starts.append(init) or fit(self, C, m, init=init),
    )
    ours = linear_probe(train, val, test, 50, warm_start=False)
    reference = linear_probe(train, val, test, 50, solver="sklearn")
    assert len(starts) == len(ours.fits) == 16 and all(init is None for init in starts)
    assert ours.C == reference.C
    assert ours.metrics == pytest.approx(reference.metrics, abs=1e-6)  # of 1,000 test samples
