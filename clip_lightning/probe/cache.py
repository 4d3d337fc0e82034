"""A directory of extracted features, keyed by everything that changes them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

__all__ = ["FeatureCache", "dataset_fingerprint"]

_FORMAT = 1


def dataset_fingerprint(dataset: Dataset) -> str:
    """A digest of a split's samples: which files (with size and mtime) or which pixels, and labels."""
    digest = hashlib.sha256(type(dataset).__name__.encode())
    if isinstance(dataset, Subset):
        digest.update(dataset_fingerprint(dataset.dataset).encode())
        digest.update(np.asarray(dataset.indices, dtype=np.int64).tobytes())
        return digest.hexdigest()
    samples = getattr(dataset, "samples", None)
    if samples is not None:  # image folders: paths, labels and file identity
        for path, label in samples:
            st = os.stat(path)
            digest.update(f"{os.path.abspath(path)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()
    for attr in ("data", "images"):  # in-memory arrays (CIFAR, MNIST, digits)
        array = getattr(dataset, attr, None)
        if array is not None:
            digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
    for attr in ("targets", "labels", "_labels", "_image_files"):
        values = getattr(dataset, attr, None)
        if values is not None:
            digest.update(repr(list(values)).encode())
    digest.update(str(len(dataset)).encode())  # type: ignore[arg-type]
    return digest.hexdigest()


class FeatureCache:
    """Features saved as ``<sha256 of key>.npz``, each holding its full key to check on read.

    Writes go to a temporary file renamed into place, so a killed run leaves at most a
    ``.tmp`` file that is never read; any change in the key is a miss, never a stale hit.
    """

    def __init__(self, root: str) -> None:
        self.root = root

    @staticmethod
    def _digest(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def path(self, key: dict[str, Any]) -> str:
        return os.path.join(self.root, f"{self._digest(key)}.npz")

    def load(self, key: dict[str, Any]) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = json.loads(str(data["key"]))
                if stored != {**key, "format": _FORMAT}:
                    return None
                return {k: data[k] for k in data.files if k != "key"}
        except (OSError, ValueError, KeyError):
            return None  # unreadable: treated as a miss and overwritten

    def save(self, key: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        os.makedirs(self.root, exist_ok=True)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                payload: dict[str, Any] = {
                    "key": np.array(json.dumps({**key, "format": _FORMAT}, sort_keys=True))
                }
                payload.update(arrays)
                np.savez(f, **payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path
