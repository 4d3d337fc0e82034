"""Checkpoint download, verification, caching and loading (``load``, ``available_models``)."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import CheckpointError, DownloadError, ModelNotFoundError
from .model import CLIP, build_model, config_from_state_dict, convert_weights
from .transform import image_transform

__all__ = [
    "BASE_URL_ENV",
    "CheckpointError",
    "DownloadError",
    "available_models",
    "checkpoint_sha256",
    "download",
    "load",
    "model_url",
    "resolve_checkpoint",
    "sha256_file",
]

DEFAULT_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
BASE_URL_ENV = "CLIP_LIGHTNING_BASE_URL"
DEFAULT_ROOT = os.path.join("~", ".cache", "clip")

# name -> (sha256 of the file, file name); the URL is <base>/<sha256>/<file name>.
_MODELS: dict[str, tuple[str, str]] = {
    "RN50": ("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
    "RN101": ("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt"),
    "RN50x4": ("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt"),
    "RN50x16": ("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt"),
    "RN50x64": ("be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", "RN50x64.pt"),
    "ViT-B/32": ("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    "ViT-B/16": ("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    "ViT-L/14": ("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
    "ViT-L/14@336px": (
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
        "ViT-L-14-336px.pt",
    ),
}

_CHUNK = 1 << 20


def available_models() -> list[str]:
    """Names of the published CLIP models."""
    return list(_MODELS)


def model_url(name: str) -> str:
    """Download URL of a published model; ``$CLIP_LIGHTNING_BASE_URL`` replaces the host prefix."""
    sha, filename = _MODELS[name]
    base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{sha}/{filename}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Inter-process lock, so ranks sharing a cache download a file once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still keep the cache sound
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _how_to_recover(filename: str) -> str:
    return (
        f"To use a checkpoint you already have, pass its path instead of the name, e.g. "
        f"clip_lightning.load('/path/to/{filename}') or --model.name /path/to/{filename}; "
        f"to use a mirror, set {BASE_URL_ENV} to a URL that serves <sha256>/{filename}."
    )


def _fetch(url: str, out: Any, progress: bool) -> str:
    """Stream ``url`` into the open file ``out``; return the SHA256 of what was written."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=60) as response:
        expected_size = response.headers.get("Content-Length")
        total = int(expected_size) if expected_size and expected_size.isdigit() else None
        with tqdm(total=total, unit="iB", unit_scale=True, unit_divisor=1024, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    return digest.hexdigest()


def download(url: str, root: str, expected_sha256: str | None = None, progress: bool = True) -> str:
    """Fetch ``url`` into ``root`` and return the file's path.

    The file is written under a temporary name and moved into place only once complete and,
    when ``expected_sha256`` is given, matching it. A cached file with another hash is fetched
    again. On failure nothing is left where a later run would trust it.
    """
    os.makedirs(root, exist_ok=True)
    filename = os.path.basename(urlparse(url).path) or "checkpoint.pt"
    target = os.path.join(root, filename)
    with _file_lock(target + ".lock"):
        if os.path.exists(target):
            if not os.path.isfile(target):
                raise DownloadError(f"{target} exists and is not a regular file; move it away and retry.")
            if expected_sha256 is None or sha256_file(target) == expected_sha256:
                return target
            warnings.warn(
                f"{target} exists, but its SHA256 does not match; downloading it again", stacklevel=2
            )
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    actual = _fetch(url, out, progress)
                except http.client.IncompleteRead as err:
                    raise DownloadError(
                        f"Downloading {url} was cut short ({err.expected} bytes missing); nothing was "
                        f"kept. Retry, or: {_how_to_recover(filename)}"
                    ) from None
                except urllib.error.HTTPError as err:
                    raise DownloadError(
                        f"Could not download {url}: HTTP {err.code} {err.reason}. {_how_to_recover(filename)}"
                    ) from None
                except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
                    reason = getattr(err, "reason", None) or err
                    raise DownloadError(
                        f"Could not download {url}: {reason}. {_how_to_recover(filename)}"
                    ) from None
                out.flush()
                os.fsync(out.fileno())
            if expected_sha256 is not None and actual != expected_sha256:
                raise DownloadError(
                    f"Downloaded {url}, but its SHA256 is {actual}, expected {expected_sha256}; "
                    f"the file was discarded. {_how_to_recover(filename)}"
                )
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
    return target


def resolve_checkpoint(name: str, download_root: str | None = None, progress: bool = True) -> str:
    """Local path of ``name`` (a published model name, downloaded if needed, or a file path)."""
    if name in _MODELS:
        root = os.path.expanduser(download_root or DEFAULT_ROOT)
        return download(model_url(name), root, _MODELS[name][0], progress=progress)
    if os.path.isfile(name):
        return name
    hint = difflib.get_close_matches(name, available_models(), n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ModelNotFoundError(
        f"Model {name!r} not found: it is neither a published model nor a file.{suggestion} "
        f"Available models: {available_models()}; or pass the path to a checkpoint file."
    )


def checkpoint_sha256(name: str, path: str) -> str:
    """SHA256 of a checkpoint: known from the URL for published models, else computed."""
    return _MODELS[name][0] if name in _MODELS else sha256_file(path)


def _jit_load(path: str, device: str | torch.device) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # OpenAI's checkpoints are TorchScript archives; torch's deprecation notice is not for users.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(path, map_location=device)


def _read_checkpoint(path: str) -> tuple[torch.jit.ScriptModule | None, dict[str, torch.Tensor]]:
    """Read a TorchScript archive or a plain state dict; return (script module or None, state dict)."""
    try:
        scripted = _jit_load(path, "cpu")
        return scripted, dict(scripted.state_dict())
    except RuntimeError:
        pass  # not TorchScript; a fresh torch.load below reopens the file from its start
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a CLIP checkpoint: it is neither a TorchScript archive nor a state dict "
            f"that torch.load(weights_only=True) can read ({type(err).__name__}: {str(err)[:200]})."
        ) from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors.")
    prefix = "module."
    state_dict = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in obj.items()}
    try:
        config_from_state_dict(state_dict)
    except ValueError as err:
        raise CheckpointError(f"{path} is not a CLIP checkpoint: {err}.") from None
    return None, state_dict


