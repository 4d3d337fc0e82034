"""CLIP's image preprocessing: bicubic resize of the short side, center crop, RGB, normalize."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

__all__ = ["OPENAI_MEAN", "OPENAI_STD", "image_transform", "to_rgb", "transform_resolution"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to RGB (alpha dropped, palettes expanded)."""
    return image if image.mode == "RGB" else image.convert("RGB")


class _ToRGB:
    """Picklable transform step (lambdas break DataLoader workers under spawn)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return to_rgb(image)

    def __repr__(self) -> str:
        return "ToRGB()"


_INTERPOLATIONS = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
    "lanczos": InterpolationMode.LANCZOS,
}


def image_transform(
    n_px: int,
    mean: Sequence[float] = OPENAI_MEAN,
    std: Sequence[float] = OPENAI_STD,
    resize: int | None = None,
    interpolation: str = "bicubic",
) -> Compose:
    """CLIP's preprocessing at resolution ``n_px``: PIL image -> normalized ``[3, n_px, n_px]``.

    The short side is resized to ``resize`` (default ``n_px``) then center-cropped to ``n_px``;
    the defaults are OpenAI's. Other checkpoints bring their own (Hugging Face's
    ``preprocessor_config.json``, open_clip's ``preprocess_cfg``).
    """
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}")
    return Compose(
        [
            Resize(resize or n_px, interpolation=_INTERPOLATIONS[interpolation]),
            CenterCrop(n_px),
            _ToRGB(),
            ToTensor(),
            Normalize(tuple(mean), tuple(std), inplace=True),  # on ToTensor's fresh tensor: no copy
        ]
    )


def transform_resolution(transform: Any) -> int | None:
    """The crop size of a CLIP-style transform, or None when it has no CenterCrop."""
    for step in getattr(transform, "transforms", []):
        if isinstance(step, CenterCrop):
            size = step.size
            return int(size[0] if isinstance(size, (tuple, list)) else size)
    return None
