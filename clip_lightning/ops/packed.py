"""Linear layers that run inference through oneDNN with weights packed once, on x86 CPUs.

``F.linear`` on CPU reorders its weight into the matrix library's blocked layout on every call,
and in fp32 it goes to MKL, which runs a narrower code path on some CPUs (AMD EPYC here: about
170 GFLOP/s against oneDNN's 340). Inference repeats the same weights batch after batch, so each
weight is packed once per dtype into oneDNN's layout and kept, and the product runs in oneDNN.

Exactness contract: bf16 results are bitwise those of ``F.linear``; fp32 ones differ only in
summation order (relative ~1e-6). Anything that needs a gradient, non-x86 CPUs, GPUs and other
devices, TorchScript, ``torch.compile`` and dtypes other than fp32 and bf16 (fp16) take
``F.linear`` unchanged (:func:`packing_available` says whether this machine has the path at all).
The fused QuickGELU of :mod:`clip_lightning.ops.inference` (scales and a swish post-op) is the
one use that is not bitwise: it rounds once where the plain path rounds three times.
"""

from __future__ import annotations

import contextlib
import platform
import weakref
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PackedLinear", "PackedWeights", "clear_packed", "packed_linears", "packing_available"]

_PLATFORM_OK = platform.machine().lower() in {"x86_64", "amd64"} and torch.backends.mkldnn.is_available()
_enabled = True
_Entry = tuple["weakref.ref[torch.Tensor]", tuple[Any, ...], torch.Tensor]


def packing_available() -> bool:
    """Whether this machine has the packed path (an x86 CPU and a torch built with oneDNN)."""
    return _PLATFORM_OK


@contextlib.contextmanager
def packed_linears(enabled: bool) -> Iterator[None]:
    """Turn the packed path on or off inside the block (process-wide), e.g. for an A/B."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def _compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype | None:
    """The dtype ``F.linear`` would compute in, if the packed path supports it, else None."""
    if torch.is_autocast_enabled("cpu") and x.is_floating_point():
        dtype = torch.get_autocast_dtype("cpu")
    elif x.dtype == weight.dtype:
        dtype = x.dtype
    else:
        return None  # let F.linear report the mismatch
    if dtype == torch.float32 or (dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return dtype
    return None


class PackedWeights:
    """A module's cache of packed weight copies, keyed by name; checked against each call's weight.

    Pickling or deep-copying a module drops the cache (packed tensors are an opaque layout).
    A weight replaced, changed in place, moved or cast is packed again on its next use; one
    written through ``.data`` (which bypasses the version counter) is not seen: call
    :func:`clear_packed` after such a write.
    """

    def __init__(self) -> None:
        # (key, dtype) -> (the weight's owner, its stamp, the packed copy)
        self._entries: dict[tuple[str, torch.dtype], _Entry] = {}

    def __reduce__(self) -> tuple[type[PackedWeights], tuple[()]]:
        return (PackedWeights, ())

    def __len__(self) -> int:
        """Number of packed copies held (one per weight and dtype)."""
        return len(self._entries)

    def clear(self) -> None:
        """Drop every packed copy; each is packed again on its next use."""
        self._entries.clear()

    def linear(
        self,
        key: str,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        weight_scale: float = 1.0,
        bias_scale: float = 1.0,
        activation: str = "none",
    ) -> torch.Tensor:
        """``F.linear(x, weight, bias)``, through the packed copy of ``weight`` when possible.

        ``weight_scale``/``bias_scale`` are folded into the packed copies and ``activation``
        (a oneDNN post-op such as ``"swish"``, ``x * sigmoid(x)``) is applied inside the
        product; those need the packed path (check :meth:`usable` first).
        """
        dtype = self.usable(x, weight, bias)
        if dtype is None:
            if (weight_scale, bias_scale, activation) != (1.0, 1.0, "none"):
                raise RuntimeError("scales and activations need the packed path; check usable() first")
            return F.linear(x, weight, bias)
        # The tensor that owns the memory (a slice's base), where it is, its in-place version.
        owner = weight if weight._base is None else weight._base
        stamp = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.stride(), weight.dtype)
        entry = self._entries.get((key, dtype))
        if entry is None or entry[0]() is not owner or entry[1] != stamp:
            # A plain tensor even when called under inference mode, so it can be reused outside it.
            with torch.inference_mode(False), torch.no_grad():
                scaled = weight.detach() if weight_scale == 1.0 else weight.detach() * weight_scale
                packed = torch.ops.mkldnn._reorder_linear_weight(scaled.to(dtype).contiguous())
            entry = (weakref.ref(owner), stamp, packed)
            self._entries[(key, dtype)] = entry
        b = None
        if bias is not None:
            b = (bias.detach() if bias_scale == 1.0 else bias.detach() * bias_scale).to(dtype)
        return torch.ops.mkldnn._linear_pointwise(x.to(dtype).contiguous(), entry[2], b, activation, [], "")

    @staticmethod
    def usable(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.dtype | None:
        """The dtype the packed path would compute ``F.linear(x, weight, bias)`` in, or None."""
        if not (_PLATFORM_OK and _enabled) or x.device.type != "cpu" or weight.device.type != "cpu":
            return None
        if x.numel() == 0 or x.dim() < 2:
            return None
        if torch.is_grad_enabled() and (
            x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        ):
            return None
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return None
        return _compute_dtype(x, weight)


def clear_packed(model: nn.Module) -> None:
    """Drop every packed weight copy held by ``model``'s modules (they are rebuilt on use)."""
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, PackedWeights):
                value.clear()


class PackedLinear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) whose inference uses a packed weight.

    :func:`clip_lightning.ops.accelerate` turns a model's ``nn.Linear`` layers into these.
    """

    packed: PackedWeights

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.packed = PackedWeights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.packed.linear("weight", x, self.weight, self.bias)
