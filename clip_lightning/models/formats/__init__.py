"""Checkpoint formats of the CLIP family, each read into OpenAI's parameter names and a config.

* ``openai``: OpenAI's TorchScript archives (the published names);
* ``state_dict``: bare state dicts (``.pt``/``.bin``/``.safetensors``, ``state_dict``/``module.``
  wrappers) of OpenAI's or open_clip's CLIP models;
* ``huggingface``: transformers ``CLIPModel`` folders (:mod:`.hf`);
* ``open_clip``: open_clip hub folders (:mod:`.open_clip`).
"""

from .base import Architecture, Checkpoint, Preprocess, check_weights
from .sources import HF_HUB_PREFIX, hub_folder, read_checkpoint, read_file, read_folder

__all__ = [
    "HF_HUB_PREFIX",
    "Architecture",
    "Checkpoint",
    "Preprocess",
    "check_weights",
    "hub_folder",
    "read_checkpoint",
    "read_file",
    "read_folder",
]
