"""Vision Transformers in torchvision's ``VisionTransformer`` layout.

Names: ``conv_proj`` (patch embedding), ``class_token``, ``encoder.pos_embedding``,
``encoder.layers.encoder_layer_{i}.ln_1 / self_attention / ln_2 / mlp.0 / mlp.3``,
``encoder.ln``, ``heads.head``; torchvision ``vit_b_16`` / ``vit_b_32`` state dicts
load strictly into ours.

Registered as ``vit_tiny`` (a small CIFAR/MNIST-sized default: 32x32 images, patch 4,
dim 192, 6 layers, 3 heads, MLP 768; every size is an argument) and ``vit_b_16`` /
``vit_b_32`` (ViT-Base, fixed sizes, ``image_size`` 224 by default). ``image_size`` is
an int or an ``(H, W)`` pair; the token grid is ``ceil(H / patch) x ceil(W / patch)``.

Differences from torchvision that do not touch the layout:

* ``self_attention`` is an ``nn.MultiheadAttention`` that always runs the reference
  computation: the stock module switches to a fused kernel under ``torch.no_grad()``
  whose results differ in the last bits, so the same model would give different
  logits in evaluation and in gradient-based analyses.
* ``heads.head`` starts from a small random normal instead of zeros, so a freshly
  initialised model does not output constant logits.
* Images whose sides are not multiples of the patch size (e.g. 55x47 CSAW faces) are
  zero-padded on the right and bottom to the next multiple (timm's ``dynamic_img_pad``)
  instead of being refused; sizes that are multiples are processed exactly as by torchvision.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ShapeMismatchError
from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, image_hw

LayerNorm: Callable[[int], nn.LayerNorm] = partial(nn.LayerNorm, eps=1e-6)


class SelfAttention(nn.MultiheadAttention):
    """Batch-first multi-head self-attention, always on the reference (non-fused) path.

    Shapes: ``(B, S, D) -> (B, S, D)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__(embed_dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        seq_first = x.transpose(0, 1)  # F.multi_head_attention_forward wants (S, B, D)
        out, _ = F.multi_head_attention_forward(
            seq_first, seq_first, seq_first,
            self.embed_dim, self.num_heads,
            self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn,
            self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, need_weights=False,
        )
        return out.transpose(0, 1)


class MLPBlock(nn.Sequential):
    """``Linear -> GELU -> Dropout -> Linear -> Dropout`` (``mlp.0`` and ``mlp.3`` hold weights)."""

    def __init__(self, dim: int, mlp_dim: int, dropout: float):
        super().__init__(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout))
        for m in self:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``+ mlp(ln_2(.))``."""

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = LayerNorm(hidden_dim)
        self.self_attention = SelfAttention(hidden_dim, num_heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = LayerNorm(hidden_dim)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.dropout(self.self_attention(self.ln_1(x)))
        return y + self.mlp(self.ln_2(y))


class Encoder(nn.Module):
    """Position embedding, ``num_layers`` blocks and a final LayerNorm. ``(B, S, D) -> (B, S, D)``."""

    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int,
                 dropout: float, attention_dropout: float):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout))
            for i in range(num_layers)
        ))
        self.ln = LayerNorm(hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """ViT classifier on the class token.

    Args:
        image_size: side of the input images, or ``(H, W)``; sides that are not multiples
            of ``patch_size`` are zero-padded to the next multiple.
        patch_size: side of the square patches.
        hidden_dim: token dimension (before ``width`` scaling).
        num_layers: transformer blocks.
        num_heads: attention heads; must divide the (scaled) token dimension.
        mlp_dim: hidden size of the MLPs (before ``width`` scaling).
        num_classes: outputs of ``heads.head``.
        in_channels: channels of the input images.
        width: multiplier of ``hidden_dim`` (rounded to a multiple of ``num_heads``) and ``mlp_dim``.
        dropout: dropout after attention, in the MLPs and on the embeddings.
        attention_dropout: dropout on the attention weights.

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``, through
    ``(B, 1 + ceil(H / patch_size) * ceil(W / patch_size), D)`` tokens.
    """

    def __init__(
        self,
        image_size: ImageSize = 32,
        patch_size: int = 4,
        hidden_dim: int = 192,
        num_layers: int = 6,
        num_heads: int = 3,
        mlp_dim: int = 768,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ):
        super().__init__()
        for label, value in (("patch_size", patch_size), ("hidden_dim", hidden_dim),
                             ("num_layers", num_layers), ("num_heads", num_heads), ("mlp_dim", mlp_dim)):
            if not isinstance(value, (int, float)) or int(value) != value or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        h, w = image_hw(image_size)
        if hidden_dim % num_heads:
            raise ValueError(f"num_heads {num_heads} does not divide hidden_dim {hidden_dim}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        dim = num_heads * max(1, round(hidden_dim * width / num_heads))  # heads keep dividing the dim
        self.image_size, self.patch_size, self.hidden_dim = (h, w), patch_size, dim
        grid_h, grid_w = -(-h // patch_size), -(-w // patch_size)
        self.padding = (0, grid_w * patch_size - w, 0, grid_h * patch_size - h)  # F.pad: (left, right, top, bottom)
        self.conv_proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        seq_length = grid_h * grid_w + 1
        self.encoder = Encoder(seq_length, num_layers, num_heads, dim, _scaled(mlp_dim, width), dropout, attention_dropout)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, num_classes)))
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's patch-embedding initialisation; a small random head (see module doc)."""
        fan_in = self.conv_proj.in_channels * self.conv_proj.kernel_size[0] * self.conv_proj.kernel_size[1]
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.trunc_normal_(self.heads.head.weight, std=0.02)
        nn.init.zeros_(self.heads.head.bias)

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, ceil(H/p)*ceil(W/p), D)`` patch tokens."""
        n, _, h, w = x.shape
        if (h, w) != self.image_size:
            raise ShapeMismatchError(
                f"this ViT was built for {self.image_size[0]}x{self.image_size[1]} images, got {h}x{w} "
                f"(set image_size when building it)"
            )
        if any(self.padding):
            x = F.pad(x, self.padding)
        x = self.conv_proj(x)
        return x.reshape(n, self.hidden_dim, -1).permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(tokens)[:, 0])


@register_model(
    "vit_tiny",
    input_shape=(3, 32, 32),
    family="vit",
    description="small ViT for 32x32 images (patch 4, dim 192, 6 layers, 3 heads); torchvision layout",
)
def vit_tiny(
    num_classes: int = 10,
    in_channels: int = 3,
    width: float = 1.0,
    image_size: ImageSize = 32,
    patch_size: int = 4,
    hidden_dim: int = 192,
    num_layers: int = 6,
    num_heads: int = 3,
    mlp_dim: int = 768,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
) -> VisionTransformer:
    return VisionTransformer(image_size, patch_size, hidden_dim, num_layers, num_heads, mlp_dim,
                             num_classes, in_channels, width, dropout, attention_dropout)


def _vit_b_factory(name: str, patch_size: int) -> Callable[..., VisionTransformer]:
    def factory(
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        image_size: ImageSize = 224,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> VisionTransformer:
        return VisionTransformer(image_size, patch_size, 768, 12, 12, 3072,
                                 num_classes, in_channels, width, dropout, attention_dropout)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _register_vit_b() -> None:
    for patch in (16, 32):
        register_model(
            f"vit_b_{patch}",
            input_shape=(3, 224, 224),
            family="vit",
            description=f"ViT-B/{patch} (dim 768, 12 layers, 12 heads, MLP 3072); torchvision layout",
            torchvision=f"vit_b_{patch}",
        )(_vit_b_factory(f"vit_b_{patch}", patch))


_register_vit_b()
