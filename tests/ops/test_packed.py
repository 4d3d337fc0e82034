import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from clip_lightning.models import VisionTransformer, build_model
from clip_lightning.models.model import MLP
from clip_lightning.ops import (
    PackedLinear,
    PackedWeights,
    accelerate,
    clear_packed,
    packed_linears,
    packing_available,
)
from tests.helpers import TINY_RN, TINY_VIT, random_state_dict

needs_packed = pytest.mark.skipif(
    not packing_available(), reason="the packed oneDNN path exists on x86 CPUs with oneDNN only"
)


def _layer(in_features: int = 24, out_features: int = 40) -> PackedLinear:
    torch.manual_seed(0)
    layer = PackedLinear(in_features, out_features)
    with torch.no_grad():
        layer.bias.normal_()
    return layer


def _cached(layer: PackedLinear | VisionTransformer) -> int:
    return len(layer.packed)


@needs_packed
def test_bf16_equals_f_linear_bitwise_and_is_packed_once() -> None:
    layer, x = _layer(), torch.randn(3, 7, 24)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = F.linear(x, layer.weight, layer.bias)
        first, second = layer(x), layer(x[:2])
    assert first.dtype == torch.bfloat16
    assert torch.equal(first, expected) and torch.equal(second, expected[:2])
    assert _cached(layer) == 1
    bf16 = layer.to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(bf16(x.bfloat16()), F.linear(x.bfloat16(), bf16.weight, bf16.bias))


@needs_packed
def test_fp32_matches_f_linear() -> None:
    layer, x = _layer(), torch.randn(50, 24)
    with torch.no_grad():
        out = layer(x)
    assert out.dtype == torch.float32 and _cached(layer) == 1
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)


@needs_packed
def test_weight_changes_are_seen() -> None:
    layer, x = _layer(), torch.randn(5, 24)
    with torch.no_grad():
        before = layer(x)
        layer.weight.mul_(2)  # in place: the version counter moves
        torch.testing.assert_close(layer(x) - layer.bias, 2 * (before - layer.bias), rtol=1e-5, atol=1e-5)
        layer.load_state_dict({"weight": torch.zeros(40, 24), "bias": layer.bias.clone()}, assign=True)
        torch.testing.assert_close(layer(x), layer.bias.expand(5, 40))
        layer.weight.data.fill_(1.0)  # .data bypasses the version counter: documented, cleared by hand
        clear_packed(layer)
        torch.testing.assert_close(layer(x), x.sum(1, keepdim=True) + layer.bias, rtol=1e-5, atol=1e-5)


@needs_packed
def test_packed_under_inference_mode_is_reusable_outside_it() -> None:
    layer, x = _layer(), torch.randn(5, 24)
    with torch.inference_mode():
        inside = layer(x)
    with torch.no_grad():
        outside = layer(x)
    assert _cached(layer) == 1 and torch.equal(inside, outside)


def test_gradients_take_f_linear() -> None:
    layer, x = _layer(), torch.randn(5, 24, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert _cached(layer) == 0
    assert x.grad is not None and layer.weight.grad is not None
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


def test_switched_off_fp16_and_empty_take_f_linear() -> None:
    layer, x = _layer(), torch.randn(5, 24)
    with torch.no_grad():
        with packed_linears(False):
            assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
        assert layer(x[:0]).shape == (0, 40)
        half = copy.deepcopy(layer).half()
        assert half(x.half()).dtype == torch.float16
    assert _cached(layer) == 0 and _cached(half) == 0


@needs_packed
def test_copies_and_pickles_drop_the_cache() -> None:
    layer, x = _layer(), torch.randn(5, 24)
    with torch.no_grad():
        expected = layer(x)
        for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            assert _cached(clone) == 0
            assert torch.equal(clone(x), expected)


@needs_packed
def test_scales_and_swish_fold_quickgelu() -> None:
    torch.manual_seed(1)
    mlp, x = accelerate(MLP(16)), torch.randn(9, 16)
    with torch.no_grad():
        for param in mlp.parameters():
            param.normal_(std=0.5)
        fused = mlp(x)
        with packed_linears(False):
            plain = mlp(x)
    assert _cached(mlp.c_fc) == 1 and _cached(mlp.c_proj) == 1
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="packed path"), packed_linears(False), torch.no_grad():
        PackedWeights().linear("w", x, mlp.c_fc.weight, None, activation="swish")


@needs_packed
def test_patch_embedding_equals_the_convolution() -> None:
    visual = build_model(random_state_dict(TINY_VIT)).visual
    assert isinstance(visual, VisionTransformer)
    res, patch = TINY_VIT.image_resolution, TINY_VIT.vision_patch_size
    assert patch is not None and patch > 1
    torch.manual_seed(3)
    image = torch.randn(3, 3, res, res)

    def conv(x: torch.Tensor) -> torch.Tensor:
        return visual.conv1(x).flatten(2).transpose(1, 2)

    with torch.no_grad():
        torch.testing.assert_close(visual.embed_patches(image), conv(image), rtol=1e-5, atol=1e-5)
        assert _cached(visual) == 1  # the conv weight, packed as a [width, 3 * patch * patch] matrix
        with torch.autocast("cpu", dtype=torch.bfloat16):
            packed_bf16, conv_bf16 = visual.embed_patches(image), conv(image)
        assert packed_bf16.dtype == conv_bf16.dtype == torch.bfloat16
        torch.testing.assert_close(packed_bf16.float(), conv_bf16.float(), rtol=0.02, atol=0.02)
        # Sizes that are no multiple of the patch take the convolution (which drops the remainder).
        ragged = torch.randn(2, 3, res + patch // 2, res)
        assert torch.equal(visual.embed_patches(ragged), conv(ragged))
        visual.conv1.to(memory_format=torch.channels_last)  # a weight no [width, 3 * p * p] view fits
        assert torch.equal(visual.embed_patches(image), conv(image))
    with torch.enable_grad():  # the gradient path is the convolution's
        x = image.clone().requires_grad_(True)
        visual.embed_patches(x).sum().backward()
        assert x.grad is not None and torch.equal(visual.embed_patches(image), conv(image))


@needs_packed
@pytest.mark.parametrize("config", [TINY_VIT, TINY_RN], ids=["vit", "rn"])
def test_model_packed_equals_plain(config) -> None:
    model = build_model(random_state_dict(config))
    res = config.image_resolution
    torch.manual_seed(2)
    image, text = torch.randn(4, 3, res, res), torch.randint(1, 400, (4, 9))
    with torch.no_grad():
        packed = model.encode_image(image), model.encode_text(text)
        with packed_linears(False):
            plain = model.encode_image(image), model.encode_text(text)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            packed_bf16 = model.encode_image(image)
            with packed_linears(False):
                plain_bf16 = model.encode_image(image)
    for a, b in zip(packed, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # bf16 rounds the fused activation once instead of three times: close, not bitwise.
    torch.testing.assert_close(packed_bf16.float(), plain_bf16.float(), rtol=0.05, atol=0.05)
