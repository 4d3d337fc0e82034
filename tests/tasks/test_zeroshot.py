from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from clip_lightning import CLIPDataModule, CLIPEvaluator, LinearProbe
from clip_lightning.datasets import register, unregister
from clip_lightning.datasets.prompts import dataset_prompts
from clip_lightning.errors import ConfigError
from clip_lightning.tasks.scoring import Scoring
from tests.helpers import TINY_VIT, oracle_model, random_state_dict
from tests.metrics.references import voc07_map_reference
from tests.tasks.toy_data import toy_binary, toy_multilabel

ROOT = Path(__file__).resolve().parents[2]

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip as openai_clip
    from clip.clip import _transform as openai_transform


def _trainer() -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    sd = random_state_dict(TINY_VIT, seed=7)
    path = tmp_path / "tiny.pt"
    torch.save(sd, path)
    return path, sd


@pytest.mark.shared
def test_predictions_equal_original_code_on_real_images(
    shared_data: Path, tiny_checkpoint, tmp_path: Path
) -> None:
    path, sd = tiny_checkpoint
    root = shared_data / "cifar10-subset"
    evaluator = CLIPEvaluator(name=str(path), templates="cifar10")
    dm = CLIPDataModule(
        "imagefolder", root=str(root), batch_size=128, num_workers=0, transform=evaluator.preprocess
    )
    trainer = _trainer()
    (metrics,) = trainer.test(evaluator, dm, verbose=False)
    batches = trainer.predict(evaluator, dm)
    ours_logits = torch.cat([b["logits"] for b in batches])
    labels = torch.cat([b["label"] for b in batches]).numpy()

    # Independent computation: OpenAI's model code, OpenAI's transform, the notebook's classifier loop.
    ref = oracle_model(sd)
    classnames = [c.replace("_", " ") for c in sorted(p.name for p in (root / "test").iterdir())]
    templates = dataset_prompts("cifar10")[1]
    with torch.no_grad():
        weights = []
        for name in classnames:
            emb = ref.encode_text(openai_clip.tokenize([t.format(name) for t in templates]))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.mean(dim=0)
            weights.append(emb / emb.norm())
        classifier = torch.stack(weights, dim=1)
        transform = openai_transform(ref.visual.input_resolution)
        files = sorted((root / "test").glob("*/*.png"))
        images = torch.stack([transform(Image.open(f)) for f in files])
        feats = ref.encode_image(images)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        ref_logits = ref.logit_scale.exp() * feats @ classifier
    ref_pred = ref_logits.argmax(dim=1).numpy()
    assert ours_logits.shape == (1017, 10)
    assert (ours_logits.argmax(dim=1).numpy() == ref_pred).all()
    torch.testing.assert_close(ours_logits, ref_logits, rtol=1e-4, atol=1e-4)
    assert metrics["test/acc1"] == pytest.approx((ref_pred == labels).mean(), abs=1e-6)
    assert metrics["test/mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(labels, ref_pred), abs=1e-6
    )


def test_transform_of_another_resolution_is_refused(tiny_checkpoint) -> None:
    path, _ = tiny_checkpoint
    evaluator = CLIPEvaluator(name=str(path))
    from clip_lightning.models.transform import image_transform

    dm = CLIPDataModule("digits", batch_size=64, num_workers=0, transform=image_transform(224))
    with pytest.raises(ConfigError, match="crops to 224 px"):
        _trainer().test(evaluator, dm, verbose=False)


def test_missing_transform_is_refused(tiny_checkpoint) -> None:
    path, _ = tiny_checkpoint
    with pytest.raises(ConfigError, match="no transform"):
        _trainer().test(CLIPEvaluator(name=str(path)), CLIPDataModule("digits", num_workers=0), verbose=False)


def test_validate_and_batches_carry_index(tiny_checkpoint) -> None:
    path, _ = tiny_checkpoint
    evaluator = CLIPEvaluator(name=str(path))
    dm = CLIPDataModule("digits", batch_size=50, num_workers=0, transform=evaluator.preprocess)
    dm.setup("validate")
    image, _label, index = next(iter(dm.val_dataloader()))
    assert image.shape == (50, 3, 32, 32) and index.tolist() == list(range(50))
    (metrics,) = _trainer().validate(evaluator, dm, verbose=False)
    assert set(metrics) >= {"val/acc1", "val/acc5", "val/mean_per_class_recall"}


def test_random_weights_refuse_unknown_architecture() -> None:
    with pytest.raises(ConfigError, match="pretrained=False"):
        CLIPEvaluator(name="ViT-X/99", pretrained=False)


def test_bf16_precision_is_honoured(tiny_checkpoint) -> None:
    path, _ = tiny_checkpoint
    evaluator = CLIPEvaluator(name=str(path))
    dm = CLIPDataModule("digits", batch_size=128, num_workers=0, transform=evaluator.preprocess)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, precision="bf16-mixed"
    )
    (bf16,) = trainer.test(evaluator, dm, verbose=False)
    (fp32,) = _trainer().test(CLIPEvaluator(name=str(path)), dm, verbose=False)
    assert abs(bf16["test/acc1"] - fp32["test/acc1"]) < 0.05
    assert np.isfinite(bf16["test/acc1"])


# ---- scoring from full logits: multi-label (mAP) and 2-class (ROC AUC) data ------------------


@pytest.fixture
def toy_data() -> Iterator[None]:
    infos = [register(toy_multilabel()), register(toy_binary())]
    try:
        yield
    finally:
        for info in infos:
            unregister(info.name)


