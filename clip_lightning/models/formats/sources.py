"""From what a user names (a published name, a file, a folder, ``hf-hub:ORG/NAME``) to a :class:`Checkpoint`."""

from __future__ import annotations

import dataclasses
import os

from ...errors import CheckpointError, DownloadError, ModelNotFoundError
from ..config import config_from_state_dict
from ..hub import MODELS, resolve_checkpoint
from . import hf, open_clip
from .base import Architecture, Checkpoint, Preprocess, check_weights
from .files import read_state_file

__all__ = ["HF_HUB_PREFIX", "hub_folder", "read_checkpoint", "read_file", "read_folder"]

HF_HUB_PREFIX = "hf-hub:"


def read_file(path: str, arch: Architecture | None = None, known_sha256: str | None = None) -> Checkpoint:
    """One file: an OpenAI TorchScript archive, or a bare state dict of OpenAI's (= open_clip's) names."""
    scripted, weights = read_state_file(path)
    if scripted is None:
        weights = open_clip.from_open_clip_names(weights, path)
    try:
        config = config_from_state_dict(weights)
    except ValueError as err:
        raise CheckpointError(f"{path} is not a CLIP checkpoint: {err}.") from None
    if arch is not None:
        config = arch.apply(config)
    check_weights(weights, config, [path])
    fmt = "openai" if scripted is not None else "state_dict"
    preprocess = Preprocess(config.image_resolution)
    return Checkpoint(fmt, path, [path], weights, config, preprocess, scripted, known_sha256)


def read_folder(folder: str, source: str, arch: Architecture | None = None) -> Checkpoint:
    """An open_clip hub folder (``open_clip_config.json``) or a transformers one (``config.json``)."""
    if os.path.isfile(os.path.join(folder, "open_clip_config.json")):
        return open_clip.read_open_clip_folder(folder, source, arch)
    if hf.is_hf_folder(folder):
        return hf.read_hf_folder(folder, source, arch)
    raise CheckpointError(
        f"{folder} is a folder without open_clip_config.json (open_clip) or config.json (Hugging Face "
        f"transformers); pass one of those folders or a checkpoint file."
    )


def _snapshot(repo_id: str, patterns: list[str], local_only: bool) -> str:
    from huggingface_hub import snapshot_download

    return str(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=local_only))


def hub_folder(repo_id: str) -> str:
    """Local folder of a Hugging Face Hub repository: the cached snapshot, else downloaded.

    Only the configs and one set of weights are fetched (safetensors first).
    """
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:  # pragma: no cover - a runtime dependency
        raise ModelNotFoundError("hf-hub: names need the huggingface_hub package.") from None
    candidates = [
        [open_clip.WEIGHT_FILES[0]],
        [open_clip.WEIGHT_FILES[1]],
        ["model.safetensors", "model.safetensors.index.json", "model-*.safetensors"],
        ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"],
    ]
    errors: list[str] = []
    for local_only in (True, False):
        try:
            folder = _snapshot(repo_id, ["*.json"], local_only)
            is_open_clip = os.path.isfile(os.path.join(folder, "open_clip_config.json"))
            for patterns in candidates[:2] if is_open_clip else candidates[2:]:
                folder = _snapshot(repo_id, [*patterns, "*.json"], local_only)
                if os.path.isfile(os.path.join(folder, patterns[0])) or (
                    len(patterns) > 1 and os.path.isfile(os.path.join(folder, patterns[1]))
                ):
                    return folder
            errors.append(f"{'cache' if local_only else 'hub'}: no weight file")
        except Exception as err:  # huggingface_hub's offline, HTTP and not-found errors share no base
            errors.append(f"{'cache' if local_only else 'hub'}: {type(err).__name__}: {str(err)[:200]}")
    raise DownloadError(
        f"{HF_HUB_PREFIX}{repo_id}: not in the local Hugging Face cache ({hub_constants.HF_HUB_CACHE}) "
        f"and not downloadable ({'; '.join(errors)}). Download it where online "
        f"(`hf download {repo_id}`), point HF_HUB_CACHE at a cache that holds it, or pass its folder."
    )


def read_checkpoint(
    name: str, download_root: str | None = None, arch: Architecture | None = None
) -> Checkpoint:
    """Read what ``name`` names: a published model, a checkpoint file, a folder or ``hf-hub:ORG/NAME``.

    ``arch`` states hyperparameters shapes cannot tell (for bare state dicts); it overrides what
    a folder's config says.
    """
    if name.startswith(HF_HUB_PREFIX):
        return read_folder(hub_folder(name[len(HF_HUB_PREFIX) :]), name, arch)
    if name in MODELS:
        path = resolve_checkpoint(name, download_root)
        return dataclasses.replace(read_file(path, arch, known_sha256=MODELS[name][0]), source=name)
    if os.path.isdir(name):
        return read_folder(name, name, arch)
    return read_file(resolve_checkpoint(name, download_root), arch)