def _script_graphs(module: nn.Module) -> Iterator[Any]:
    """Graphs of every method of a script module and its submodules."""
    for sub in module.modules():
        with contextlib.suppress(RuntimeError, AttributeError):
            yield sub.graph  # the forward method's graph
        for attr in ("forward1", "encode_image", "encode_text"):
            graph = getattr(getattr(sub, attr, None), "graph", None)
            if graph is not None:
                yield graph


def _constant_value(node: Any) -> Any:
    return getattr(node, node.kindOf("value"))("value")


def _patch_script_module(model: torch.jit.ScriptModule, device: torch.device) -> None:
    """Rewrite device constants baked in by tracing, and on CPU the fp16 casts into fp32 ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        device_holder = torch.jit.trace(lambda: torch.ones([]).to(device), example_inputs=[])
        float_holder = torch.jit.trace(lambda: torch.ones([]).float(), example_inputs=[])
    device_node = [n for n in device_holder.graph.findAllNodes("prim::Constant") if "Device" in repr(n)][-1]
    float_node = list(float_holder.graph.findNode("aten::to").inputs())[1].node()
    half = 5  # ScalarType code of torch.float16 in TorchScript graphs
    for graph in _script_graphs(model):
        for node in graph.findAllNodes("prim::Constant"):
            if "value" in node.attributeNames() and str(_constant_value(node)).startswith("cuda"):
                node.copyAttributes(device_node)
        if device.type != "cpu":
            continue
        for node in graph.findAllNodes("aten::to"):
            inputs = list(node.inputs())
            for i in (1, 2):  # dtype is the second or third argument of aten::to
                src = inputs[i].node() if i < len(inputs) else None
                if src is not None and "value" in src.attributeNames() and _constant_value(src) == half:
                    src.copyAttributes(float_node)
    if device.type == "cpu":
        model.float()


def load(
    name: str,
    device: str | torch.device | None = None,
    jit: bool = False,
    download_root: str | None = None,
) -> tuple[nn.Module, Callable[[Any], torch.Tensor]]:
    """Load a CLIP model and its preprocessing transform.

    ``name`` is one of :func:`available_models` (downloaded to ``~/.cache/clip`` or
    ``download_root``, checksum verified) or the path of a checkpoint: an OpenAI TorchScript
    archive or a state dict. Weights are fp16 on accelerators and fp32 on CPU; an fp32
    checkpoint keeps full precision on CPU. ``jit=True`` returns the TorchScript model.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    path = resolve_checkpoint(name, download_root)
    scripted, state_dict = _read_checkpoint(path)
    if jit and scripted is None:
        warnings.warn(f"{path} is not a TorchScript archive; loading it with jit=False", stacklevel=2)
        jit = False
    if jit:
        assert scripted is not None
        scripted = _jit_load(path, device).eval()
        _patch_script_module(scripted, device)
        resolution = getattr(scripted, "input_resolution", None)
        n_px = (
            int(resolution) if resolution is not None else config_from_state_dict(state_dict).image_resolution
        )
        return scripted, image_transform(n_px)
    model: CLIP = build_model(state_dict).to(device)
    if device.type != "cpu":
        convert_weights(model)
    return model, image_transform(model.visual.input_resolution)
