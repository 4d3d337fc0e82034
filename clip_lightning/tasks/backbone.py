"""The frozen CLIP model a task evaluates: a name, a file, a folder, ``hf-hub:``, or random weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torchvision.transforms import Compose

from ..errors import ConfigError
from ..models import CLIP, MODEL_CONFIGS, ModifiedResNet, image_transform
from ..models.formats import Architecture, read_checkpoint
from ..models.loading import model_from_checkpoint, preprocess_transform
from ..ops import accelerate

__all__ = ["Backbone", "load_backbone", "open_backbone"]


@dataclass
class Backbone:
    """A frozen model with its preprocessing, the id of its weights, and where they came from.

    ``checkpoint_id`` names the weights exactly (``sha256:...`` of the weight file(s), or
    ``random:<name>:seed=<n>``) and keys every cache of derived data (classifiers, features).
    ``format`` is ``openai``, ``state_dict``, ``huggingface``, ``open_clip`` or ``random``;
    ``source`` is the name, path or ``hf-hub:`` id the user gave.
    """

    model: CLIP
    checkpoint_id: str
    preprocess: Compose
    format: str
    source: str


def open_backbone(
    name: str, pretrained: bool, download_root: str | None, seed: int, arch: Architecture | None = None
) -> Backbone:
    """The :class:`Backbone` ``name`` names: frozen, in eval mode, on CPU."""
    if not pretrained:
        if name not in MODEL_CONFIGS:
            raise ConfigError(
                f"pretrained=False builds a published architecture with random weights; "
                f"{name!r} is not one of {list(MODEL_CONFIGS)}. To load {name!r} as a model "
                f"name or checkpoint file, pass pretrained=True (--model.pretrained true)."
            )
        rank_zero_warn(
            f"RANDOM WEIGHTS: {name} is built with random weights (seed {seed}), not OpenAI's; "
            "its accuracies are meaningless. Use pretrained=True for real numbers."
        )
        config = MODEL_CONFIGS[name] if arch is None else arch.apply(MODEL_CONFIGS[name])
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = accelerate(CLIP(config).eval())
        stated = "" if config == MODEL_CONFIGS[name] else f":{config.activation}:{config.vision_head_width}"
        checkpoint_id = f"random:{name}:seed={seed}{stated}"
        backbone = Backbone(model, checkpoint_id, image_transform(config.image_resolution), "random", name)
    else:
        checkpoint = read_checkpoint(name, download_root, arch)
        model = model_from_checkpoint(checkpoint)
        preprocess = preprocess_transform(checkpoint.preprocess)
        backbone = Backbone(model, checkpoint.checkpoint_id, preprocess, checkpoint.format, checkpoint.source)
    backbone.model.requires_grad_(False)
    backbone.model.eval()
    if isinstance(backbone.model.visual, ModifiedResNet):
        backbone.model.visual.to(memory_format=torch.channels_last)  # faster convolutions, same values
    return backbone


def load_backbone(name: str, pretrained: bool, download_root: str | None, seed: int) -> tuple[CLIP, str]:
    """``(model, checkpoint id)`` of :func:`open_backbone` (OpenAI's hyperparameters where unstated)."""
    backbone = open_backbone(name, pretrained, download_root, seed)
    return backbone.model, backbone.checkpoint_id
