from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from clip_lightning import CLIPDataModule, CLIPEvaluator, LinearProbe
from clip_lightning.probe.cache import FeatureCache

from .helpers import TINY_VIT, random_state_dict

KEY = {"checkpoint": "sha256:abc", "split": "train", "precision": "32-true"}


def test_hit_miss_and_changed_key(tmp_path: Path) -> None:
    cache = FeatureCache(str(tmp_path))
    assert cache.load(KEY) is None
    arrays = {"features": np.arange(6, dtype=np.float32).reshape(2, 3), "labels": np.array([1, 0])}
    cache.save(KEY, arrays)
    hit = cache.load(KEY)
    assert hit is not None and np.array_equal(hit["features"], arrays["features"])
    for change in ({"split": "val"}, {"precision": "bf16-mixed"}, {"checkpoint": "sha256:abd"}):
        assert cache.load({**KEY, **change}) is None


def test_a_killed_write_leaves_nothing_trusted(tmp_path: Path) -> None:
    cache = FeatureCache(str(tmp_path))
    # What a run killed mid-write leaves: a temporary file, never read.
    (tmp_path / ".abc.tmp").write_bytes(b"partial")
    assert cache.load(KEY) is None
    # A damaged or foreign file at the key's path is a miss, not a crash nor a hit.
    Path(cache.path(KEY)).write_bytes(b"garbage")
    assert cache.load(KEY) is None
    cache.save(KEY, {"features": np.zeros((1, 2), np.float32)})
    assert cache.load(KEY) is not None
    # A file whose stored key differs (e.g. a hash collision or a renamed file) is refused.
    other = {**KEY, "split": "val"}
    os.replace(cache.path(KEY), cache.path(other))
    assert cache.load(other) is None


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


def test_limited_run_probes_what_it_saw_and_caches_nothing(tmp_path: Path) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=5), tmp_path / "tiny.pt")
    evaluator = CLIPEvaluator(name=str(tmp_path / "tiny.pt"))
    dm = CLIPDataModule("digits", batch_size=100, num_workers=0, transform=evaluator.preprocess)
    cache_dir = tmp_path / "cache"
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, limit_test_batches=3,
        callbacks=[LinearProbe(C=1.0, cache_dir=str(cache_dir), max_iter=100)],
    )  # fmt: skip
    metrics = trainer.test(evaluator, dm, verbose=False)[0]
    assert 0.0 <= metrics["test/lp_acc1"] <= 1.0
    assert not list(cache_dir.glob("*.npz"))  # a partial split must never be reused as whole
