"""CLIP itself: the reference architecture, its checkpoints, tokenizer and image transform.

``build_model`` and ``load`` return the accelerated model (:func:`clip_lightning.ops.accelerate`);
``CLIP(config)`` is the reference, with CLIP's random initialization.
"""

from .config import CHECKPOINT_META_KEYS, MODEL_CONFIGS, CLIPConfig, config_from_state_dict
from .hub import (
    BASE_URL_ENV,
    MODELS,
    available_models,
    checkpoint_sha256,
    download,
    model_url,
    resolve_checkpoint,
    sha256_file,
)
from .loading import build_model, load
from .model import CLIP, VisionTransformer, convert_weights
from .resnet import ModifiedResNet
from .tokenizer import SimpleTokenizer, tokenize
from .transform import OPENAI_MEAN, OPENAI_STD, image_transform, to_rgb, transform_resolution

__all__ = [
    "BASE_URL_ENV",
    "CHECKPOINT_META_KEYS",
    "CLIP",
    "MODELS",
    "MODEL_CONFIGS",
    "OPENAI_MEAN",
    "OPENAI_STD",
    "CLIPConfig",
    "ModifiedResNet",
    "SimpleTokenizer",
    "VisionTransformer",
    "available_models",
    "build_model",
    "checkpoint_sha256",
    "config_from_state_dict",
    "convert_weights",
    "download",
    "image_transform",
    "load",
    "model_url",
    "resolve_checkpoint",
    "sha256_file",
    "to_rgb",
    "tokenize",
    "transform_resolution",
]
