"""Inference versions of the reference CLIP modules, and :func:`accelerate`, which swaps them in.

What they change, each for speed or for batch invariance, never the parameters:

* linear layers, the projections and the ViT's patch embedding (a convolution whose stride is its
  kernel, i.e. a matrix product) run through packed oneDNN weights (:mod:`.packed`), and the
  MLP's QuickGELU runs inside ``c_fc``'s product as oneDNN's swish post-op (exact GELU, of
  open_clip's LAION/DataComp models, runs between the two packed products, unfused);
* the last transformer block computes only the position that is read (the class token, the
  end-of-text token), with one-query attention and rows padded to ``MIN_ROWS`` (:mod:`.rows`);
* text runs only up to the batch's last end-of-text token (attention is causal, so the
  positions after it cannot change the features);
* QuickGELU and the residual adds work in place when no autograd graph is kept.

Exactness contract, against the reference model: bf16 linears are bitwise ``F.linear``'s and
fp32 ones differ in summation order (relative ~1e-6; ~1e-5 on whole features); the fused
QuickGELU rounds bf16 once instead of three times (close, not bitwise). Per-sample features are
bitwise independent of the batch size and of the thread count, in fp32 and under bf16
autocast. What needs a gradient, non-x86 CPUs, GPUs, TorchScript, ``torch.compile`` and fp16
fall back to plain torch (``F.linear``, the convolution, out-of-place ops); the row padding and
one-query attention stay (exact math, with gradients too).
"""

from __future__ import annotations

from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..models.model import (
    CLIP,
    MLP,
    QuickGELU,
    ResidualAttentionBlock,
    SelfAttention,
    Transformer,
    VisionTransformer,
)
from ..models.resnet import AttentionPool2d
from .packed import PackedLinear, PackedWeights
from .rows import MIN_ROWS, attend_one, on_rows

