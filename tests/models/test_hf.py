"""Hugging Face transformers CLIPModel folders, against transformers itself (a test-only oracle)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import regex
import torch
from PIL import Image

import clip_lightning as clip
from clip_lightning.errors import CheckpointError
from clip_lightning.models import SimpleTokenizer
from clip_lightning.models.formats import read_checkpoint
from clip_lightning.models.tokenizer import clean_text
from clip_lightning.ops.inference import InferenceMLP
from tests.helpers import random_texts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import transformers

TEXTS = ["a photo of a cat", "a diagram", "a much longer sentence about a dog that sits on a mat"]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def tiny_config(act: str = "quick_gelu", **text: Any) -> transformers.CLIPConfig:
    """Heads of width 32 (text) and 16 (vision), MLP ratios 1.5 and 2: none of OpenAI's defaults."""
    return transformers.CLIPConfig(
        text_config={
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "hidden_act": act,
            **text,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
            "hidden_act": act,
        },
        projection_dim=32,
    )


def save_random(config: transformers.CLIPConfig, folder: Path, seed: int = 0, **save: Any) -> Any:
    """A transformers CLIPModel with every parameter random (norms and biases too), saved."""
    torch.manual_seed(seed)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "logit_scale":
                param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(folder, **save)
    return model


def hf_outputs(model: Any, images: torch.Tensor, ids: torch.Tensor) -> list[torch.Tensor]:
    def tensor(out: Any) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=images)
        return [
            tensor(model.get_image_features(pixel_values=images)),
            tensor(model.get_text_features(input_ids=ids)),
            out.logits_per_image,
            out.logits_per_text,
        ]


def assert_matches_transformers(folder: Path, hf_model: Any, res: int) -> None:
    torch.manual_seed(1)
    images = torch.randn(3, 3, res, res)
    ids = clip.tokenize(TEXTS)
    expected = hf_outputs(hf_model, images, ids)
    model, _ = clip.load(str(folder), device="cpu")
    with torch.no_grad():
        got = [model.encode_image(images), model.encode_text(ids), *model(images, ids)]
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        assert _rel(a, b) < 1e-4


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_tiny_folder_matches_transformers(tmp_path: Path, act: str) -> None:
    hf_model = save_random(tiny_config(act), tmp_path)
    assert_matches_transformers(tmp_path, hf_model, 32)
    checkpoint = read_checkpoint(str(tmp_path))
    assert checkpoint.format == "huggingface" and checkpoint.config.activation == act
    assert (checkpoint.config.transformer_heads, checkpoint.config.vision_heads) == (2, 4)
    model, _ = clip.load(str(tmp_path), device="cpu")
    mlp = model.visual.transformer.resblocks[0].mlp
    assert isinstance(mlp, InferenceMLP) and isinstance(mlp.gelu, torch.nn.GELU) == (act == "gelu")


def test_sharded_and_bin_folders_load_the_same(tmp_path: Path) -> None:
    hf_model = save_random(tiny_config("gelu"), tmp_path / "sharded", max_shard_size="1MB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert_matches_transformers(tmp_path / "sharded", hf_model, 32)
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_text((tmp_path / "sharded" / "config.json").read_text())
    torch.save(hf_model.state_dict(), binary / "pytorch_model.bin")
    assert_matches_transformers(binary, hf_model, 32)
    sharded, single = read_checkpoint(str(tmp_path / "sharded")), read_checkpoint(str(binary))
    assert len(sharded.files) == 2 and sharded.checkpoint_id.startswith("sha256:")
    assert sharded.checkpoint_id != single.checkpoint_id


def test_legacy_eos_id_pools_at_the_largest_id(tmp_path: Path) -> None:
    hf_model = save_random(tiny_config(eos_token_id=2), tmp_path)
    assert read_checkpoint(str(tmp_path)).config.text_eos_id is None
    ids = clip.tokenize(TEXTS)
    model, _ = clip.load(str(tmp_path), device="cpu")
    with torch.no_grad():
        expected = hf_model.get_text_features(input_ids=ids).pooler_output
        assert _rel(model.encode_text(ids), expected) < 1e-4


def test_eos_id_pools_at_its_first_occurrence(tmp_path: Path) -> None:
    # eos 400 is not the largest id: pooling must find it, not the argmax.
    hf_model = save_random(tiny_config(eos_token_id=400), tmp_path)
    ids = torch.tensor([[49406, 320, 400, 1125, 49000, 0], [49406, 400, 7, 400, 0, 0]])
    model, _ = clip.load(str(tmp_path), device="cpu")
    with torch.no_grad():
        expected = hf_model.get_text_features(input_ids=ids).pooler_output
        assert _rel(model.encode_text(ids), expected) < 1e-4


def test_preprocessing_from_preprocessor_config(tmp_path: Path) -> None:
    save_random(tiny_config(), tmp_path)
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.25, 0.3],
        resample=2,
    )
    processor.save_pretrained(tmp_path)
    _, preprocess = clip.load(str(tmp_path), device="cpu")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (57, 83, 3), dtype=np.uint8))
    expected = torch.as_tensor(processor(images=image, return_tensors="np")["pixel_values"][0])
    # The same size, crop, mean and std; resizers may round a few pixels to the next 8-bit level.
    levels = (preprocess(image) - expected).abs() * torch.tensor([0.2, 0.25, 0.3])[:, None, None] * 255
    assert preprocess(image).shape == expected.shape == (3, 32, 32)
    assert levels.max() < 1.001 and (levels > 1e-3).float().mean() < 0.01


