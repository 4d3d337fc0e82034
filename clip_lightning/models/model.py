"""CLIP's architecture, as a reference: OpenAI's ``clip/model.py``, batch-first.

Parameter names equal those of OpenAI's checkpoints, so their state dicts load as they are.
Activations are ``[N, L, D]``, attention runs through ``F.scaled_dot_product_attention`` and
linear layers are plain ``nn.Linear``. Features equal OpenAI's code up to summation order.
This is the model to read and to train; for inference, :func:`clip_lightning.ops.accelerate`
turns it in place into the faster model with the same parameters that ``build_model`` and
``load`` return.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import CLIPConfig
from .resnet import ModifiedResNet

__all__ = [
    "CLIP",
    "MLP",
    "LayerNorm",
    "QuickGELU",
    "ResidualAttentionBlock",
    "SelfAttention",
    "Transformer",
    "VisionTransformer",
    "convert_weights",
    "make_activation",
]


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back, so fp16 weights keep OpenAI's numerics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the GELU approximation CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """``[N, L, W] -> [N, L, W]``; ``causal`` lets each position see only those before it."""
        n, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, width))


def make_activation(name: str) -> nn.Module:
    """The MLP activation named in :data:`~clip_lightning.models.config.ACTIVATIONS`."""
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}: 'quick_gelu' or 'gelu'")


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int | None = None, activation: str = "quick_gelu") -> None:
        super().__init__()
        hidden = width * 4 if hidden is None else hidden
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = make_activation(activation)  # OpenAI's attribute name, whatever the activation
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(
        self, width: int, heads: int, mlp_width: int | None = None, activation: str = "quick_gelu"
    ) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = MLP(width, mlp_width, activation)
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, activation: str = "quick_gelu"
    ) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        # round, not int: a ratio read off shapes (6144 / 1408) gives back the exact width.
        mlp_width = round(width * mlp_ratio)
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_width, activation) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """``[N, L, W] -> [N, L, W]``."""
        for block in self.resblocks:
            x = block(x, causal=causal)
        return x


class VisionTransformer(nn.Module):
    def __init__(
        self,
        input_resolution: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        mlp_ratio: float = 4.0,
        activation: str = "quick_gelu",
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
        self.transformer = Transformer(width, layers, heads, mlp_ratio, activation)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[N, 3, H, W]`` -> patch embeddings ``[N, grid*grid, width]`` (``conv1``)."""
        return self.conv1(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = self.embed_patches(x)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_post(self.transformer(self.ln_pre(x))[:, 0])  # the class token
        return self.project(x) if project else x

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Class-token features ``[N, width]`` -> embeddings ``[N, output_dim]``."""
        return features @ self.proj


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
                heads=config.vision_heads,
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
                heads=config.vision_heads,
                output_dim=config.embed_dim,
                mlp_ratio=config.vision_mlp_ratio,
                activation=config.activation,
            )
        width = config.transformer_width
        self.transformer = Transformer(
            width,
            config.transformer_layers,
            config.transformer_heads,
            config.text_mlp_ratio,
            config.activation,
        )
        self.vocab_size = config.vocab_size
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
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
        return self.visual(image.to(self.dtype), project=projected)

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """Token ids ``[N, L]`` (``L <= context_length``) -> token plus position embeddings ``[N, L, width]``."""
        if text.shape[-1] > self.context_length:
            raise ValueError(f"text has {text.shape[-1]} positions, the model at most {self.context_length}")
        length = text.shape[1]
        return self.token_embedding(text).to(self.dtype) + self.positional_embedding[:length].to(self.dtype)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text features ``[N, embed_dim]`` from token ids ``[N, context_length]``."""
        x = self.ln_final(self.transformer(self.embed_text(text), causal=True))
        eot = self.eot_positions(text)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def eot_positions(self, text: torch.Tensor) -> torch.Tensor:
        """``[N]`` positions the text features are read at: the end-of-text token of each row.

        OpenAI's rule is the largest id (its end-of-text token has the largest id); with
        ``config.text_eos_id`` set, the first occurrence of that id (Hugging Face's rule).
        """
        eos = self.config.text_eos_id
        if eos is None:
            return text.argmax(dim=-1)
        return (text == eos).int().argmax(dim=-1)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits_per_image, logits_per_text)``: scaled cosine similarities."""
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


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