__all__ = [
    "InferenceAttentionPool2d",
    "InferenceCLIP",
    "InferenceMLP",
    "InferenceQuickGELU",
    "InferenceResidualAttentionBlock",
    "InferenceSelfAttention",
    "InferenceTransformer",
    "InferenceVisionTransformer",
    "accelerate",
]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class InferenceQuickGELU(QuickGELU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            return super().forward(x)
        # In place on the temporary: the same values, two fewer activation-sized buffers.
        return torch.mul(x, 1.702).sigmoid_().mul_(x)


class InferenceSelfAttention(SelfAttention):
    packed: PackedWeights

    def forward(
        self, x: torch.Tensor, causal: bool = False, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[N, L, W] -> [N, L, W]``; with ``rows`` (``[N]`` positions) only those queries: ``[N, 1, W]``."""
        n, length, width = x.shape
        heads, head_dim = self.heads, width // self.heads
        if rows is None:
            qkv = self.packed.linear("qkv", x, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.view(n, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return self.out_proj(out.transpose(1, 2).reshape(n, length, width))
        picked = x[torch.arange(n, device=x.device), rows]
        q_weight, q_bias = self.in_proj_weight[:width], self.in_proj_bias[:width]
        q = on_rows(lambda rows_x: self.packed.linear("q", rows_x, q_weight, q_bias), picked)
        kv = self.packed.linear("kv", x, self.in_proj_weight[width:], self.in_proj_bias[width:])
        k, v = kv.view(n, length, 2, heads, head_dim).permute(2, 0, 3, 1, 4)
        visible = None
        if causal:  # the query at position p sees keys 0..p
            visible = torch.arange(length, device=x.device) <= rows[:, None]
        out = attend_one(q.view(n, heads, 1, head_dim), k, v, visible)
        return on_rows(self.out_proj, out.reshape(n, width)).unsqueeze(1)


class InferenceMLP(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_fc, c_proj = cast(PackedLinear, self.c_fc), cast(PackedLinear, self.c_proj)
        # The swish fusion is QuickGELU's alone; exact GELU runs between the two packed products.
        fusable = (
            isinstance(self.gelu, QuickGELU) and c_fc.packed.usable(x, c_fc.weight, c_fc.bias) is not None
        )
        if fusable and c_proj.packed.usable(x, c_proj.weight, c_proj.bias) is not None:
            # QuickGELU(h) = swish(1.702 h) / 1.702, and oneDNN applies swish inside the matmul:
            # 1.702 folds into c_fc's packed weight and bias, 1 / 1.702 into c_proj's weight.
            h = c_fc.packed.linear(
                "swish", x, c_fc.weight, c_fc.bias, weight_scale=1.702, bias_scale=1.702, activation="swish"
            )
            return c_proj.packed.linear("after_swish", h, c_proj.weight, c_proj.bias, weight_scale=1 / 1.702)
        return c_proj(self.gelu(c_fc(x)))


class InferenceResidualAttentionBlock(ResidualAttentionBlock):
    def forward(
        self, x: torch.Tensor, causal: bool = False, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        if rows is not None:
            n = x.shape[0]
            x = x[torch.arange(n, device=x.device), rows].unsqueeze(1) + self.attn(
                self.ln_1(x), causal=causal, rows=rows
            )
            padded = F.pad(x, (0, 0, 0, 0, 0, max(0, MIN_ROWS - n)))  # see ops.rows
            return x + self.mlp(self.ln_2(padded))[:n]
        x = x + self.attn(self.ln_1(x), causal=causal)
        if torch.is_grad_enabled() and x.requires_grad:
            return x + self.mlp(self.ln_2(x))
        # No graph to keep: add in place into the sum made just above (same values, one buffer fewer).
        return x.add_(self.mlp(self.ln_2(x)))


class InferenceTransformer(Transformer):
    def forward(
        self, x: torch.Tensor, causal: bool = False, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[N, L, W] -> [N, L, W]``, or ``[N, W]``: the outputs at ``rows`` (one position per sequence).

        With ``rows`` the last block computes only those positions (the others are never read),
        which saves most of one block's work.
        """
        if rows is None:
            return super().forward(x, causal=causal)
        for block in self.resblocks[:-1]:
            x = block(x, causal=causal)
        return self.resblocks[-1](x, causal=causal, rows=rows).squeeze(1)


class InferenceVisionTransformer(VisionTransformer):
    packed: PackedWeights

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv1.weight
        n, channels, height, width = x.shape
        p = weight.shape[-1]
        # A convolution whose stride equals its kernel is a matrix product over disjoint patches,
        # which the packed oneDNN product runs about 2x faster than the convolution kernel here.
        matrix = weight.view(weight.shape[0], -1) if weight.is_contiguous() else None
        dtype = None if matrix is None else self.packed.usable(x, matrix, None)
        if matrix is None or dtype is None or height % p or width % p:
            return super().embed_patches(x)
        rows, cols = height // p, width // p
        patches = x.view(n, channels, rows, p, cols, p).permute(0, 2, 4, 1, 3, 5)
        flat = x.new_empty(patches.shape, dtype=dtype).copy_(patches)  # one pass: layout and cast
        flat = flat.view(n * rows * cols, channels * p * p)
        return self.packed.linear("conv1", flat, matrix, None).view(n, rows * cols, -1)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = self.embed_patches(x)  # [N, grid*grid, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        first = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)  # the class token
        x = self.ln_post(self.transformer(self.ln_pre(x), rows=first))
        return self.project(x) if project else x

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return on_rows(lambda rows_x: self.packed.linear("proj", rows_x, self.proj.t(), None), features)


class InferenceAttentionPool2d(AttentionPool2d):
    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding.to(x.dtype)
        n, length, width = x.shape
        head_dim = width // self.num_heads
        q = on_rows(self.q_proj, x[:, 0]).view(n, self.num_heads, 1, head_dim)
        k = self.k_proj(x).view(n, length, self.num_heads, head_dim).transpose(1, 2)
        v = self.v_proj(x).view(n, length, self.num_heads, head_dim).transpose(1, 2)
        out = attend_one(q, k, v).reshape(n, width)
        return self.project(out) if project else out

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return on_rows(self.c_proj, features)


class InferenceCLIP(CLIP):
    packed: PackedWeights

    def encode_image(self, image: torch.Tensor, *, projected: bool = True) -> torch.Tensor:
        image = image.to(self.dtype)
        if self.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            image = image.contiguous(memory_format=torch.channels_last)
        return self.visual(image, project=projected)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        if text.shape[-1] > self.context_length:
            raise ValueError(f"text has {text.shape[-1]} positions, the model at most {self.context_length}")
        eot = self.eot_positions(text)
        if text.shape[0] and not (torch.jit.is_tracing() or torch.jit.is_scripting()):
            # Causal attention: positions after the last end-of-text token cannot change the
            # features, so the batch runs only up to it.
            text = text[:, : int(eot.max()) + 1]
        x = self.ln_final(self.transformer(self.embed_text(text), causal=True, rows=eot))
        # Like the image projection: padded rows and one product, so a prompt's features depend
        # on neither its batch's size nor the thread count (a plain matmul of a few rows does).
        return on_rows(
            lambda rows_x: self.packed.linear("text_projection", rows_x, self.text_projection.t(), None), x
        )


# Exact types only: a subclass of a reference module may override what these assume.
_INFERENCE: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: PackedLinear,
    QuickGELU: InferenceQuickGELU,
    SelfAttention: InferenceSelfAttention,
    MLP: InferenceMLP,
    ResidualAttentionBlock: InferenceResidualAttentionBlock,
    Transformer: InferenceTransformer,
    VisionTransformer: InferenceVisionTransformer,
    AttentionPool2d: InferenceAttentionPool2d,
    CLIP: InferenceCLIP,
}


def accelerate(model: ModuleT) -> ModuleT:
    """Turn the reference modules in ``model`` into their inference versions, in place; return it.

    Each module's class is swapped for its inference subclass (``nn.Linear`` for
    :class:`~clip_lightning.ops.packed.PackedLinear`) and given an empty packed-weight cache:
    parameters, their names and the state dict stay as they are, nothing is copied, and no
    random numbers are drawn. Calling it again changes nothing.
    """
    for module in model.modules():
        module.__class__ = _INFERENCE.get(type(module), type(module))
        cached = (PackedLinear, InferenceSelfAttention, InferenceVisionTransformer, InferenceCLIP)
        if isinstance(module, cached) and not isinstance(vars(module).get("packed"), PackedWeights):
            module.packed = PackedWeights()
    return model
