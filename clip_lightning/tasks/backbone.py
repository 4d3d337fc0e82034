"""The frozen CLIP model a task evaluates: a published name, a checkpoint file, or random weights."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn

from ..errors import ConfigError
from ..models import CLIP, MODEL_CONFIGS, ModifiedResNet, checkpoint_sha256, load, resolve_checkpoint
from ..ops import accelerate

__all__ = ["load_backbone"]


def load_backbone(name: str, pretrained: bool, download_root: str | None, seed: int) -> tuple[CLIP, str]:
    """``(model, checkpoint id)``: the model frozen, in eval mode, on CPU.

    The id names the weights exactly (``sha256:...`` of the file, or ``random:<name>:seed=<n>``);
    it keys every cache of derived data (classifiers, features).
    """
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
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = accelerate(CLIP(MODEL_CONFIGS[name]).eval())
        checkpoint = f"random:{name}:seed={seed}"
    else:
        path = resolve_checkpoint(name, download_root)
        loaded, _ = load(path, device="cpu")
        assert isinstance(loaded, CLIP)
        model, checkpoint = loaded, f"sha256:{checkpoint_sha256(name, path)}"
    model.requires_grad_(False)
    model.eval()
    if isinstance(model.visual, ModifiedResNet):
        model.visual.to(memory_format=torch.channels_last)  # faster convolutions, same values
    return model, checkpoint
