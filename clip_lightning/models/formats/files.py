"""Reading weight files (safetensors, torch pickles, TorchScript, sharded sets) into plain state dicts.

Every failure is one :class:`~clip_lightning.errors.CheckpointError` naming the file and what is
wrong with it; nothing is returned half read.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...errors import CheckpointError
from ..hub import sha256_file

__all__ = [
    "content_id",
    "jit_load",
    "read_all",
    "read_index",
    "read_json",
    "read_state_file",
    "read_weights",
    "unwrap_state_dict",
]


def jit_load(path: str, device: str | torch.device) -> torch.jit.ScriptModule:
    """``torch.jit.load`` without torch's deprecation notice (meant for developers, not users)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(path, map_location=device)


def unwrap_state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint object: a ``state_dict`` entry if any, ``module.`` prefixes dropped."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors.")
    prefix = "module."
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in obj.items()}


def read_json(path: str) -> dict[str, Any]:
    """A JSON object from ``path`` (a config file)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not readable JSON: {err}.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a JSON object.")
    return data


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """Tensors of one weight file: safetensors (no pickle) by its suffix, else ``torch.load(weights_only=True)``."""
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(path, device="cpu"))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable safetensors file: {err}.") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a CLIP checkpoint: it is neither a TorchScript archive nor a state dict "
            f"that torch.load(weights_only=True) can read ({type(err).__name__}: {str(err)[:200]})."
        ) from None
    return unwrap_state_dict(obj, path)


def read_state_file(path: str) -> tuple[torch.jit.ScriptModule | None, dict[str, torch.Tensor]]:
    """A single checkpoint file: ``(script module or None, state dict)``.

    TorchScript archives (OpenAI's) first; torch.load reopens the file from its start after a
    failed TorchScript read.
    """
    if not path.endswith(".safetensors"):
        try:
            scripted = jit_load(path, "cpu")
            return scripted, dict(scripted.state_dict())
        except RuntimeError:
            pass
    return None, read_weights(path)


def read_index(folder: str, index_name: str) -> list[str]:
    """The shard files a Hugging Face ``*.index.json`` names, in order, as paths in ``folder``."""
    index_path = os.path.join(folder, index_name)
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{index_path} is not a shard index with a weight_map: {err}.") from None
    paths = [os.path.join(folder, shard) for shard in shards]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise CheckpointError(f"{index_path} names shards that are missing: {missing}.")
    return paths


def read_all(paths: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tensors of every file in ``paths`` (shards), refusing a name held by two of them."""
    merged: dict[str, torch.Tensor] = {}
    for path in paths:
        for key, value in read_weights(path).items():
            if key in merged:
                raise CheckpointError(f"{path} holds {key!r}, which another shard holds too.")
            merged[key] = value
    return merged


def content_id(paths: Sequence[str], known_sha256: str | None = None) -> str:
    """Cache key of a checkpoint: ``sha256:<hex>`` of its one file, or of its shards' hashes in order."""
    if len(paths) == 1:
        return f"sha256:{known_sha256 or sha256_file(paths[0])}"
    lines = "".join(f"{os.path.basename(p)} {sha256_file(p)}\n" for p in paths)
    return f"sha256:{hashlib.sha256(lines.encode()).hexdigest()}"
