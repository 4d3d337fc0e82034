"""The frozen CLIP model a task evaluates: a name, a file, a folder, ``hf-hub:``, or random weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torchvision.transforms import Compose

from ..errors import ConfigError
from ..models import CLIP, MODEL_CONFIGS, ModifiedResNet, image_transform
from ..models.formats import Architecture, read_checkpoint
from ..models.loading import model_from_checkpoint, preprocess_transform
from ..ops import accelerate

__all__ = ["BACKBONES", "Backbone", "BackboneCache", "load_backbone", "open_backbone"]


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


class BackboneCache:
    """Keeps the last backbone opened while :meth:`keeping` is active, so a sweep of one model over
    many datasets reads its checkpoint once. Outside it every task opens its own."""

    def __init__(self) -> None:
        self._active = 0
        self._kept: tuple[tuple, Backbone] | None = None

    @contextmanager
    def keeping(self) -> Iterator[None]:
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._kept = None

    def get(self, key: tuple, build: Callable[[], Backbone]) -> Backbone:
        if not self._active:
            return build()
        if self._kept is None or self._kept[0] != key:
            self._kept = None  # the previous model can be freed before the next is read
            self._kept = (key, build())
        return self._kept[1]


BACKBONES = BackboneCache()


def open_backbone(
    name: str, pretrained: bool, download_root: str | None, seed: int, arch: Architecture | None = None
) -> Backbone:
    """The :class:`Backbone` ``name`` names: frozen, in eval mode, on CPU (or the one
    :data:`BACKBONES` keeps for a sweep, wherever the last run left it)."""
    key = (name, pretrained, download_root, seed, repr(arch))
    return BACKBONES.get(key, lambda: _open(name, pretrained, download_root, seed, arch))


def _open(
    name: str, pretrained: bool, download_root: str | None, seed: int, arch: Architecture | None
) -> Backbone:
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
