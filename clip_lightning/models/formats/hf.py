"""Hugging Face transformers ``CLIPModel`` folders: ``config.json`` plus (sharded) safetensors or ``.bin``.

The weights are renamed to OpenAI's parameter names (q/k/v joined into ``in_proj``, projections
transposed); what shapes cannot tell (heads, activation, the end-of-text id) comes from the config,
the preprocessing from ``preprocessor_config.json`` when the folder has one.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import torch

from ...errors import CheckpointError
from ..config import ACTIVATIONS, config_from_state_dict
from .base import Architecture, Checkpoint, Preprocess, check_declared, check_vocabulary, check_weights
from .files import read_all, read_index, read_json

__all__ = ["WEIGHT_FILES", "hf_to_openai", "is_hf_folder", "read_hf_folder"]

# In order of preference: safetensors (no pickle) first, one file before shards.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# PIL's resampling codes, as image processors store them.
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}
# Legacy configs carry eos id 2; transformers then pools at the argmax of the ids (as OpenAI).
_LEGACY_EOS = 2

_TOWERS = (("text_model.", ""), ("vision_model.", "visual."))
_RENAMES = [
    (r"embeddings\.token_embedding\.weight", "token_embedding.weight"),
    (r"embeddings\.position_embedding\.weight", "positional_embedding"),
    (r"embeddings\.patch_embedding\.weight", "conv1.weight"),
    (r"embeddings\.class_embedding", "class_embedding"),
    (r"pre_layrnorm\.", "ln_pre."),
    (r"post_layernorm\.", "ln_post."),
    (r"final_layer_norm\.", "ln_final."),
    (r"encoder\.layers\.(\d+)\.layer_norm1\.", r"transformer.resblocks.\1.ln_1."),
    (r"encoder\.layers\.(\d+)\.layer_norm2\.", r"transformer.resblocks.\1.ln_2."),
    (r"encoder\.layers\.(\d+)\.mlp\.fc1\.", r"transformer.resblocks.\1.mlp.c_fc."),
    (r"encoder\.layers\.(\d+)\.mlp\.fc2\.", r"transformer.resblocks.\1.mlp.c_proj."),
    (r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"transformer.resblocks.\1.attn.out_proj."),
]
_QKV = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")


def is_hf_folder(folder: str) -> bool:
    """Whether ``folder`` holds a transformers ``config.json`` of a CLIP model."""
    return os.path.isfile(os.path.join(folder, "config.json")) and not os.path.isfile(
        os.path.join(folder, "open_clip_config.json")
    )


def hf_to_openai(weights: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """``CLIPModel`` parameter names -> OpenAI's; unknown names are kept, for the key check to report."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    for key, value in weights.items():
        if key.endswith("position_ids"):
            continue  # a buffer of positions 0..n-1, not a parameter
        if key == "logit_scale":
            out[key] = value
            continue
        if key in ("text_projection.weight", "visual_projection.weight"):
            name = "text_projection" if key.startswith("text") else "visual.proj"
            out[name] = value.t().contiguous()
            continue
        tower = next(((src, dst) for src, dst in _TOWERS if key.startswith(src)), None)
        if tower is None:
            out[key] = value
            continue
        rest = key[len(tower[0]) :]
        if match := _QKV.fullmatch(rest):
            layer, which, kind = match.groups()
            qkv.setdefault((tower[1], layer, kind), {})[which] = value
            continue
        for pattern, replacement in _RENAMES:
            renamed, hits = re.subn("^" + pattern, replacement, rest)
            if hits:
                rest = renamed
                break
        out[tower[1] + rest] = value
    for (prefix, layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(
                f"{where}: layer {layer} of the {'vision' if prefix else 'text'} tower lacks "
                f"{sorted({'q', 'k', 'v'} - set(parts))}_proj.{kind}."
            )
        joined = torch.cat([parts["q"], parts["k"], parts["v"]])
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = joined
    return out


def _tower(config: dict[str, Any], name: str) -> dict[str, Any]:
    # Configs written by old transformers versions may hold the values under "<name>_dict".
    return {**(config.get(name) or {}), **(config.get(f"{name}_dict") or {})}


def _activation(text: dict[str, Any], vision: dict[str, Any], path: str) -> str:
    acts = {text.get("hidden_act", "quick_gelu"), vision.get("hidden_act", "quick_gelu")}
    if len(acts) != 1 or not acts <= set(ACTIVATIONS):
        raise CheckpointError(
            f"{path}: hidden_act {sorted(acts)} is not supported; both towers must use one of {ACTIVATIONS}."
        )
    return acts.pop()


def _preprocess(folder: str, n_px: int) -> Preprocess:
    path = os.path.join(folder, "preprocessor_config.json")
    if not os.path.isfile(path):
        return Preprocess(n_px)
    cfg = read_json(path)
    crop, size = cfg.get("crop_size", n_px), cfg.get("size", n_px)
    crop = crop.get("height", n_px) if isinstance(crop, dict) else crop
    size = (size.get("shortest_edge") or size.get("height", n_px)) if isinstance(size, dict) else size
    if int(crop) != n_px or cfg.get("do_center_crop", True) is False:
        raise CheckpointError(f"{path}: crop_size {crop} differs from the model's {n_px} px input.")
    resample = cfg.get("resample", 3)
    if resample not in _RESAMPLE:
        raise CheckpointError(f"{path}: resample {resample!r} is not one of PIL's codes {sorted(_RESAMPLE)}.")
    return Preprocess(
        n_px=n_px,
        mean=tuple(float(x) for x in cfg.get("image_mean", Preprocess(n_px).mean)),
        std=tuple(float(x) for x in cfg.get("image_std", Preprocess(n_px).std)),
        resize=int(size),
        interpolation=_RESAMPLE[resample],
    )


def read_hf_folder(folder: str, source: str, arch: Architecture | None = None) -> Checkpoint:
    """Read a transformers ``CLIPModel`` folder into a checked :class:`Checkpoint`."""
    config_path = os.path.join(folder, "config.json")
    config = read_json(config_path)
    model_type = config.get("model_type", "clip")
    if model_type != "clip" or "text_config" not in config or "vision_config" not in config:
        raise CheckpointError(
            f"{config_path} describes a {model_type!r} model; supported are transformers CLIPModel "
            f"folders (model_type 'clip' with text_config and vision_config) and open_clip's CLIP models."
        )
    name = next((n for n in WEIGHT_FILES if os.path.isfile(os.path.join(folder, n))), None)
    if name is None:
        raise CheckpointError(
            f"{folder} has a config.json but none of the weight files {list(WEIGHT_FILES)}."
        )
    files = read_index(folder, name) if name.endswith(".index.json") else [os.path.join(folder, name)]
    where = files[0] if len(files) == 1 else os.path.join(folder, name)
    weights = hf_to_openai(read_all(files), where)
    text, vision = _tower(config, "text_config"), _tower(config, "vision_config")
    for tower, label in ((text, "text_config"), (vision, "vision_config")):
        if float(tower.get("layer_norm_eps", 1e-5)) != 1e-5:
            raise CheckpointError(f"{config_path}: {label}.layer_norm_eps must be 1e-5 (CLIP's).")
    try:
        shapes = config_from_state_dict(weights)
    except ValueError as err:
        raise CheckpointError(f"{where} is not a CLIP checkpoint: {err}.") from None
    eos = text.get("eos_token_id", 49407)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    clip_config = dataclasses.replace(
        shapes,
        transformer_heads=int(text.get("num_attention_heads", 8)),
        vision_head_width=shapes.vision_width // int(vision.get("num_attention_heads", 12)),
        activation=_activation(text, vision, config_path),
        text_eos_id=None if eos in (None, _LEGACY_EOS) else int(eos),
    )
    declared = {
        "embed_dim": config.get("projection_dim", 512),
        "image_resolution": vision.get("image_size", 224),
        "vision_layers": vision.get("num_hidden_layers", 12),
        "vision_width": vision.get("hidden_size", 768),
        "vision_patch_size": vision.get("patch_size", 32),
        "context_length": text.get("max_position_embeddings", 77),
        "vocab_size": text.get("vocab_size", 49408),
        "transformer_width": text.get("hidden_size", 512),
        "transformer_layers": text.get("num_hidden_layers", 12),
    }
    check_declared(declared, clip_config, config_path, files)
    check_vocabulary(clip_config, config_path)
    if arch is not None:
        clip_config = arch.apply(clip_config)
    check_weights(weights, clip_config, files)
    preprocess = _preprocess(folder, clip_config.image_resolution)
    return Checkpoint("huggingface", source, files, weights, clip_config, preprocess)
