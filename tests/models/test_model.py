from __future__ import annotations

import gc

import pytest
import torch

import clip_lightning as clip
from clip_lightning.models import CLIP, MODEL_CONFIGS, CLIPConfig, build_model, config_from_state_dict
from tests.helpers import TINY_RN, TINY_VIT, oracle_model, random_state_dict

TEXTS = ["a photo of a cat", "a diagram", "a much longer sentence about a dog that sits on a mat"]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _compare_with_oracle(config: CLIPConfig, n_images: int = 2) -> None:
    """The accelerated model (what build_model returns) and the reference, each against OpenAI's."""
    sd = random_state_dict(config)
    ref = oracle_model(sd)
    torch.manual_seed(1)
    res = config.image_resolution
    images = torch.randn(n_images, 3, res, res)
    text = clip.tokenize(TEXTS)
    with torch.no_grad():
        expected = [ref.encode_image(images), ref.encode_text(text), *ref(images, text)]
    del ref
    for accelerated in (True, False):
        ours = build_model(sd, accelerated=accelerated)
        gc.collect()
        with torch.no_grad():
            got = [ours.encode_image(images), ours.encode_text(text), *ours(images, text)]
        for a, b in zip(got, expected, strict=True):
            assert a.shape == b.shape
            assert _rel(a, b) < 1e-4, accelerated
        del ours


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RN], ids=["vit", "resnet"])
def test_tiny_models_equal_original(config: CLIPConfig) -> None:
    _compare_with_oracle(config)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_published_shapes_equal_original(name: str) -> None:
    _compare_with_oracle(MODEL_CONFIGS[name])


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_config_inferred_from_shapes(name: str) -> None:
    with torch.device("meta"):
        sd = CLIP(MODEL_CONFIGS[name]).state_dict()
    assert config_from_state_dict(sd) == MODEL_CONFIGS[name]
    assert clip.available_models() == list(MODEL_CONFIGS)


def test_build_model_leaves_callers_dict_alone() -> None:
    sd = random_state_dict(TINY_VIT)
    sd["input_resolution"] = torch.tensor(32)  # OpenAI archives carry these beside the weights
    sd["context_length"] = torch.tensor(77)
    sd["vocab_size"] = torch.tensor(49408)
    before = {k: v.clone() for k, v in sd.items()}
    model = build_model(sd)
    assert set(sd) == set(before)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the model must not alias the caller's tensors
    assert all(torch.equal(sd[k], before[k]) for k in sd)
    assert not model.training


def test_fp16_state_dict_widens_exactly() -> None:
    sd = {k: v.half() if v.is_floating_point() else v for k, v in random_state_dict(TINY_RN).items()}
    model = build_model(sd)
    for name, tensor in model.state_dict().items():
        assert tensor.dtype in (torch.float32, torch.int64)
        assert torch.equal(tensor, sd[name].to(tensor.dtype))


def test_bad_state_dict_is_named() -> None:
    with pytest.raises(ValueError, match="missing key"):
        build_model({"foo": torch.zeros(1)})


@pytest.mark.parametrize("accelerated", [True, False], ids=["accelerated", "reference"])
def test_gradients_equal_original(accelerated: bool) -> None:
    """With autograd on (fine-tuning), the out-of-place paths run and backward matches the original."""
    sd = random_state_dict(TINY_VIT)
    ours, ref = build_model(sd, accelerated=accelerated), oracle_model(sd)
    torch.manual_seed(2)
    image = torch.randn(2, 3, TINY_VIT.image_resolution, TINY_VIT.image_resolution)
    text = clip.tokenize(TEXTS)
    grads = []
    for model in (ours, ref):
        model.zero_grad()
        x = image.clone().requires_grad_(True)
        logits, _ = model(x, text)
        logits.sum().backward()
        grads.append(
            (x.grad, model.visual.conv1.weight.grad, model.transformer.resblocks[0].mlp.c_fc.weight.grad)
        )
    for a, b in zip(*grads, strict=True):
        assert _rel(a, b) < 1e-4


@pytest.mark.parametrize("accelerated", [True, False], ids=["accelerated", "reference"])
def test_penultimate_features_shapes(accelerated: bool) -> None:
    for config in (TINY_VIT, TINY_RN):
        model = build_model(random_state_dict(config), accelerated=accelerated)
        image = torch.randn(2, 3, config.image_resolution, config.image_resolution)
        with torch.no_grad():
            pen = model.encode_image(image, projected=False)
        width = config.vision_width if config.is_vit else config.vision_width * 32
        assert pen.shape == (2, width)
