"""clip_lightning: OpenAI CLIP evaluation on PyTorch Lightning.

``import clip_lightning as clip`` is a drop-in for OpenAI's ``clip`` package
(``available_models``, ``load``, ``tokenize``); the Lightning pieces (``CLIPDataModule``,
``CLIPEvaluator``, ``LinearProbe``, ``CaptionDataModule``, ``RetrievalEvaluator``) are imported on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .models import CLIP, available_models, build_model, image_transform, load, tokenize
from .tasks.classifier import build_zero_shot_classifier

__version__ = "0.1.0"

__all__ = [
    "CLIP",
    "CLIPDataModule",
    "CLIPEvaluator",
    "CaptionDataModule",
    "LinearProbe",
    "RetrievalEvaluator",
    "available_models",
    "build_model",
    "build_zero_shot_classifier",
    "image_transform",
    "load",
    "tokenize",
]

_LAZY = {
    "CLIPDataModule": "clip_lightning.datamodule",
    "CLIPEvaluator": "clip_lightning.tasks.zeroshot",
    "LinearProbe": "clip_lightning.probe.callback",
    "CaptionDataModule": "clip_lightning.caption_datamodule",
    "RetrievalEvaluator": "clip_lightning.tasks.retrieval",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clip_lightning' has no attribute {name!r}")
