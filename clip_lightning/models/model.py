"""CLIP's text transformer, vision transformer and modified ResNet.

Parameter names equal those of OpenAI's checkpoints, so their state dicts load as they are.
Activations are batch-first ``[N, L, D]`` and attention runs through
``torch.nn.functional.scaled_dot_product_attention``, except where one query per sequence is
wanted (the last block, attention pooling): plain matmuls there keep each sample's features
independent of the batch size, bit for bit. Linear layers, and the ViT's patch embedding as a
matrix product, infer through packed oneDNN weights on x86 CPUs (:mod:`clip_lightning.linear`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.packed import Linear, PackedWeights

__all__ = [
    "CLIP",
    "MODEL_CONFIGS",
    "CLIPConfig",
    "build_model",
    "config_from_state_dict",
    "convert_weights",
]

# Keys OpenAI's TorchScript archives carry beside the weights.
_META_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class CLIPConfig:
    """Every hyperparameter of a CLIP model; ``vision_layers`` is a tuple for ResNets."""

    embed_dim: int
    image_resolution: int
    vision_layers: int | tuple[int, int, int, int]
    vision_width: int
    vision_patch_size: int | None
    context_length: int = 77
    vocab_size: int = 49408
    transformer_width: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 12

    @property
    def is_vit(self) -> bool:
        return not isinstance(self.vision_layers, tuple)


def _rn(embed: int, res: int, layers: tuple[int, int, int, int], width: int, text: int) -> CLIPConfig:
    return CLIPConfig(embed, res, layers, width, None, 77, 49408, text, text // 64, 12)


def _vit(embed: int, res: int, layers: int, width: int, patch: int, text: int) -> CLIPConfig:
    return CLIPConfig(embed, res, layers, width, patch, 77, 49408, text, text // 64, 12)


MODEL_CONFIGS: dict[str, CLIPConfig] = {
    "RN50": _rn(1024, 224, (3, 4, 6, 3), 64, 512),
    "RN101": _rn(512, 224, (3, 4, 23, 3), 64, 512),
    "RN50x4": _rn(640, 288, (4, 6, 10, 6), 80, 640),
    "RN50x16": _rn(768, 384, (6, 8, 18, 8), 96, 768),
    "RN50x64": _rn(1024, 448, (3, 15, 36, 10), 128, 1024),
    "ViT-B/32": _vit(512, 224, 12, 768, 32, 512),
    "ViT-B/16": _vit(512, 224, 12, 768, 16, 512),
    "ViT-L/14": _vit(768, 224, 24, 1024, 14, 768),
    "ViT-L/14@336px": _vit(768, 336, 24, 1024, 14, 768),
}


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back, so fp16 weights keep OpenAI's numerics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


# BLAS picks special kernels for matrices of very few rows (here: fp32 with fewer than 12), whose
# sums round differently. Row-wise work on few rows is padded to this many, so a sample's
# features do not depend on how many others share its batch (DDP equals one process exactly).
_MIN_ROWS = 16


def _on_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` (row-wise) on ``[N, W]`` rows, padded with zero rows to at least ``_MIN_ROWS``."""
    n = x.shape[0]
    if n >= _MIN_ROWS:
        return fn(x)
    return fn(F.pad(x, (0, 0, 0, _MIN_ROWS - n)))[:n]


