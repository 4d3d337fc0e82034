"""Penultimate features of a random-weight ViT-B/32 for the probe benchmark, cached as .npz.

    python experiments/probe_features.py digits|cifar10-subset [--out runs/probe_features]

Built as the evaluator builds it (``load_backbone("ViT-B/32", False, None, 0)``: random weights,
seed 0), on the CLIPDataModule's train, val and test splits (``digits``: bundled; the CIFAR-10
subset: ``../shared/data/cifar10-subset``, val carved from train as the CLI does), under bf16
autocast as ``make demo`` runs. Writes ``<out>/<name>.npz`` with ``{split}_x`` / ``{split}_y``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from clip_lightning import CLIPDataModule
from clip_lightning.datasets import IndexedDataset
from clip_lightning.models import image_transform
from clip_lightning.tasks.backbone import load_backbone

SOURCES = {"digits": ("digits", "data"), "cifar10-subset": ("imagefolder", "../shared/data/cifar10-subset")}


def extract(name: str, out: Path) -> dict[str, np.ndarray]:
    """``{split}_x``, ``{split}_y`` for train/val/test of ``name``; read from ``out`` when there."""
    path = out / f"{name}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    model, _ = load_backbone("ViT-B/32", False, None, 0)
    dataset, root = SOURCES[name]
    dm = CLIPDataModule(dataset, root=root, transform=image_transform(224))
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        start = time.perf_counter()
        loader = DataLoader(
            IndexedDataset(dm.split(split), image_transform(224)), batch_size=64, num_workers=1
        )
        feats, labels = [], []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for images, label, _ in loader:
                feats.append(model.encode_image(images, projected=False).float())
                labels.append(label)
        arrays[f"{split}_x"] = torch.cat(feats).numpy()
        arrays[f"{split}_y"] = torch.cat(labels).numpy()
        print(
            f"{name} {split}: {arrays[f'{split}_x'].shape} in {time.perf_counter() - start:.0f} s", flush=True
        )
    out.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", choices=sorted(SOURCES))
    parser.add_argument("--out", type=Path, default=Path("runs/probe_features"))
    args = parser.parse_args()
    extract(args.name, args.out)
