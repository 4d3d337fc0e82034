"""A directory of extracted features, keyed by everything that changes them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import numpy as np

__all__ = ["FeatureCache"]

_FORMAT = 1


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
