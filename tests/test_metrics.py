from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from clip_lightning.metrics import classification_metrics, confusion_matrix


@pytest.mark.parametrize("num_classes", [3, 10, 100])
@pytest.mark.parametrize("missing_classes", [False, True])
def test_metrics_equal_scikit_learn(num_classes: int, missing_classes: bool) -> None:
    gen = torch.Generator().manual_seed(num_classes)
    logits = torch.randn(700, num_classes, generator=gen)
    high = num_classes - 1 if missing_classes else num_classes  # the last class never in targets
    target = torch.randint(0, high, (700,), generator=gen)
    logits[torch.arange(700), target] += 1.0  # better than chance
    k = min(5, num_classes)
    ours = classification_metrics(logits.topk(k).indices, target, num_classes)
    y, scores = target.numpy(), logits.numpy()
    assert ours["acc1"] == pytest.approx((scores.argmax(1) == y).mean(), abs=1e-7)
    assert ours["mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(y, scores.argmax(1)), abs=1e-7
    )
    if num_classes >= 5:
        ref = top_k_accuracy_score(y, scores, k=5, labels=np.arange(num_classes))
        assert ours["acc5"] == pytest.approx(ref, abs=1e-7)
    else:
        assert "acc5" not in ours


def test_confusion_matrix_equals_scikit_learn() -> None:
    gen = torch.Generator().manual_seed(0)
    preds, target = torch.randint(0, 7, (300,), generator=gen), torch.randint(0, 7, (300,), generator=gen)
    ours = confusion_matrix(preds, target, 7).numpy()
    assert (ours == sk_confusion(target.numpy(), preds.numpy(), labels=range(7))).all()
