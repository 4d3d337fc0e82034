"""Checkpoints into models: ``load`` (every format of :mod:`.formats`) and ``build_model``."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torchvision.transforms import Compose

# The module, not the function: ops.inference imports models.model, so when clip_lightning.ops is
# imported before clip_lightning.models this line runs while ops.inference is half initialized.
from ..ops import inference
from .config import CHECKPOINT_META_KEYS, CLIPConfig, config_from_state_dict
from .formats import Architecture, Checkpoint, Preprocess, read_checkpoint
from .formats.files import jit_load
from .model import CLIP, convert_weights
from .transform import image_transform

__all__ = ["build_model", "load", "model_from_checkpoint", "preprocess_transform"]


def preprocess_transform(preprocess: Preprocess) -> Compose:
    """The torchvision transform of a checkpoint's :class:`~.formats.Preprocess`."""
    return image_transform(
        preprocess.n_px, preprocess.mean, preprocess.std, preprocess.resize, preprocess.interpolation
    )


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


def build_model(
    state_dict: Mapping[str, torch.Tensor], *, accelerated: bool = True, config: CLIPConfig | None = None
) -> CLIP:
    """Build a CLIP model (fp32, eval mode) from a state dict of OpenAI's parameter names.

    The architecture is ``config``, or read off the shapes of ``state_dict`` (OpenAI's heads,
    QuickGELU) when it is None.

    The model is the accelerated one (:func:`clip_lightning.ops.accelerate`) unless
    ``accelerated=False`` asks for the reference. The caller's mapping is not modified; fp16
    weights are widened to fp32 exactly.
    """
    config = config_from_state_dict(state_dict) if config is None else config
    # Copies, so the model never aliases the caller's tensors; fp16 widens to fp32 exactly.
    weights = {
        k: v.to(torch.float32, copy=True) if v.is_floating_point() else v.clone()
        for k, v in state_dict.items()
        if k not in CHECKPOINT_META_KEYS
    }
    return _assemble(weights, config, accelerated)


def model_from_checkpoint(checkpoint: Checkpoint, *, accelerated: bool = True) -> CLIP:
    """The model (fp32, eval mode) of a checkpoint read by :func:`~.formats.read_checkpoint`.

    Unlike :func:`build_model` it takes the checkpoint's fp32 tensors as they are (no copy: half
    the memory traffic of a load), so the checkpoint's ``state_dict`` must not be used after.
    """
    weights = {
        k: v.float() if v.is_floating_point() else v
        for k, v in checkpoint.state_dict.items()
        if k not in CHECKPOINT_META_KEYS
    }
    return _assemble(weights, checkpoint.config, accelerated)


def _assemble(weights: dict[str, torch.Tensor], config: CLIPConfig, accelerated: bool) -> CLIP:
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
    *,
    activation: str | None = None,
    vision_head_width: int | None = None,
    text_heads: int | None = None,
) -> tuple[nn.Module, Callable[[Any], torch.Tensor]]:
    """Load a CLIP model and its preprocessing transform.

    ``name`` is one of :func:`available_models` (downloaded to ``~/.cache/clip`` or
    ``download_root``, checksum verified), a checkpoint file (an OpenAI TorchScript archive or a
    state dict, safetensors or pickled), a Hugging Face ``CLIPModel`` folder, an open_clip hub
    folder, or ``hf-hub:ORG/NAME``. ``activation`` (``quick_gelu``/``gelu``),
    ``vision_head_width`` and ``text_heads`` state what shapes cannot tell (needed for bare
    open_clip state dicts; defaults: OpenAI's). Weights are fp16 on accelerators and fp32 on CPU;
    an fp32 checkpoint keeps full precision on CPU. ``jit=True`` returns the TorchScript model.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    checkpoint = read_checkpoint(name, download_root, Architecture(activation, vision_head_width, text_heads))
    path = checkpoint.files[0]
    if jit and checkpoint.scripted is None:
        warnings.warn(f"{path} is not a TorchScript archive; loading it with jit=False", stacklevel=2)
        jit = False
    if jit:
        state_dict = checkpoint.state_dict
        scripted = jit_load(path, device).eval()
        _patch_script_module(scripted, device)
        resolution = getattr(scripted, "input_resolution", None)
        n_px = (
            int(resolution) if resolution is not None else config_from_state_dict(state_dict).image_resolution
        )
        return scripted, image_transform(n_px)
    model = model_from_checkpoint(checkpoint).to(device)
    if device.type != "cpu":
        convert_weights(model)
    return model, preprocess_transform(checkpoint.preprocess)
