"""A directory of extracted features, keyed by everything that changes them."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np

from ..reporting import file_mode

__all__ = ["FeatureCache", "read_rows"]

_FORMAT = 1

# A temporary file is stale, and removed, when no process holds its lock and it has not been
# written to for this long (the age covers the instant between its creation and its lock).
STALE_AFTER_S = 10 * 60
# Where the filesystem has no locks, only a file this old is taken as a dead writer's.
STALE_UNLOCKABLE_AFTER_S = 24 * 3600


class FeatureCache:
    """Features saved as ``<sha256 of key>.npz``, each holding its full key to check on read.

    Writes go to a temporary file (``.*.tmp``) renamed into place, so a killed run leaves at
    most a ``.tmp`` file that is never read; any change in the key is a miss, never a stale hit.
    A writer holds an exclusive lock on its temporary file until it is renamed; opening the
    cache and every write remove the temporary files of writers that are gone
    (:meth:`remove_stale`).
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.remove_stale()

    def remove_stale(self) -> list[str]:
        """Remove what killed writes left: ``.*.tmp`` files that no process holds locked and that
        were last written over ``STALE_AFTER_S`` seconds ago (over ``STALE_UNLOCKABLE_AFTER_S``
        where the filesystem cannot lock). Returns their paths; never raises (best effort)."""
        now = time.time()
        try:
            names = [n for n in os.listdir(self.root) if n.startswith(".") and n.endswith(".tmp")]
        except OSError:  # no cache folder yet, or not readable: nothing of ours to remove
            return []
        removed = []
        for name in names:
            path = os.path.join(self.root, name)
            try:
                age = now - os.stat(path).st_mtime
                if age < STALE_AFTER_S:
                    continue
                with open(path, "r+b") as f:  # writable: NFS emulates flock with byte-range locks
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError as err:
                        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN) or age < STALE_UNLOCKABLE_AFTER_S:
                            continue  # a live writer holds it (or it cannot be told: wait longer)
                    os.remove(path)
                removed.append(path)
            except OSError:  # gone already (another cleaner), or not ours to touch
                continue
        return removed

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
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # unreadable (cut short, empty, not a zip): a miss, overwritten on save

    def peek(self, key: dict[str, Any]) -> tuple[str, int] | None:
        """``(path, rows)`` of the entry for ``key`` without reading its features; None on a miss."""
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if json.loads(str(data["key"])) != {**key, "format": _FORMAT}:
                    return None
                return path, len(data["index"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # cut or empty: a miss
            return None

    def save(self, key: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        """Write ``arrays`` under ``key`` (atomically)."""
        payload: dict[str, Any] = {**self._payload(key), **arrays}
        return self._write(key, lambda f: np.savez(f, **payload))

    def save_streamed(
        self,
        key: dict[str, Any],
        arrays: dict[str, np.ndarray],
        rows: tuple[str, np.dtype, tuple[int, ...], Iterator[np.ndarray]],
    ) -> str:
        """Write ``arrays`` and one more array ``rows = (name, dtype, shape, chunks)`` fed chunk by
        chunk (rows in order), so a split larger than memory is never held whole; same file format."""
        name, dtype, shape, chunks = rows

        def write(f: BinaryIO) -> None:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for member, array in {**self._payload(key), **arrays}.items():
                    with archive.open(f"{member}.npy", "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)
                with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                    header = {
                        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                        "fortran_order": False,
                        "shape": shape,
                    }
                    np.lib.format.write_array_header_2_0(out, header)
                    for chunk in chunks:
                        out.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())

        return self._write(key, write)

    @staticmethod
    def _payload(key: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"key": np.array(json.dumps({**key, "format": _FORMAT}, sort_keys=True))}

    def _write(self, key: dict[str, Any], write: Callable[[BinaryIO], None]) -> str:
        os.makedirs(self.root, exist_ok=True)
        self.remove_stale()
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".", suffix=".tmp")
        try:
            os.fchmod(fd, file_mode())  # mkstemp's 0600 would differ from every other file
            with os.fdopen(fd, "wb") as f:
                with contextlib.suppress(OSError):  # no locks here: cleaners then go by age alone
                    fcntl.flock(f, fcntl.LOCK_EX)  # held until renamed: not stale while written
                write(f)
                f.flush()
                os.fsync(f.fileno())
                os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path


def read_rows(path: str, name: str, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of array ``name`` in the (uncompressed) .npz at ``path``, without reading the rest.

    The array is memory-mapped where it lies in the archive, so a process reading its share of
    a large split holds only that share.
    """
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{path}: {name} is compressed")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the member's local header: name and extra lengths at bytes 26..29
        f.seek(
            info.header_offset
            + 30
            + int.from_bytes(local[26:28], "little")
            + int.from_bytes(local[28:30], "little")
        )
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = (
            np.lib.format.read_array_header_1_0(f)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(f)
        )
        offset = f.tell()
    if fortran:
        raise ValueError(f"{path}: {name} is Fortran-ordered")
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return np.array(mapped[rows])
