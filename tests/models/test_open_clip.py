"""open_clip checkpoints (hub folders, bare state dicts), against open_clip itself (a test-only oracle)."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import clip_lightning as clip
from clip_lightning.errors import CheckpointError
from clip_lightning.models.formats import read_checkpoint

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import open_clip

TEXTS = ["a photo of a cat", "a diagram", "a much longer sentence about a dog that sits on a mat"]
TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
# Heads 80 wide (ViT-H/14's), MLP ratio 2.5: OpenAI's width // 64 rule would get both wrong.
TINY_VIT = {"image_size": 32, "layers": 2, "width": 160, "head_width": 80, "mlp_ratio": 2.5, "patch_size": 8}
TINY_RN = {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "patch_size": None}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter and BatchNorm statistic perturbed: norms and biases are not left at 1 and 0."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "logit_scale":
                param.add_(torch.randn_like(param) * 0.05)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


def tiny_model(vision: dict[str, Any], quick_gelu: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    cfg = {"embed_dim": 32, "quick_gelu": quick_gelu, "vision_cfg": vision, "text_cfg": TEXT_CFG}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = open_clip.model.CLIP(**cfg)
    # What open_clip.create_model sets from a preprocess config; not OpenAI's, to see it carried.
    model.visual.image_mean, model.visual.image_std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    return randomize(model), cfg


def save_hub_folder(
    model: torch.nn.Module, cfg: dict[str, Any], folder: Path, safetensors: bool = True
) -> Path:
    """What open_clip's push_to_hf_hub writes: open_clip_config.json and the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    hub = importlib.import_module("open_clip.push_to_hf_hub")
    hub.save_config_for_hf(model, folder / "open_clip_config.json", model_config=cfg)
    if safetensors:
        save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    else:
        torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


def assert_matches_open_clip(model_or_path: Any, oracle: torch.nn.Module, res: int, **kwargs: Any) -> None:
    torch.manual_seed(1)
    images = torch.randn(3, 3, res, res)
    text = clip.tokenize(TEXTS)
    with torch.no_grad():
        image_ref = oracle.encode_image(images)
        text_ref = oracle.encode_text(text)
        logits_ref = (
            oracle.logit_scale.exp()
            * torch.nn.functional.normalize(image_ref, dim=-1)
            @ (torch.nn.functional.normalize(text_ref, dim=-1).t())
        )
        ours, _ = clip.load(str(model_or_path), device="cpu", **kwargs)
        got = [ours.encode_image(images), ours.encode_text(text), *ours(images, text)]
    for a, b in zip(got, [image_ref, text_ref, logits_ref, logits_ref.t()], strict=True):
        assert a.shape == b.shape
        assert _rel(a, b) < 1e-4


@pytest.mark.parametrize("quick_gelu", [False, True], ids=["gelu", "quickgelu"])
@pytest.mark.parametrize("vision", [TINY_VIT, TINY_RN], ids=["vit", "resnet"])
def test_hub_folder_matches_open_clip(tmp_path: Path, vision: dict[str, Any], quick_gelu: bool) -> None:
    oracle, cfg = tiny_model(vision, quick_gelu)
    folder = save_hub_folder(oracle, cfg, tmp_path / "hub")
    assert_matches_open_clip(folder, oracle, vision["image_size"])
    checkpoint = read_checkpoint(str(folder))
    assert checkpoint.format == "open_clip"
    assert checkpoint.config.activation == ("quick_gelu" if quick_gelu else "gelu")
    assert (checkpoint.preprocess.mean, checkpoint.preprocess.std) == ((0.5,) * 3, (0.25,) * 3)


def test_bare_state_dicts_need_the_stated_hyperparameters(tmp_path: Path) -> None:
    oracle, cfg = tiny_model(TINY_VIT, quick_gelu=False)
    sd = oracle.state_dict()
    wrapped = tmp_path / "epoch_3.pt"  # open_clip's training checkpoints
    torch.save({"epoch": 3, "name": "run", "state_dict": {"module." + k: v for k, v in sd.items()}}, wrapped)
    save_file(sd, tmp_path / "bare.safetensors")
    stated = {"activation": "gelu", "vision_head_width": 80, "text_heads": 2}
    for path in (wrapped, tmp_path / "bare.safetensors"):
        assert_matches_open_clip(path, oracle, 32, **stated)
        assert read_checkpoint(str(path)).format == "state_dict"
    # Unstated, OpenAI's rules apply (QuickGELU, heads of 64): a different, valid model.
    with pytest.raises(AssertionError):
        assert_matches_open_clip(wrapped, oracle, 32, vision_head_width=80, text_heads=2)
    # A .bin hub folder reads the same.
    folder = save_hub_folder(oracle, cfg, tmp_path / "bin", safetensors=False)
    assert_matches_open_clip(folder, oracle, 32)


