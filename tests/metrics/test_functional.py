"""Every metric against scikit-learn, with ties in the scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    balanced_accuracy_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion

from clip_lightning.metrics import (
    average_precision_11point,
    binary_roc_auc,
    classification_metrics,
    confusion_matrix,
    mean_average_precision_11point,
    mean_per_class_recall,
    ranked_metrics,
    topk_accuracy,
    true_class_rank,
)
from tests.metrics.references import voc07_reference


@pytest.mark.parametrize("num_classes", [3, 10, 100])
@pytest.mark.parametrize("missing_classes", [False, True])
def test_topk_metrics_equal_scikit_learn(num_classes: int, missing_classes: bool) -> None:
    gen = torch.Generator().manual_seed(num_classes)
    logits = torch.randn(700, num_classes, generator=gen)
    high = num_classes - 1 if missing_classes else num_classes  # the last class never in targets
    target = torch.randint(0, high, (700,), generator=gen)
    logits[torch.arange(700), target] += 1.0  # better than chance
    k = min(5, num_classes)
    ours = classification_metrics(logits.topk(k).indices, target, num_classes)
    ranked = ranked_metrics(true_class_rank(logits, target), logits.argmax(1), target, num_classes)
    y, scores = target.numpy(), logits.numpy()
    assert ours["acc1"] == pytest.approx((scores.argmax(1) == y).mean(), abs=1e-7)
    assert ours["mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(y, scores.argmax(1)), abs=1e-7
    )
    if num_classes >= 5:
        ref = top_k_accuracy_score(y, scores, k=5, labels=np.arange(num_classes))
        assert ours["acc5"] == pytest.approx(ref, abs=1e-7)
        assert topk_accuracy(logits, target, 5) == pytest.approx(ref, abs=1e-12)
    else:
        assert "acc5" not in ours
    assert ranked == pytest.approx(ours, abs=1e-7)  # no ties in random floats: the same either way


@pytest.mark.parametrize("num_classes", [2, 6, 30])
def test_ties_rank_the_lower_class_first(num_classes: int) -> None:
    gen = torch.Generator().manual_seed(num_classes)
    scores = torch.randint(0, 3, (500, num_classes), generator=gen).float()  # many ties
    target = torch.randint(0, num_classes, (500,), generator=gen)
    y, s, labels = target.numpy(), scores.numpy(), np.arange(num_classes)
    if num_classes == 2:  # scikit-learn scores 2 classes by one score, class 1 only when above 0
        ref = top_k_accuracy_score(y, s[:, 1] - s[:, 0], k=1, labels=labels)
        assert topk_accuracy(scores, target, 1) == pytest.approx(ref, abs=1e-12)
        assert topk_accuracy(scores, target, 2) == 1.0
    else:  # it ranks the higher index first among ties: reversing the classes makes its rule ours
        for k in (1, 2, 5):
            ref = top_k_accuracy_score(num_classes - 1 - y, s[:, ::-1], k=k, labels=labels)
            assert topk_accuracy(scores, target, k) == pytest.approx(ref, abs=1e-12)
        assert topk_accuracy(scores, target, 1) != pytest.approx(
            top_k_accuracy_score(y, s, k=1, labels=labels)
        )
    rank = true_class_rank(scores, target)
    metrics = ranked_metrics(rank, scores.argmax(1), target, num_classes)
    matrix = confusion_matrix(scores.argmax(1), target, num_classes)
    assert metrics["acc1"] == pytest.approx(float(matrix.trace()) / 500, abs=1e-15)  # argmax's tie rule
    assert metrics["mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(y, s.argmax(1)), abs=1e-12
    )
    assert mean_per_class_recall(scores, target, num_classes) == metrics["mean_per_class_recall"]


def test_confusion_matrix_equals_scikit_learn() -> None:
    gen = torch.Generator().manual_seed(0)
    preds, target = torch.randint(0, 7, (300,), generator=gen), torch.randint(0, 7, (300,), generator=gen)
    ours = confusion_matrix(preds, target, 7).numpy()
    assert (ours == sk_confusion(target.numpy(), preds.numpy(), labels=range(7))).all()


@pytest.mark.parametrize("levels", [None, 4, 12])  # continuous scores, or few distinct values (ties)
def test_eleven_point_map_equals_the_reference(levels: int | None) -> None:
    gen = torch.Generator().manual_seed(levels or 0)
    target = (torch.rand(400, 8, generator=gen) < torch.linspace(0.02, 0.5, 8)).long()
    scores = torch.randn(400, 8, generator=gen) + target * torch.linspace(0.0, 2.0, 8)
    if levels is not None:
        scores = (scores * levels / 4).round()
    target[:, 3] = 0  # a class without positives: no AP, left out of the mean
    ap = average_precision_11point(scores, target)
    y, s = target.numpy(), scores.numpy()
    expected = [voc07_reference(y[:, c], s[:, c]) for c in range(8) if c != 3]
    assert torch.isnan(ap[3])
    np.testing.assert_allclose(np.delete(ap.numpy(), 3), expected, rtol=0, atol=1e-12)
    assert mean_average_precision_11point(scores, target) == pytest.approx(np.mean(expected), abs=1e-12)
    shuffled = torch.randperm(400, generator=gen)
    assert mean_average_precision_11point(
        scores[shuffled], target[shuffled]
    ) == mean_average_precision_11point(scores, target)  # any order of the same rows: the same bits


def test_eleven_point_ap_counts_recall_exactly_three_tenths() -> None:
    # 10 positives; the 3 best-scored samples are positives, then 90 negatives, then the other 7.
    # Recall is exactly 0.3 at precision 1: t = 0, 0.1, 0.2, 0.3 get 1.0; the rest 10/100.
    target = torch.tensor([1] * 3 + [0] * 90 + [1] * 7)[:, None]
    scores = -torch.arange(100.0)[:, None]
    expected = (4 * 1.0 + 7 * 0.1) / 11
    assert float(average_precision_11point(scores, target)[0]) == pytest.approx(expected, abs=1e-15)
    assert voc07_reference(target[:, 0].numpy(), scores[:, 0].numpy()) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_equals_scikit_learn(ties: bool) -> None:
    gen = torch.Generator().manual_seed(int(ties))
    target = torch.randint(0, 2, (300,), generator=gen)
    logits = torch.randn(300, 2, generator=gen)
    logits[:, 1] += 0.8 * target
    if ties:
        logits = logits.round()
    expected = roc_auc_score(target.numpy(), (logits[:, 1].double() - logits[:, 0].double()).numpy())
    assert binary_roc_auc(logits, target) == pytest.approx(expected, abs=1e-12)
    score = torch.randn(300, generator=gen).round()
    assert binary_roc_auc(score, target) == pytest.approx(
        roc_auc_score(target.numpy(), score.numpy()), abs=1e-12
    )


def test_undefined_and_invalid_inputs() -> None:
    assert np.isnan(binary_roc_auc(torch.randn(5), torch.ones(5, dtype=torch.long)))  # one class only
    with pytest.raises(ValueError, match="must be 0 or 1"):
        binary_roc_auc(torch.randn(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="must be 0 or 1"):
        average_precision_11point(torch.randn(3, 2), torch.tensor([[0, 1], [1, -1], [0, 0]]))
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        average_precision_11point(torch.randn(3, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="k must be at least 1"):
        topk_accuracy(torch.randn(3, 2), torch.tensor([0, 1, 1]), 0)
