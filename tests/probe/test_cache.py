from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clip_lightning.probe.cache import FeatureCache

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
