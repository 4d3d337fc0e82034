"""The accelerated model: what build_model and load return, equal to the reference, batch-invariant."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

import clip_lightning as clip
from clip_lightning.models import CLIP, MODEL_CONFIGS, CLIPConfig, build_model
from clip_lightning.ops import PackedLinear, PackedWeights, accelerate, packed_linears
from clip_lightning.ops.inference import InferenceCLIP, InferenceMLP, InferenceVisionTransformer
from tests.helpers import TINY_RN, TINY_VIT, random_state_dict


def _features(model: CLIP, config: CLIPConfig, precision: str = "fp32") -> list[torch.Tensor]:
    torch.manual_seed(4)
    res = config.image_resolution
    images = torch.randn(5, 3, res, res)
    text = clip.tokenize(["a cat", "a photo of a small dog", "a diagram of a much larger thing"])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        return [
            model.encode_image(images),
            model.encode_image(images, projected=False),
            model.encode_text(text),
            *model(images, text),
        ]


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RN], ids=["vit", "resnet"])
def test_reference_and_accelerated_agree(config: CLIPConfig) -> None:
    sd = random_state_dict(config)
    reference, accelerated = build_model(sd, accelerated=False), build_model(sd)
    assert type(reference) is CLIP and isinstance(accelerated, InferenceCLIP)
    for a, b in zip(_features(accelerated, config), _features(reference, config), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # bf16 autocast: the fused QuickGELU rounds once instead of three times, so close, not equal.
    for a, b in zip(
        _features(accelerated, config, "bf16"), _features(reference, config, "bf16"), strict=True
    ):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)


def test_accelerate_keeps_parameters_and_random_init() -> None:
    """The evaluator's random-weight models: the same seed gives the same weights, accelerated."""
    torch.manual_seed(7)
    reference = CLIP(TINY_VIT).eval()
    torch.manual_seed(7)
    model = accelerate(CLIP(TINY_VIT).eval())
    assert isinstance(model, InferenceCLIP) and isinstance(model.visual, InferenceVisionTransformer)
    assert isinstance(model.transformer.resblocks[0].mlp, InferenceMLP)
    assert isinstance(model.transformer.resblocks[0].mlp.c_fc, PackedLinear)
    assert isinstance(model.packed, PackedWeights) and isinstance(model.visual.packed, PackedWeights)
    ref_sd, sd = reference.state_dict(), model.state_dict()
    assert list(sd) == list(ref_sd) and all(torch.equal(sd[k], ref_sd[k]) for k in sd)
    params = [p.data_ptr() for p in model.parameters()]
    cache = model.packed
    assert accelerate(model) is model  # again: nothing changes, the caches stay
    assert [p.data_ptr() for p in model.parameters()] == params and model.packed is cache
    copied = copy.deepcopy(model)
    assert isinstance(copied, InferenceCLIP) and isinstance(copied.packed, PackedWeights)
    for a, b in zip(_features(copied, TINY_VIT), _features(model, TINY_VIT), strict=True):
        assert torch.equal(a, b)


def test_load_returns_the_accelerated_model(tmp_path: Path) -> None:
    sd = random_state_dict(TINY_RN)
    torch.save(sd, tmp_path / "rn.pt")
    model, _ = clip.load(str(tmp_path / "rn.pt"), device="cpu")
    assert isinstance(model, InferenceCLIP)
    reference = build_model(sd, accelerated=False)
    for a, b in zip(_features(model, TINY_RN), _features(accelerate(reference), TINY_RN), strict=True):
        assert torch.equal(a, b)


def test_reference_is_plain_torch() -> None:
    """No packed caches, no speed paths: switching packing off does not change the reference."""
    model = build_model(random_state_dict(TINY_VIT), accelerated=False)
    assert not any(isinstance(m, PackedLinear) for m in model.modules())
    assert not any(isinstance(v, PackedWeights) for m in model.modules() for v in vars(m).values())
    expected = _features(model, TINY_VIT)
    with packed_linears(False):
        for a, b in zip(_features(model, TINY_VIT), expected, strict=True):
            assert torch.equal(a, b)


def test_encode_text_only_runs_to_last_eot_and_matches_full_length() -> None:
    model = build_model(random_state_dict(TINY_VIT))
    text = clip.tokenize(["a cat", "a photo of a small dog"])
    with torch.no_grad():
        short = model.encode_text(text)
        # Same features when a longer prompt shares the batch.
        mixed = model.encode_text(torch.cat([text, clip.tokenize(["word " * 60])]))[:2]
    torch.testing.assert_close(short, mixed, rtol=1e-5, atol=1e-6)


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
    model = accelerate(CLIP(MODEL_CONFIGS["RN50"]).eval()).to(memory_format=torch.channels_last)
    _assert_batch_size_invariant(model, torch.randn(8, 3, 224, 224), precision)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_text_features_do_not_depend_on_batch_size_or_threads(precision: str) -> None:
    """Bitwise, as for images: a zero-shot classifier built by one process (2 threads) must equal
    one built by each of two DDP processes (1 thread each), whatever the last text batch holds.
    Two heads: with one, the fused attention of a single sequence splits by thread count."""
    torch.manual_seed(0)
    model = accelerate(CLIP(dataclasses.replace(TINY_VIT, transformer_width=128, transformer_heads=2)).eval())
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
