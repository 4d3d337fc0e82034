from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clip_lightning.probe.cache import STALE_AFTER_S, FeatureCache

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


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path: Path, damage: str) -> None:
    cache = FeatureCache(str(tmp_path))
    arrays = {"features": np.arange(600, dtype=np.float32).reshape(100, 6), "index": np.arange(100)}
    path = Path(cache.save(KEY, arrays))
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    assert cache.load(KEY) is None and cache.peek(KEY) is None
    cache.save(KEY, arrays)
    np.testing.assert_array_equal(cache.load(KEY)["features"], arrays["features"])  # type: ignore[index]


def test_entries_have_ordinary_file_modes(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = FeatureCache(str(tmp_path)).save(KEY, {"index": np.arange(3)})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_temporary_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    """What a killed write leaves is removed when the cache is opened or written; a temporary file
    that is recent, or that a live writer holds locked, stays."""
    old = time.time() - STALE_AFTER_S - 60

    def temporary(name: str, mtime: float | None = None) -> Path:
        path = tmp_path / name
        path.write_bytes(b"partial")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    dead, recent, held = temporary(".dead.tmp", old), temporary(".recent.tmp"), temporary(".held.tmp", old)
    other = temporary("notes.tmp", old)  # not a name the cache makes: never touched
    with open(held, "r+b") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # as a live writer in another process holds its file
        cache = FeatureCache(str(tmp_path))  # opening cleans
        assert not dead.exists() and recent.exists() and held.exists() and other.exists()
    os.utime(recent, (old, old))  # its writer died since; the held one's writer is gone (no lock)
    entry = cache.save(KEY, {"index": np.arange(3)})  # writing cleans
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["notes.tmp", os.path.basename(entry)])


def test_a_writer_holds_its_temporary_file_locked_until_it_is_in_place(tmp_path: Path) -> None:
    cache = FeatureCache(str(tmp_path))
    seen: list[bool] = []

    def chunks() -> Iterator[np.ndarray]:
        yield np.zeros((2, 3), np.float32)
        (tmp,) = tmp_path.glob(".*.tmp")
        os.utime(tmp, (0, 0))  # even when it looks abandoned, a cleaner must leave it
        assert cache.remove_stale() == [] and tmp.exists()
        with open(tmp, "r+b") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append(False)
            except BlockingIOError:
                seen.append(True)
        yield np.ones((1, 3), np.float32)

    cache.save_streamed(KEY, {"index": np.arange(3)}, ("features", np.dtype(np.float32), (3, 3), chunks()))
    assert seen == [True]
    hit = cache.load(KEY)
    assert hit is not None and hit["features"].tolist() == [[0.0] * 3] * 2 + [[1.0] * 3]
