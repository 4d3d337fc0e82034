"""Reading checkpoints (OpenAI's TorchScript archives or state dicts) into models: ``load``."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError

# The module, not the function: ops.inference imports models.model, so when clip_lightning.ops is
# imported before clip_lightning.models this line runs while ops.inference is half initialized.
from ..ops import inference
from .config import CHECKPOINT_META_KEYS, config_from_state_dict
from .hub import resolve_checkpoint
from .model import CLIP, convert_weights
from .transform import image_transform

__all__ = ["build_model", "load"]


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


def build_model(state_dict: Mapping[str, torch.Tensor], *, accelerated: bool = True) -> CLIP:
    """Build a CLIP model (fp32, eval mode) whose architecture is read off ``state_dict``.

    The model is the accelerated one (:func:`clip_lightning.ops.accelerate`) unless
    ``accelerated=False`` asks for the reference. The caller's mapping is not modified; fp16
    weights are widened to fp32 exactly.
    """
    config = config_from_state_dict(state_dict)
    # Copies, so the model never aliases the caller's tensors; fp16 widens to fp32 exactly.
    weights = {
        k: v.to(torch.float32, copy=True) if v.is_floating_point() else v.clone()
        for k, v in state_dict.items()
        if k not in CHECKPOINT_META_KEYS
    }
    with torch.device("meta"):  # no random init of weights that are overwritten next
        model = CLIP(config)
    model.load_state_dict(weights, strict=True, assign=True)
    model.eval()
    return inference.accelerate(model) if accelerated else model


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
    model = build_model(state_dict).to(device)
    if device.type != "cpu":
        convert_weights(model)
    return model, image_transform(model.visual.input_resolution)
