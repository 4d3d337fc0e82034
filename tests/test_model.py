from __future__ import annotations

import dataclasses
import gc

import pytest
import torch

import clip_lightning as clip
from clip_lightning.models.model import CLIP, MODEL_CONFIGS, CLIPConfig, build_model, config_from_state_dict

from .helpers import TINY_RN, TINY_VIT, oracle_model, random_state_dict

TEXTS = ["a photo of a cat", "a diagram", "a much longer sentence about a dog that sits on a mat"]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _compare_with_oracle(config: CLIPConfig, n_images: int = 2) -> None:
    sd = random_state_dict(config)
    ours, ref = build_model(sd), oracle_model(sd)
    del sd
    gc.collect()
    torch.manual_seed(1)
    res = config.image_resolution
    images = torch.randn(n_images, 3, res, res)
    text = clip.tokenize(TEXTS)
    with torch.no_grad():
        for a, b in [
            (ours.encode_image(images), ref.encode_image(images)),
            (ours.encode_text(text), ref.encode_text(text)),
            (ours(images, text)[0], ref(images, text)[0]),
            (ours(images, text)[1], ref(images, text)[1]),
        ]:
            assert a.shape == b.shape
            assert _rel(a, b) < 1e-4


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


def test_encode_text_only_runs_to_last_eot_and_matches_full_length() -> None:
    model = build_model(random_state_dict(TINY_VIT))
    text = clip.tokenize(["a cat", "a photo of a small dog"])
    with torch.no_grad():
        short = model.encode_text(text)
        # Same features when a longer prompt shares the batch.
        mixed = model.encode_text(torch.cat([text, clip.tokenize(["word " * 60])]))[:2]
    torch.testing.assert_close(short, mixed, rtol=1e-5, atol=1e-6)


def test_gradients_equal_original() -> None:
    """With autograd on (fine-tuning), the out-of-place paths run and backward matches the original."""
    sd = random_state_dict(TINY_VIT)
    ours, ref = build_model(sd), oracle_model(sd)
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


def _assert_batch_size_invariant(model: CLIP, images: torch.Tensor, precision: str) -> None:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        full = model.encode_image(images)
        for n in (1, 2, 3, 7):
            assert torch.equal(model.encode_image(images[:n]), full[:n]), n


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vit_features_do_not_depend_on_batch_size(precision: str) -> None:
    """Bitwise: what makes 2-process DDP equal 1 process, whatever the last batch holds."""
    model = build_model(random_state_dict(TINY_VIT))
    torch.manual_seed(3)
    _assert_batch_size_invariant(model, torch.randn(20, 3, 32, 32), precision)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resnet_features_do_not_depend_on_batch_size(precision: str) -> None:
    # Full-size RN50, channels-last as the evaluator runs it: in the tiny ResNet the 4-channel
    # stem conv and 5-position pooling are small enough for BLAS/oneDNN to switch kernels.
    torch.manual_seed(3)
    model = CLIP(MODEL_CONFIGS["RN50"]).eval().to(memory_format=torch.channels_last)
    _assert_batch_size_invariant(model, torch.randn(8, 3, 224, 224), precision)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_text_features_do_not_depend_on_batch_size_or_threads(precision: str) -> None:
    """Bitwise, as for images: a zero-shot classifier built by one process (2 threads) must equal
    one built by each of two DDP processes (1 thread each), whatever the last text batch holds.
    Two heads: with one, the fused attention of a single sequence splits by thread count."""
    torch.manual_seed(0)
    model = CLIP(dataclasses.replace(TINY_VIT, transformer_width=128, transformer_heads=2)).eval()
    tokens = clip.tokenize([f'a photo of the number: "{i}".' for i in range(10)])  # one length
    threads = torch.get_num_threads()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        full = model.encode_text(tokens)
        try:
            torch.set_num_threads(1)
            assert torch.equal(model.encode_text(tokens), full)
        finally:
            torch.set_num_threads(threads)
        for n in (1, 2, 3, 7):
            assert torch.equal(model.encode_text(tokens[:n]), full[:n]), n


def test_penultimate_features_shapes() -> None:
    for config in (TINY_VIT, TINY_RN):
        model = build_model(random_state_dict(config))
        image = torch.randn(2, 3, config.image_resolution, config.image_resolution)
        with torch.no_grad():
            pen = model.encode_image(image, projected=False)
        width = config.vision_width if config.is_vit else config.vision_width * 32
        assert pen.shape == (2, width)
