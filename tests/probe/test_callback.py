from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression

from clip_lightning import CLIPDataModule, CLIPEvaluator, LinearProbe
from clip_lightning.errors import ConfigError
from clip_lightning.probe.torch_solver import LogisticProblem
from tests.helpers import TINY_VIT, oracle_model, random_state_dict
from tests.test_cli import Cli, conf, results

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.clip import _transform as openai_transform


@pytest.mark.shared
@pytest.mark.slow
def test_probe_on_real_images_matches_original_features(shared_data: Path, tmp_path: Path) -> None:
    """Random weights, real CIFAR-10 images: well above chance, and within 0.5 points of the
    original model code's features fitted by scikit-learn at the chosen C."""
    sd = random_state_dict(TINY_VIT, seed=11)
    torch.save(sd, tmp_path / "tiny.pt")
    root = shared_data / "cifar10-subset"
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"), zero_shot=False)
    dm = CLIPDataModule(
        "imagefolder", root=str(root), batch_size=256, num_workers=2, transform=evaluator.preprocess
    )
    probe = LinearProbe(feature_kind="projected")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[probe])
    metrics = trainer.test(evaluator, dm, verbose=False)[0]
    C = evaluator.results().to_json()["linear_probe"]["C"]
    assert metrics["test/lp_acc1"] > 0.25  # chance is 0.10

    ref = oracle_model(sd)
    transform = openai_transform(ref.visual.input_resolution)

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        files = sorted((root / split).glob("*/*.png"))
        classes = sorted(p.name for p in (root / split).iterdir())
        labels = np.array([classes.index(f.parent.name) for f in files])
        with torch.no_grad():
            feats = torch.cat(
                [
                    ref.encode_image(torch.stack([transform(Image.open(f)) for f in files[i : i + 512]]))
                    for i in range(0, len(files), 512)
                ]
            )
        return feats.numpy(), labels

    (x_train, y_train), (x_test, y_test) = features("train"), features("test")
    clf = LogisticRegression(solver="lbfgs", max_iter=1000, random_state=0, C=C).fit(x_train, y_train)
    assert abs(clf.score(x_test, y_test) - metrics["test/lp_acc1"]) <= 0.005


def _run(
    tmp_path: Path, cache_dir: Path, **evaluator_args: object
) -> tuple[dict, CLIPEvaluator, CLIPDataModule]:
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"), **evaluator_args)
    dm = CLIPDataModule("digits", batch_size=128, num_workers=0, transform=evaluator.preprocess)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        callbacks=[LinearProbe(C=1.0, cache_dir=str(cache_dir), max_iter=200)],
    )
    metrics = trainer.test(evaluator, dm, verbose=False)[0]
    return metrics, evaluator, dm


def test_probe_uses_cache_and_invalidates_on_change(tmp_path: Path) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=5), tmp_path / "tiny.pt")
    cache_dir = tmp_path / "cache"
    first, _, dm = _run(tmp_path, cache_dir)
    files = sorted(cache_dir.glob("*.npz"))
    assert len(files) == 1  # C is fixed: train only (test is always extracted)
    second, evaluator, dm = _run(tmp_path, cache_dir)
    assert dm.test_splits == ["test"] and evaluator.feature_splits == {"test"}  # train came from the cache
    assert first == second
    # Another checkpoint: a miss, a new entry; the old one is untouched.
    torch.save(random_state_dict(TINY_VIT, seed=6), tmp_path / "tiny.pt")
    third, evaluator, dm = _run(tmp_path, cache_dir)
    assert "train" in dm.test_splits
    assert len(list(cache_dir.glob("*.npz"))) == 2
    assert third != first
    with np.load(files[0]) as data:
        assert json.loads(str(data["key"]))["split"] == "train"


@pytest.mark.parametrize("kind", ["projected", "penultimate"])
def test_feature_kind_shapes(tmp_path: Path, kind: str) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=5), tmp_path / "tiny.pt")
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"))
    dm = CLIPDataModule("digits", batch_size=128, num_workers=0, transform=evaluator.preprocess)
    cache_dir = tmp_path / kind
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        callbacks=[LinearProbe(C=1.0, feature_kind=kind, cache_dir=str(cache_dir), max_iter=100)],
    )
    trainer.test(evaluator, dm, verbose=False)
    (file,) = cache_dir.glob("*.npz")
    with np.load(file) as data:
        assert data["features"].shape == (1295, 32 if kind == "projected" else 64)
        assert data["features"].dtype == np.float32
        assert np.array_equal(data["index"], np.arange(1295))


@pytest.mark.parametrize("batches", [3, 1])  # an int 1 is one batch in Lightning (1.0 is all of them)
def test_limited_run_probes_what_it_saw_and_caches_nothing(tmp_path: Path, batches: int) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=5), tmp_path / "tiny.pt")
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"))
    dm = CLIPDataModule("digits", batch_size=100, num_workers=0, transform=evaluator.preprocess)
    cache_dir = tmp_path / "cache"
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, limit_test_batches=batches,
        callbacks=[LinearProbe(C=1.0, cache_dir=str(cache_dir), max_iter=100)],
    )  # fmt: skip
    metrics = trainer.test(evaluator, dm, verbose=False)[0]
    assert 0.0 <= metrics["test/lp_acc1"] <= 1.0
    assert not list(cache_dir.glob("*.npz"))  # a partial split must never be reused as whole


def test_an_unwritable_cache_is_refused_before_any_feature_is_extracted(tmp_path: Path) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=5), tmp_path / "tiny.pt")
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"))
    dm = CLIPDataModule("digits", batch_size=100, num_workers=0, transform=evaluator.preprocess)
    probe = LinearProbe(C=1.0, cache_dir=str(tmp_path / "tiny.pt" / "cache"))  # under a file: unwritable
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[probe])
    with pytest.raises(ConfigError, match=r"cannot write the probe's feature cache .*cache_dir"):
        trainer.test(evaluator, dm, verbose=False)
    assert evaluator.feature_splits == frozenset()  # stopped in setup, before any batch


def test_the_cli_can_start_every_fit_of_the_search_from_zeros(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")  # the checkpoint the config names
    starts: list[object] = []
    fit = LogisticProblem.fit
    monkeypatch.setattr(
        LogisticProblem,
        "fit",
        lambda self, C, max_iter=1000, tol=1e-4, init=None: (
            starts.append(init) or fit(self, C, max_iter, tol, init)
        ),
    )
    code, _, err = cli("test", *conf(probe={"warm_start": False, "max_iter": 30}))
    assert code == 0, err[-3000:]
    probe = results(tmp_path)["linear_probe"]
    assert probe["warm_start"] is False and probe["C_searched"] and probe["solver"] == "torch"
    assert len(starts) == len(probe["fits"]) == 16 and all(init is None for init in starts)
