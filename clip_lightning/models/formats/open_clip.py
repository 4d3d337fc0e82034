"""open_clip checkpoints of the CLIP family: hub folders and bare state dicts.

open_clip's ``CLIP`` class uses OpenAI's parameter names, so its weights load as they are (its
``CustomTextCLIP`` puts the text tower under ``text.``). What shapes cannot tell comes from the
folder's ``open_clip_config.json`` (``quick_gelu``, ``head_width``, text ``heads``) or, for bare
state dicts, from :class:`~.base.Architecture`. Models outside the family are refused by name.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from ...errors import CheckpointError
from ..config import config_from_state_dict
from .base import Architecture, Checkpoint, Preprocess, check_declared, check_vocabulary, check_weights
from .files import read_all, read_json

__all__ = ["SUPPORTED", "WEIGHT_FILES", "family_problem", "from_open_clip_names", "read_open_clip_folder"]

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
SUPPORTED = (
    "supported are CLIP models with a ViT or modified-ResNet image tower and the standard text "
    "transformer (OpenAI's models, open_clip's ViT-*/RN* CLIP configs, Hugging Face CLIPModel folders)"
)
# Key fragments of open_clip models outside the family, and what they are.
_FOREIGN_KEYS = {
    "logit_bias": "SigLIP (sigmoid loss, logit bias)",
    "text_decoder.": "CoCa (text decoder)",
    "visual.attn_pool.": "CoCa (attentional pooler)",
    "visual.trunk.": "a timm image tower",
    "visual.blocks.": "an EVA/timm image tower",
    "text.transformer.embeddings.": "a Hugging Face text tower",
    "text.auto_model.": "a Hugging Face text tower",
}
# Config fields that must keep these values for the model to be OpenAI's architecture.
_VISION_FIXED = {
    "ls_init_value": None,
    "attentional_pool": False,
    "no_ln_pre": False,
    "pos_embed_type": "learnable",
    "final_ln_after_pool": False,
    "pool_type": "tok",
    "act_kwargs": None,
    "norm_kwargs": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
    "timm_model_name": None,
}
_TEXT_FIXED = {
    **{k: v for k, v in _VISION_FIXED.items() if k not in ("attentional_pool", "pool_type", "no_ln_pre")},
    "embed_cls": False,
    "no_causal_mask": False,
    "pool_type": "argmax",
    "proj_bias": False,
    "proj_type": "linear",
    "hf_model_name": None,
    "hf_tokenizer_name": None,  # another tokenizer than CLIP's BPE
    "tokenizer_mode": None,
}
_TOP_FIXED = {"init_logit_bias": None, "multimodal_cfg": None}


def family_problem(model_cfg: dict[str, Any]) -> str | None:
    """Why an open_clip ``model_cfg`` is outside the CLIP family, or None when it is inside."""
    for key, value in _TOP_FIXED.items():
        if model_cfg.get(key, value) != value:
            return f"{key}={model_cfg[key]!r} (SigLIP or CoCa)"
    for tower, fixed in (("vision_cfg", _VISION_FIXED), ("text_cfg", _TEXT_FIXED)):
        cfg = model_cfg.get(tower) or {}
        for key, value in fixed.items():
            if cfg.get(key, value) != value:
                return f"{tower}.{key}={cfg[key]!r}"
        if isinstance(cfg.get("image_size"), (list, tuple)) and len(set(cfg["image_size"])) > 1:
            return f"{tower}.image_size={cfg['image_size']!r} (not square)"
    return None


def from_open_clip_names(weights: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """open_clip's names -> OpenAI's: ``text.`` (CustomTextCLIP) dropped, causal-mask buffers dropped."""
    for fragment, what in _FOREIGN_KEYS.items():
        if any(k == fragment or k.startswith(fragment) for k in weights):
            raise CheckpointError(
                f"{where} is {what}, not a CLIP model of the supported family: {SUPPORTED}."
            )
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if key == "attn_mask" or key.endswith(".attn_mask"):
            continue  # the causal mask, saved as a buffer by old open_clip versions
        out[key[len("text.") :] if key.startswith("text.") else key] = value
    return out


def _preprocess(cfg: dict[str, Any], n_px: int, path: str) -> Preprocess:
    default = Preprocess(n_px)
    size = cfg.get("size", n_px)
    size = size[0] if isinstance(size, (list, tuple)) else size
    mode = cfg.get("resize_mode", "shortest")
    if int(size) != n_px or mode != "shortest":
        raise CheckpointError(
            f"{path}: preprocess_cfg (size {size}, resize_mode {mode!r}) is not a resize of the short "
            f"side plus a {n_px} px center crop."
        )
    return Preprocess(
        n_px=n_px,
        mean=tuple(float(x) for x in cfg.get("mean", default.mean)),
        std=tuple(float(x) for x in cfg.get("std", default.std)),
        interpolation=cfg.get("interpolation", "bicubic"),
    )


def read_open_clip_folder(folder: str, source: str, arch: Architecture | None = None) -> Checkpoint:
    """Read an open_clip hub folder (``open_clip_config.json`` and its weights) into a :class:`Checkpoint`."""
    config_path = os.path.join(folder, "open_clip_config.json")
    config = read_json(config_path)
    model_cfg = config.get("model_cfg")
    if not isinstance(model_cfg, dict):
        raise CheckpointError(f"{config_path} has no model_cfg object.")
    if problem := family_problem(model_cfg):
        raise CheckpointError(
            f"{config_path} describes a model outside the CLIP family ({problem}); {SUPPORTED}."
        )
    name = next((n for n in WEIGHT_FILES if os.path.isfile(os.path.join(folder, n))), None)
    if name is None:
        raise CheckpointError(f"{folder} has an open_clip_config.json but none of {list(WEIGHT_FILES)}.")
    files = [os.path.join(folder, name)]
    weights = from_open_clip_names(read_all(files), files[0])
    try:
        shapes = config_from_state_dict(weights)
    except ValueError as err:
        raise CheckpointError(f"{files[0]} is not a CLIP checkpoint: {err}.") from None
    vision, text = model_cfg.get("vision_cfg") or {}, model_cfg.get("text_cfg") or {}
    clip_config = dataclasses.replace(
        shapes,
        activation="quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu",
        vision_head_width=int(vision.get("head_width", 64)),
        transformer_heads=int(text.get("heads", 8)),
    )
    layers = vision.get("layers")
    declared = {
        "embed_dim": model_cfg.get("embed_dim"),
        "image_resolution": vision.get("image_size"),
        "vision_layers": tuple(layers) if isinstance(layers, list) else layers,
        "vision_width": vision.get("width"),
        "vision_patch_size": vision.get("patch_size"),
        "context_length": text.get("context_length"),
        "vocab_size": text.get("vocab_size"),
        "transformer_width": text.get("width"),
        "transformer_layers": text.get("layers"),
    }
    if isinstance(declared["image_resolution"], list):
        declared["image_resolution"] = declared["image_resolution"][0]
    check_declared(declared, clip_config, config_path, files)
    check_vocabulary(clip_config, config_path)
    if arch is not None:
        clip_config = arch.apply(clip_config)
    check_weights(weights, clip_config, files)
    preprocess = _preprocess(config.get("preprocess_cfg") or {}, clip_config.image_resolution, config_path)
    return Checkpoint("open_clip", source, files, weights, clip_config, preprocess)