def test_custom_text_clip_layout(tmp_path: Path) -> None:
    oracle, cfg = tiny_model(TINY_VIT, quick_gelu=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        custom = open_clip.model.CustomTextCLIP(**cfg)
    custom.visual.image_mean, custom.visual.image_std = oracle.visual.image_mean, oracle.visual.image_std
    missing, unexpected = custom.load_state_dict(
        {
            (k if k.startswith(("visual.", "logit_scale")) else "text." + k): v
            for k, v in oracle.state_dict().items()
        },
        strict=False,
    )
    assert not unexpected and all("attn_mask" in k for k in missing)
    folder = save_hub_folder(custom.eval(), {**cfg, "custom_text": True}, tmp_path / "custom")
    assert_matches_open_clip(folder, oracle, 32)


def test_out_of_family_models_are_refused_by_name(tmp_path: Path) -> None:
    oracle, cfg = tiny_model(TINY_VIT, quick_gelu=False)
    siglip = save_hub_folder(oracle, {**cfg, "init_logit_bias": -10}, tmp_path / "siglip")
    coca = save_hub_folder(oracle, {**cfg, "multimodal_cfg": {"width": 64}}, tmp_path / "coca")
    timm = save_hub_folder(
        oracle, {**cfg, "vision_cfg": {**TINY_VIT, "timm_model_name": "convnext_base"}}, tmp_path / "timm"
    )
    pooled = save_hub_folder(
        oracle, {**cfg, "text_cfg": {**TEXT_CFG, "pool_type": "last"}}, tmp_path / "pool"
    )
    for folder, what in ((siglip, "init_logit_bias"), (coca, "multimodal_cfg"), (timm, "timm_model_name")):
        with pytest.raises(
            CheckpointError, match=f"outside the CLIP family.*{what}.*supported are CLIP models"
        ):
            clip.load(str(folder), device="cpu")
    with pytest.raises(CheckpointError, match=r"text_cfg\.pool_type='last'"):
        clip.load(str(pooled), device="cpu")
    sd = oracle.state_dict()
    for key, what in (("logit_bias", "SigLIP"), ("text_decoder.x", "CoCa"), ("visual.trunk.stem", "timm")):
        path = tmp_path / f"{what}.safetensors"
        save_file({**sd, key: torch.zeros(1)}, path)
        with pytest.raises(CheckpointError, match=f"{path} is .*{what}.*supported are CLIP models"):
            clip.load(str(path), device="cpu")
    bad = json.loads((siglip / "open_clip_config.json").read_text())
    bad["model_cfg"]["vision_cfg"]["layers"] = 3
    (tmp_path / "siglip" / "open_clip_config.json").write_text(
        json.dumps({**bad, "model_cfg": {**cfg, **{"vision_cfg": {**TINY_VIT, "layers": 3}}}})
    )
    with pytest.raises(CheckpointError, match=r"does not match .*vision_layers 3 \(the weights: 2\)"):
        clip.load(str(siglip), device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-32-quickgelu", "RN50"])
def test_published_open_clip_configs(tmp_path: Path, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = randomize(open_clip.create_model(name))
    cfg = open_clip.get_model_config(name)
    folder = save_hub_folder(oracle, cfg, tmp_path / "hub")
    assert_matches_open_clip(folder, oracle, 224)
    torch.save(oracle.state_dict(), tmp_path / "bare.pt")
    stated = {"activation": "quick_gelu" if cfg.get("quick_gelu") else "gelu"}
    assert_matches_open_clip(tmp_path / "bare.pt", oracle, 224, **stated)


@pytest.mark.slow
def test_vit_h14_shape_with_80_wide_heads(tmp_path: Path) -> None:
    """ViT-H-14's widths and heads (vision 1280 = 16 x 80, text 1024 = 16 x 64, patch 14 at 224 px),
    4 layers per tower instead of 32/24 to keep memory and time within a test."""
    cfg = open_clip.get_model_config("ViT-H-14")
    cfg = {
        **cfg,
        "vision_cfg": {**cfg["vision_cfg"], "layers": 4},
        "text_cfg": {**cfg["text_cfg"], "layers": 4},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = randomize(open_clip.model.CLIP(**cfg))
        oracle.visual.image_mean, oracle.visual.image_std = (
            open_clip.OPENAI_DATASET_MEAN,
            open_clip.OPENAI_DATASET_STD,
        )
    folder = save_hub_folder(oracle, cfg, tmp_path / "hub")
    assert read_checkpoint(str(folder)).config.vision_heads == 16
    assert_matches_open_clip(folder, oracle, 224)
    save_file(oracle.state_dict(), tmp_path / "bare.safetensors")
    assert_matches_open_clip(
        tmp_path / "bare.safetensors", oracle, 224, activation="gelu", vision_head_width=80
    )
