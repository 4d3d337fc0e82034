from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from clip_lightning.models import OPENAI_MEAN, OPENAI_STD, image_transform, transform_resolution

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.clip import _transform as openai_transform


def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    return {
        "1": rgb.convert("1"),
        "L": rgb.convert("L"),
        "LA": rgb.convert("LA"),
        "P": rgb.convert("P"),
        "PA": rgb.convert("P").convert("PA"),
        "RGB": rgb,
        "RGBA": rgb.convert("RGBA"),
        "CMYK": rgb.convert("CMYK"),
        "YCbCr": rgb.convert("YCbCr"),
        "I;16": Image.fromarray(rng.integers(0, 65536, (37, 53), dtype=np.uint16)),
        "I": Image.fromarray(rng.integers(-1000, 70000, (37, 53), dtype=np.int32)),
        "F": Image.fromarray((rng.random((37, 53)) * 300 - 20).astype(np.float32)),
    }


@pytest.mark.parametrize("mode", list(_images()))
@pytest.mark.parametrize("n_px", [224, 288])
def test_every_mode_equals_original(mode: str, n_px: int) -> None:
    image = _images()[mode]
    assert image.mode == mode
    ours = image_transform(n_px)(image)
    assert ours.shape == (3, n_px, n_px) and ours.dtype == torch.float32
    assert torch.equal(ours, openai_transform(n_px)(image))


@pytest.mark.parametrize("size", [(1, 300), (300, 1), (1, 1), (4000, 3000)])
def test_extreme_sizes_equal_original(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours = image_transform(224)(image)
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, openai_transform(224)(image))


def test_constants_and_resolution() -> None:
    assert OPENAI_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert OPENAI_STD == (0.26862954, 0.26130258, 0.27577711)
    assert transform_resolution(image_transform(336)) == 336
    assert transform_resolution(lambda x: x) is None