def test_wrong_folders_give_one_clear_error(tmp_path: Path) -> None:
    save_random(tiny_config(), tmp_path / "ok")
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    weights = (tmp_path / "ok" / "model.safetensors").read_bytes()

    def folder(name: str, cfg: dict[str, Any], data: bytes | None = weights) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(cfg))
        if data is not None:
            (tmp_path / name / "model.safetensors").write_bytes(data)
        return str(tmp_path / name)

    cases = {
        folder("siglip", {**config, "model_type": "siglip"}): "'siglip' model",
        folder("tanh", {**config, "text_config": {**config["text_config"], "hidden_act": "gelu_new"}}): (
            "hidden_act"
        ),
        folder(
            "corrupt", config, weights[: len(weights) // 2]
        ): "model.safetensors is not a readable safetensors",
        folder("empty", config, None): "none of the weight files",
        folder("heads", {**config, "text_config": {**config["text_config"], "num_attention_heads": 3}}): (
            "do not form a CLIP model"
        ),
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as err:
            clip.load(path, device="cpu")
        assert path in str(err.value)
    from safetensors.torch import load_file, save_file

    original = load_file(tmp_path / "ok" / "model.safetensors")
    partial_cases = {
        "layers.1.": r"does not match .*config\.json: vision_layers 2 \(the weights: 1\)",
        "vision_model.post_layernorm.bias": r"missing: visual\.ln_post\.bias",
        "text_model.encoder.layers.0.self_attn.k_proj.bias": r"layer 0 of the text tower lacks \['k'\]_proj\.bias",
    }
    for i, (dropped, message) in enumerate(partial_cases.items()):
        save_file({k: v for k, v in original.items() if dropped not in k}, tmp_path / f"p{i}.safetensors")
        path = folder(f"partial{i}", config, (tmp_path / f"p{i}.safetensors").read_bytes())
        with pytest.raises(CheckpointError, match=message):
            clip.load(path, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_vit_b32_shape_matches_transformers(tmp_path: Path, act: str) -> None:
    config = transformers.CLIPConfig(text_config={"hidden_act": act}, vision_config={"hidden_act": act})
    hf_model = save_random(config, tmp_path)  # transformers' defaults are ViT-B/32's shapes
    assert_matches_transformers(tmp_path, hf_model, 224)


def _openai_vocabulary_folder(folder: Path) -> Path:
    """vocab.json and merges.txt of OpenAI's BPE, written from our tokenizer's tables."""
    tok = SimpleTokenizer()
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(tok.encoder), encoding="utf-8")
    merges = sorted(tok.bpe_ranks, key=tok.bpe_ranks.__getitem__)
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    return folder


def test_tokenizer_equals_transformers_clip_tokenizer(tmp_path: Path) -> None:
    """transformers' CLIPTokenizer skips OpenAI's ftfy/HTML cleaning and matches special tokens
    before the word pattern; ours is OpenAI's (test_tokenizer.py). On the cleaned text, every
    string whose special tokens are not glued to punctuation gets transformers' ids exactly."""
    folder = _openai_vocabulary_folder(tmp_path / "tok")
    reference = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    texts = random_texts(10_000)
    cleaned = [clean_text(t) for t in texts]
    # OpenAI's pattern reads "!<|endoftext|>" as punctuation, letters, punctuation; transformers as one token.
    glued = regex.compile(r"[^\s\p{L}\p{N}]<\|(?:startoftext|endoftext)\|>")
    kept = [i for i, text in enumerate(cleaned) if not glued.search(text)]
    ours = clip.tokenize(texts, truncate=True)
    expected = reference([cleaned[i] for i in kept], truncation=True, max_length=77)["input_ids"]
    mismatches = [
        texts[i]
        for i, ids in zip(kept, expected, strict=True)
        if ours[i, : len(ids)].tolist() != ids or ours[i, len(ids) :].any()
    ]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]!r}"
    assert len(kept) > 9_900 and sum("<|endoftext|>" in cleaned[i] for i in kept) > 500