def _attend_one(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention of one query per sequence and head: ``q [N, H, 1, D]``, ``k, v [N, H, L, D]``.

    Plain matmuls on contiguous tensors, whose per-sample results (unlike the fused kernel's
    for a single query, or matmuls over strided views) do not depend on the batch size.
    ``visible`` (``[N, L]``, bool) masks keys out.
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.contiguous().transpose(-1, -2))
    if visible is not None:
        scores = scores.masked_fill(~visible[:, None, None, :], float("-inf"))
    weights = scores.float().softmax(dim=-1).to(v.dtype)  # fp32 softmax, as the fused kernel
    return torch.matmul(weights, v.contiguous())


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            return x * torch.sigmoid(1.702 * x)
        # In place on the temporary: the same values, two fewer activation-sized buffers.
        return torch.mul(x, 1.702).sigmoid_().mul_(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = Linear(width, width)
        self.packed = PackedWeights()

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
        q = _on_rows(lambda rows_x: self.packed.linear("q", rows_x, q_weight, q_bias), picked)
        kv = self.packed.linear("kv", x, self.in_proj_weight[width:], self.in_proj_bias[width:])
        k, v = kv.view(n, length, 2, heads, head_dim).permute(2, 0, 3, 1, 4)
        visible = None
        if causal:  # the query at position p sees keys 0..p
            visible = torch.arange(length, device=x.device) <= rows[:, None]
        out = _attend_one(q.view(n, heads, 1, head_dim), k, v, visible)
        return _on_rows(self.out_proj, out.reshape(n, width)).unsqueeze(1)


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = Linear(width, width * 4)
        self.gelu = QuickGELU()
        self.c_proj = Linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_fc, c_proj = self.c_fc, self.c_proj
        fusable = c_fc.packed.usable(x, c_fc.weight, c_fc.bias) is not None
        if fusable and c_proj.packed.usable(x, c_proj.weight, c_proj.bias) is not None:
            # QuickGELU(h) = swish(1.702 h) / 1.702, and oneDNN applies swish inside the matmul:
            # 1.702 folds into c_fc's packed weight and bias, 1 / 1.702 into c_proj's weight.
            h = c_fc.packed.linear(
                "swish", x, c_fc.weight, c_fc.bias, weight_scale=1.702, bias_scale=1.702, activation="swish"
            )
            return c_proj.packed.linear("after_swish", h, c_proj.weight, c_proj.bias, weight_scale=1 / 1.702)
        return c_proj(self.gelu(c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = MLP(width)
        self.ln_2 = LayerNorm(width)

    def forward(
        self, x: torch.Tensor, causal: bool = False, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        if rows is not None:
            n = x.shape[0]
            x = x[torch.arange(n, device=x.device), rows].unsqueeze(1) + self.attn(
                self.ln_1(x), causal=causal, rows=rows
            )
            padded = F.pad(x, (0, 0, 0, 0, 0, max(0, _MIN_ROWS - n)))  # see _MIN_ROWS
            return x + self.mlp(self.ln_2(padded))[:n]
        x = x + self.attn(self.ln_1(x), causal=causal)
        if torch.is_grad_enabled() and x.requires_grad:
            return x + self.mlp(self.ln_2(x))
        # No graph to keep: add in place into the sum made just above (same values, one buffer fewer).
        return x.add_(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(
        self, x: torch.Tensor, causal: bool = False, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[N, L, W] -> [N, L, W]``, or ``[N, W]``: the outputs at ``rows`` (one position per sequence).

        With ``rows`` the last block computes only those positions (the others are never read),
        which saves most of one block's work.
        """
        if rows is None:
            for block in self.resblocks:
                x = block(x, causal=causal)
            return x
        for block in self.resblocks[:-1]:
            x = block(x, causal=causal)
        return self.resblocks[-1](x, causal=causal, rows=rows).squeeze(1)


class VisionTransformer(nn.Module):
    def __init__(
        self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int, output_dim: int
    ) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        grid = input_resolution // patch_size
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid**2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))
        self.packed = PackedWeights()

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[N, 3, H, W]`` -> patch embeddings ``[N, grid*grid, width]`` (``conv1``)."""
        weight = self.conv1.weight
        n, channels, height, width = x.shape
        p = weight.shape[-1]
        # A convolution whose stride equals its kernel is a matrix product over disjoint patches,
        # which the packed oneDNN product runs about 2x faster than the convolution kernel here.
        matrix = weight.view(weight.shape[0], -1) if weight.is_contiguous() else None
        dtype = None if matrix is None else self.packed.usable(x, matrix, None)
        if matrix is None or dtype is None or height % p or width % p:
            return self.conv1(x).flatten(2).transpose(1, 2)
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
        """Class-token features ``[N, width]`` -> embeddings ``[N, output_dim]``."""
        return _on_rows(lambda rows_x: self.packed.linear("proj", rows_x, self.proj.t(), None), features)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        # Every conv has stride 1; downsampling is an average pool after the 3x3 conv (anti-aliasing).
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential()
            self.downsample.add_module("-1", nn.AvgPool2d(stride))
            self.downsample.add_module("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(planes * self.expansion))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Pools a feature map by attention of its mean (the query) over all positions."""

    def __init__(self, spacial_dim: int, embed_dim: int, num_heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim**2 + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = Linear(embed_dim, embed_dim)
        self.q_proj = Linear(embed_dim, embed_dim)
        self.v_proj = Linear(embed_dim, embed_dim)
        self.c_proj = Linear(embed_dim, output_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding.to(x.dtype)
        n, length, width = x.shape
        head_dim = width // self.num_heads
        q = _on_rows(self.q_proj, x[:, 0]).view(n, self.num_heads, 1, head_dim)
        k = self.k_proj(x).view(n, length, self.num_heads, head_dim).transpose(1, 2)
        v = self.v_proj(x).view(n, length, self.num_heads, head_dim).transpose(1, 2)
        out = _attend_one(q, k, v).reshape(n, width)
        return self.project(out) if project else out

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[N, embed_dim]`` -> embeddings ``[N, output_dim]``."""
        return _on_rows(self.c_proj, features)


class ModifiedResNet(nn.Module):
    """ResNet with a 3-conv stem, anti-aliased strided blocks and attention pooling."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        output_dim: int,
        heads: int,
        input_resolution: int,
        width: int,
    ) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.input_resolution = input_resolution
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        embed_dim = width * 32
        self.attnpool = AttentionPool2d(input_resolution // 32, embed_dim, heads, output_dim)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x, project=project)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[N, width * 32]`` -> embeddings ``[N, output_dim]``."""
        return self.attnpool.project(features)


class CLIP(nn.Module):
    """Contrastive image-text model: ``encode_image``, ``encode_text`` and ``forward`` as OpenAI's."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.context_length = config.context_length
        self.visual: VisionTransformer | ModifiedResNet
        if isinstance(config.vision_layers, tuple):
            self.visual = ModifiedResNet(
                layers=config.vision_layers,
                output_dim=config.embed_dim,
                heads=config.vision_width * 32 // 64,
                input_resolution=config.image_resolution,
                width=config.vision_width,
            )
        else:
            if config.vision_patch_size is None:
                raise ValueError("a vision transformer needs vision_patch_size")
            self.visual = VisionTransformer(
                input_resolution=config.image_resolution,
                patch_size=config.vision_patch_size,
                width=config.vision_width,
                layers=config.vision_layers,
                heads=config.vision_width // 64,
                output_dim=config.embed_dim,
            )
        width = config.transformer_width
        self.transformer = Transformer(width, config.transformer_layers, config.transformer_heads)
        self.vocab_size = config.vocab_size
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.packed = PackedWeights()
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """CLIP's initialization (normal with width-scaled std); used for random-weight models."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        if isinstance(self.visual, ModifiedResNet):
            pool = self.visual.attnpool
            std = pool.c_proj.in_features**-0.5
            for proj in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
                nn.init.normal_(proj.weight, std=std)
            for stage in (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4):
                for name, param in stage.named_parameters():
                    if name.endswith("bn3.weight"):
                        nn.init.zeros_(param)
        for tower in (self.transformer, getattr(self.visual, "transformer", None)):
            if not isinstance(tower, Transformer):
                continue
            proj_std = tower.width**-0.5 * (2 * tower.layers) ** -0.5
            attn_std = tower.width**-0.5
            fc_std = (2 * tower.width) ** -0.5
            for block in tower.resblocks:
                assert isinstance(block, ResidualAttentionBlock)
                nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.transformer.width**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: torch.Tensor, *, projected: bool = True) -> torch.Tensor:
        """Image features ``[N, embed_dim]``; ``projected=False`` gives those before the final projection."""
        image = image.to(self.dtype)
        if self.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            image = image.contiguous(memory_format=torch.channels_last)
        return self.visual(image, project=projected)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text features ``[N, embed_dim]`` from token ids ``[N, context_length]``."""
        if text.shape[-1] > self.context_length:
            raise ValueError(f"text has {text.shape[-1]} positions, the model at most {self.context_length}")
        eot = text.argmax(dim=-1)  # the end-of-text token has the largest id
        if text.shape[0] and not (torch.jit.is_tracing() or torch.jit.is_scripting()):
            # Causal attention: positions after the last end-of-text token cannot change the
            # features, so the batch runs only up to it.
            text = text[:, : int(eot.max()) + 1]
        length = text.shape[1]
        x = self.token_embedding(text).to(self.dtype) + self.positional_embedding[:length].to(self.dtype)
        x = self.ln_final(self.transformer(x, causal=True, rows=eot))
        # Like the image projection: padded rows and one product, so a prompt's features depend
        # on neither its batch's size nor the thread count (a plain matmul of a few rows does).
        return _on_rows(
            lambda rows_x: self.packed.linear("text_projection", rows_x, self.text_projection.t(), None), x
        )

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits_per_image, logits_per_text)``: scaled cosine similarities."""
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


def _count_blocks(keys: list[str], prefix: str) -> int:
    """Number of distinct ``<prefix>.<i>.`` indices among ``keys``."""
    depth = prefix.count(".") + 1
    return len({k.split(".")[depth] for k in keys if k.startswith(prefix + ".")})


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """Infer every hyperparameter of a CLIP model from the shapes in its state dict."""
    keys = list(state_dict)
    try:
        embed_dim = state_dict["text_projection"].shape[1]
        context_length, transformer_width = state_dict["positional_embedding"].shape
        vocab_size = state_dict["token_embedding.weight"].shape[0]
        transformer_layers = _count_blocks(keys, "transformer.resblocks")
        if "visual.proj" in state_dict:
            vision_width, _, patch, _ = state_dict["visual.conv1.weight"].shape
            vision_layers: int | tuple[int, int, int, int] = _count_blocks(
                keys, "visual.transformer.resblocks"
            )
            grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            image_resolution = patch * grid
            patch_size: int | None = patch
        else:
            counts = tuple(_count_blocks(keys, f"visual.layer{i}") for i in range(1, 5))
            vision_layers = (counts[0], counts[1], counts[2], counts[3])
            vision_width = state_dict["visual.layer1.0.conv1.weight"].shape[0]
            grid = round((state_dict["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            image_resolution = grid * 32
            patch_size = None
    except KeyError as err:
        raise ValueError(f"not a CLIP state dict: missing key {err}") from None
    return CLIPConfig(
        embed_dim=int(embed_dim),
        image_resolution=int(image_resolution),
        vision_layers=vision_layers,
        vision_width=int(vision_width),
        vision_patch_size=None if patch_size is None else int(patch_size),
        context_length=int(context_length),
        vocab_size=int(vocab_size),
        transformer_width=int(transformer_width),
        transformer_heads=int(transformer_width) // 64,
        transformer_layers=transformer_layers,
    )


def build_model(state_dict: Mapping[str, torch.Tensor]) -> CLIP:
    """Build a CLIP model (fp32, eval mode) whose architecture is read off ``state_dict``.

    The caller's mapping is not modified; fp16 weights are widened to fp32 exactly.
    """
    config = config_from_state_dict(state_dict)
    # Copies, so the model never aliases the caller's tensors; fp16 widens to fp32 exactly.
    weights = {
        k: v.to(torch.float32, copy=True) if v.is_floating_point() else v.clone()
        for k, v in state_dict.items()
        if k not in _META_KEYS
    }
    with torch.device("meta"):  # no random init of weights that are overwritten next
        model = CLIP(config)
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval()


def convert_weights(model: nn.Module) -> None:
    """Cast to fp16 what OpenAI's checkpoints hold in fp16 (linear/conv weights, projections).

    Norms, embeddings and the logit scale stay fp32, as in OpenAI's loader.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            module.weight.data = module.weight.data.half()
            if module.bias is not None:
                module.bias.data = module.bias.data.half()
        if isinstance(module, SelfAttention):
            module.in_proj_weight.data = module.in_proj_weight.data.half()
            module.in_proj_bias.data = module.in_proj_bias.data.half()
        for name in ("text_projection", "proj"):
            param = getattr(module, name, None)
            if isinstance(param, nn.Parameter):
                param.data = param.data.half()
