"""Hyperparameters of CLIP models: the published ones, and those read off a state dict's shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = ["ACTIVATIONS", "CHECKPOINT_META_KEYS", "MODEL_CONFIGS", "CLIPConfig", "config_from_state_dict"]

# The MLP activations of the CLIP family: OpenAI's (and open_clip's "-quickgelu") QuickGELU, and
# exact GELU (open_clip's LAION/DataComp/MetaCLIP models, many Hugging Face ports).
ACTIVATIONS = ("quick_gelu", "gelu")

# Keys OpenAI's TorchScript archives carry beside the weights (no parameters of the model).
CHECKPOINT_META_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class CLIPConfig:
    """Every hyperparameter of a CLIP model; ``vision_layers`` is a tuple for ResNets.

    The fields after ``transformer_layers`` are those shapes cannot tell; their defaults are
    OpenAI's: heads of width 64, QuickGELU, MLP 4x wide, text pooled at the largest token id.
    ``text_eos_id`` pools at the first occurrence of that id instead (Hugging Face's rule).
    """

    embed_dim: int
    image_resolution: int
    vision_layers: int | tuple[int, int, int, int]
    vision_width: int
    vision_patch_size: int | None
    context_length: int = 77
    vocab_size: int = 49408
    transformer_width: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 12
    vision_head_width: int = 64
    activation: str = "quick_gelu"
    vision_mlp_ratio: float = 4.0
    text_mlp_ratio: float = 4.0
    text_eos_id: int | None = None

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    @property
    def vision_heads(self) -> int:
        """Attention heads of the image tower (the ResNet's attention pool: width * 32 wide)."""
        width = self.vision_width * 32 if not self.is_vit else self.vision_width
        return width // self.vision_head_width

    @property
    def is_vit(self) -> bool:
        """Whether the image tower is a vision transformer (else a modified ResNet)."""
        return not isinstance(self.vision_layers, tuple)


def _rn(embed: int, res: int, layers: tuple[int, int, int, int], width: int, text: int) -> CLIPConfig:
    return CLIPConfig(embed, res, layers, width, None, 77, 49408, text, text // 64, 12)


def _vit(embed: int, res: int, layers: int, width: int, patch: int, text: int) -> CLIPConfig:
    return CLIPConfig(embed, res, layers, width, patch, 77, 49408, text, text // 64, 12)


MODEL_CONFIGS: dict[str, CLIPConfig] = {
    "RN50": _rn(1024, 224, (3, 4, 6, 3), 64, 512),
    "RN101": _rn(512, 224, (3, 4, 23, 3), 64, 512),
    "RN50x4": _rn(640, 288, (4, 6, 10, 6), 80, 640),
    "RN50x16": _rn(768, 384, (6, 8, 18, 8), 96, 768),
    "RN50x64": _rn(1024, 448, (3, 15, 36, 10), 128, 1024),
    "ViT-B/32": _vit(512, 224, 12, 768, 32, 512),
    "ViT-B/16": _vit(512, 224, 12, 768, 16, 512),
    "ViT-L/14": _vit(768, 224, 24, 1024, 14, 768),
    "ViT-L/14@336px": _vit(768, 336, 24, 1024, 14, 768),
}


def _count_blocks(keys: list[str], prefix: str) -> int:
    """Number of distinct ``<prefix>.<i>.`` indices among ``keys``."""
    depth = prefix.count(".") + 1
    return len({k.split(".")[depth] for k in keys if k.startswith(prefix + ".")})


def _mlp_ratio(state_dict: Mapping[str, torch.Tensor], prefix: str, width: int) -> float:
    hidden = state_dict.get(f"{prefix}.0.mlp.c_fc.weight")
    return 4.0 if hidden is None else hidden.shape[0] / width


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """Infer the hyperparameters of a CLIP model from the shapes in its state dict.

    Heads, activation and text pooling cannot be read off shapes: they get OpenAI's values
    (``dataclasses.replace`` the result for other checkpoints).
    """
    keys = list(state_dict)
    try:
        embed_dim = state_dict["text_projection"].shape[1]
        context_length, transformer_width = state_dict["positional_embedding"].shape
        vocab_size = state_dict["token_embedding.weight"].shape[0]
        transformer_layers = _count_blocks(keys, "transformer.resblocks")
        if "visual.proj" in state_dict:
            vision_width, _, patch, _ = state_dict["visual.conv1.weight"].shape
            vision_layers: int | tuple[int, int, int, int] = _count_blocks(
                keys, "visual.transformer.resblocks"
            )
            grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            image_resolution = patch * grid
            patch_size: int | None = patch
        else:
            counts = tuple(_count_blocks(keys, f"visual.layer{i}") for i in range(1, 5))
            vision_layers = (counts[0], counts[1], counts[2], counts[3])
            vision_width = state_dict["visual.layer1.0.conv1.weight"].shape[0]
            grid = round((state_dict["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            image_resolution = grid * 32
            patch_size = None
        vision_mlp_ratio = _mlp_ratio(state_dict, "visual.transformer.resblocks", int(vision_width))
        text_mlp_ratio = _mlp_ratio(state_dict, "transformer.resblocks", int(transformer_width))
    except KeyError as err:
        raise ValueError(f"not a CLIP state dict: missing key {err}") from None
    return CLIPConfig(
        embed_dim=int(embed_dim),
        image_resolution=int(image_resolution),
        vision_layers=vision_layers,
        vision_width=int(vision_width),
        vision_patch_size=None if patch_size is None else int(patch_size),
        context_length=int(context_length),
        vocab_size=int(vocab_size),
        transformer_width=int(transformer_width),
        transformer_heads=int(transformer_width) // 64,
        transformer_layers=transformer_layers,
        vision_mlp_ratio=vision_mlp_ratio,
        text_mlp_ratio=text_mlp_ratio,
    )