def test_multilabel_data_is_scored_by_11_point_map(
    tiny_checkpoint, toy_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = tiny_checkpoint
    evaluator = CLIPEvaluator(name=str(path))
    dm = CLIPDataModule("toy_multilabel", batch_size=7, num_workers=0, transform=evaluator.preprocess)
    (metrics,) = _trainer().test(evaluator, dm, verbose=False)
    index, labels, logits = evaluator.gathered("test", "label", "logits")
    assert index.tolist() == list(range(31)) and labels.shape == logits.shape == (31, 4)
    assert logits.dtype == torch.float32
    expected = voc07_map_reference(labels.numpy(), logits.numpy())
    assert metrics["test/mean_average_precision"] == pytest.approx(expected, abs=1e-7)  # logged as float32
    assert metrics["hp_metric"] == metrics["test/mean_average_precision"]
    assert not any(
        k.endswith(("acc1", "acc5", "recall")) for k in metrics
    )  # single-label metrics do not apply
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["metrics"] == {"mean_average_precision": pytest.approx(expected, abs=1e-12)}
    assert result["main_metric"] == "mean_average_precision"
    assert result["main_metric_value"] == result["metrics"]["mean_average_precision"]
    assert "mean_average_precision" in capsys.readouterr().out.split("(main metric)")[0].splitlines()[-1]
    assert not list(tmp_path.glob("*confusion_matrix.png"))  # no confusion matrix for multi-label data
    _trainer().predict(evaluator, dm)
    with np.load(tmp_path / "predictions.npz") as written:
        np.testing.assert_array_equal(written["label"], labels.numpy())
        assert written["logits"].shape == (31, 4)


def test_two_class_data_is_scored_by_roc_auc(tiny_checkpoint, toy_data, tmp_path: Path) -> None:
    path, _ = tiny_checkpoint
    evaluator = CLIPEvaluator(name=str(path))
    dm = CLIPDataModule("toy_binary", batch_size=16, num_workers=0, transform=evaluator.preprocess)
    (metrics,) = _trainer().test(evaluator, dm, verbose=False)
    _, labels, logits, pred = evaluator.gathered("test", "label", "logits", "pred")
    y, score = labels.numpy(), (logits[:, 1].double() - logits[:, 0].double()).numpy()
    assert metrics["test/roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-7)
    assert metrics["hp_metric"] == metrics["test/roc_auc"]
    assert metrics["test/acc1"] == pytest.approx(
        (logits.argmax(1) == labels).double().mean().item(), abs=1e-7
    )
    assert torch.equal(pred, logits.argmax(1))
    assert "test/acc5" not in metrics  # two classes
    result = json.loads((tmp_path / "results.json").read_text())
    assert set(result["metrics"]) == {"acc1", "mean_per_class_recall", "roc_auc"}
    assert result["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert result["main_metric"] == "roc_auc" and (tmp_path / "test_confusion_matrix.png").is_file()


def test_main_metric_must_fit_the_data() -> None:
    with pytest.raises(ConfigError, match="'roc_auc' needs 2 classes"):
        Scoring(num_classes=3, main_metric="roc_auc")
    with pytest.raises(ConfigError, match="choose one of"):
        Scoring(num_classes=3, main_metric="top1")
    with pytest.raises(ConfigError, match="does not apply to multi-label"):
        Scoring(num_classes=3, multilabel=True, main_metric="mean_per_class_recall")
    assert not Scoring(num_classes=10).keeps_logits  # a rank and a prediction per image suffice
    assert Scoring(num_classes=10, main_metric="mean_average_precision").keeps_logits


def test_linear_probe_refuses_multilabel_data(tiny_checkpoint, toy_data) -> None:
    path, _ = tiny_checkpoint
    evaluator = CLIPEvaluator(name=str(path))
    dm = CLIPDataModule("toy_multilabel", batch_size=8, num_workers=0, transform=evaluator.preprocess)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[LinearProbe(C=0.3)]
    )
    with pytest.raises(ConfigError, match="LinearProbe fits one class per image"):
        trainer.test(evaluator, dm, verbose=False)


@pytest.mark.ddp
def test_multilabel_two_processes_equal_one(tmp_path: Path) -> None:
    """31 images over 2 processes: the sampler repeats one; the gathered logits and mAP must not change."""
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    script = (
        tmp_path / "toy_cli.py"
    )  # a script, so Lightning's DDP launcher re-runs it (and registers) for rank 1
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from clip_lightning.datasets import register\n"
        "from tests.tasks.toy_data import toy_multilabel\n"
        "register(toy_multilabel())\n"
        "from clip_lightning.cli import main\n"
        "main()\n"
    )
    config = ["--config", str(ROOT / "tests" / "conf" / "zeroshot.yaml"), "--data.dataset", "toy_multilabel"]
    for devices in (1, 2):
        proc = subprocess.run(
            [sys.executable, str(script), "test", *config, "--data.batch_size", "5",
             "--trainer.devices", str(devices), "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"runs/t/version_{v}/results.json").read_text()) for v in (0, 1))
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["metrics"] == two["metrics"] and set(one["metrics"]) == {"mean_average_precision"}
    assert one["main_metric"] == two["main_metric"] == "mean_average_precision"


def test_a_main_metric_must_be_among_the_metrics(tiny_checkpoint) -> None:
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError, match="main metric 'roc_auc' is not among"):
        CLIPEvaluator(name=str(path)).add_results(
            "zeroshot_classification", {"acc1": 0.5}, main_metric="roc_auc"
        )
