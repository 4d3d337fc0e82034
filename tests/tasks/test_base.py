"""The frozen-backbone task's contract with callbacks: features on request, results through a method."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

from clip_lightning import CLIPDataModule, CLIPEvaluator
from clip_lightning.errors import ConfigError
from clip_lightning.tasks.base import FrozenBackboneTask
from tests.helpers import TINY_VIT, random_state_dict


@pytest.fixture
def evaluator(tmp_path: Path) -> CLIPEvaluator:
    torch.save(random_state_dict(TINY_VIT, seed=5), tmp_path / "tiny.pt")
    return CLIPEvaluator(name=str(tmp_path / "tiny.pt"))


class Contributor(Callback):
    """Adds a task's results at the end of the test epoch; sees no results.json before the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written_early: list[str] = []

    def _check(self, hook: str) -> None:
        if list(self.folder.rglob("results.json")):
            self.written_early.append(hook)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        assert isinstance(pl_module, FrozenBackboneTask)
        pl_module.request_features(["test"], "penultimate")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert isinstance(pl_module, FrozenBackboneTask)
        self._check("on_test_epoch_end")
        index, features = pl_module.gathered("test", "features")
        pl_module.add_results(
            "feature_stats", {"feature_norm": float(features.norm(dim=1).mean())}, stats={"rows": len(index)}
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check("on_test_end")


def test_callback_results_land_in_the_one_results_file(evaluator: CLIPEvaluator, tmp_path: Path) -> None:
    contributor = Contributor(tmp_path / "logs")
    dm = CLIPDataModule("digits", batch_size=128, num_workers=0, transform=evaluator.preprocess)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=CSVLogger(tmp_path / "logs"),
        enable_progress_bar=False,
        callbacks=[contributor],
    )
    trainer.test(evaluator, dm, verbose=False)
    assert contributor.written_early == []  # written once, after every hook of the test epoch
    (path,) = (tmp_path / "logs").rglob("results.json")
    result = json.loads(path.read_text())
    assert result["task"] == "zeroshot_classification+feature_stats"
    assert set(result["metrics"]) == {"acc1", "acc5", "mean_per_class_recall", "feature_norm"}
    assert result["stats"] == {"rows": 359} and result["num_test_samples"] == 359
    assert evaluator.feature_splits == {"test"}
    assert evaluator.results().to_json() == result


def test_features_of_unknown_kind_are_refused(evaluator: CLIPEvaluator) -> None:
    with pytest.raises(ConfigError, match="'projected' or 'penultimate'"):
        evaluator.request_features(["train"], "logits")  # type: ignore[arg-type]


def test_a_frozen_model_has_nothing_to_train(evaluator: CLIPEvaluator) -> None:
    with pytest.raises(RuntimeError, match="nothing to train"):
        evaluator.configure_optimizers()


def test_pretrained_names_where_the_weights_come_from(evaluator: CLIPEvaluator) -> None:
    assert evaluator.pretrained_tag().endswith("tiny.pt")
    assert CLIPEvaluator(name="ViT-B/32", pretrained=False).pretrained_tag() == "random"
