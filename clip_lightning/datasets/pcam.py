"""PatchCamelyon: 96x96 histopathology patches in HDF5 files, read lazily (the train file is 7 GB)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image

from .samples import LabeledImages
from .torchvision_sets import fetch, require

__all__ = ["H5Images", "pcam"]


class H5Images(LabeledImages):
    """Images ``x`` (N, H, W, 3) of one HDF5 file, labels ``y`` of another, as PCam stores them.

    Labels are read when the split is built; images one by one, from a file handle each process
    opens for itself (h5py handles cannot cross ``fork`` into DataLoader workers).
    """

    def __init__(self, images: str, labels: str, classes: list[str]) -> None:
        import h5py

        self.images_path, self.labels_path = images, labels
        with h5py.File(labels, "r") as f:
            self.targets = [int(t) for t in np.asarray(f["y"]).reshape(-1)]
        self.classes = classes
        self._handle: Any = None
        self._pid = -1

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        import h5py

        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = h5py.File(self.images_path, "r"), os.getpid()
        return Image.fromarray(np.asarray(self._handle["x"][i])), self.targets[i]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def identity(self) -> Iterator[bytes]:
        for path in (self.images_path, self.labels_path):
            st = os.stat(path)
            yield f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode()
        yield repr(self.targets).encode()


def pcam(root: str, split: str, download: bool) -> LabeledImages:
    """PCam's official train, valid (our val) and test splits; needs h5py."""
    from torchvision import datasets as tv

    stem = os.path.join(root, "pcam", f"camelyonpatch_level_2_split_{'valid' if split == 'val' else split}")
    images, labels = f"{stem}_x.h5", f"{stem}_y.h5"

    def factory() -> LabeledImages:
        if download and not (os.path.exists(images) and os.path.exists(labels)):
            tv.PCAM(root, split=split, download=True)
        layout = "pcam/camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5 (unpacked)"
        require("pcam", split, root, [images, labels], layout)
        return H5Images(images, labels, ["lymph node", "lymph node containing metastatic tumor tissue"])

    return fetch("pcam", root, split, download, factory)
