from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import balanced_accuracy_score

from clip_lightning import CLIPDataModule, CLIPEvaluator
from clip_lightning.datasets.prompts import dataset_prompts
from clip_lightning.errors import ConfigError
from tests.helpers import TINY_VIT, oracle_model, random_state_dict

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
