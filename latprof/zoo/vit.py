"""``zoo:vit`` — a small Vision Transformer with the module structure of torchvision's
``VisionTransformer`` (torchvision is not imported; input ``1x3x32x32``).

Root ``VisionTransformer``: ``conv_proj`` (patch embedding, ``Conv2d(3, D, p, stride=p)``),
a ``class_token`` parameter, ``encoder`` and ``heads``. The root's own forward reshapes the
patches into tokens and prepends the class token (``torch.cat``); ``encoder`` adds the
``pos_embedding`` parameter and runs ``layers`` (``encoder_layer_{i}``: :class:`EncoderBlock`)
then ``ln``. Each :class:`EncoderBlock` is ``ln_1`` → ``self_attention`` → ``dropout`` →
residual add → ``ln_2`` → ``mlp`` (``Linear, GELU, Dropout, Linear, Dropout``) → residual add.

``self_attention`` is an ``nn.MultiheadAttention(D, H, batch_first=True)`` called as
``self_attention(x, x, x, need_weights=False)``, exactly as torchvision does, so in eval mode
under ``torch.inference_mode()`` PyTorch takes its fused fast path
(``aten._native_multi_head_attention``): the q/k/v and output projections run inside the
attention module's own forward and its ``out_proj`` child (an ``NonDynamicallyQuantizableLinear``)
is never called. Sizes: 8x8 = 64 patches of 4x4 + the class token = 65 tokens, ``D = 64``,
``H = 4``, 4 blocks, MLP width 128, 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import Tensor, nn

from latprof.blocks import seeded

INPUT_SHAPE: tuple[int, ...] = (1, 3, 32, 32)
IMAGE_SIZE = 32
PATCH_SIZE = 4
HIDDEN_DIM = 64
NUM_HEADS = 4
NUM_LAYERS = 4
MLP_DIM = 128
NUM_CLASSES = 10

_layer_norm = partial(nn.LayerNorm, eps=1e-6)  # torchvision's ViT norm


def mlp_block(in_dim: int, mlp_dim: int, dropout: float) -> nn.Sequential:
    """torchvision's ``MLPBlock``: children ``0``-``4`` = Linear, GELU, Dropout, Linear,
    Dropout."""
    return nn.Sequential(
        nn.Linear(in_dim, mlp_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(mlp_dim, in_dim),
        nn.Dropout(dropout),
    )


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.ln_1 = _layer_norm(hidden_dim)
        self.self_attention = nn.MultiheadAttention(
            hidden_dim, num_heads, dropout=attention_dropout, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = _layer_norm(hidden_dim)
        self.mlp = mlp_block(hidden_dim, mlp_dim, dropout)

    def forward(self, input: Tensor) -> Tensor:
        """``input``: ``(batch, tokens, hidden_dim)``."""
        x = self.ln_1(input)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x)
        x = x + input
        y = self.ln_2(x)
        y = self.mlp(y)
        return x + y


class Encoder(nn.Module):
    """Positional embedding (a parameter added in this forward), dropout, the blocks, a final
    LayerNorm."""

    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(
            OrderedDict(
                (
                    f"encoder_layer_{i}",
                    EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout),
                )
                for i in range(num_layers)
            )
        )
        self.ln = _layer_norm(hidden_dim)

    def forward(self, input: Tensor) -> Tensor:
        """``input``: ``(batch, seq_length, hidden_dim)``."""
        return self.ln(self.layers(self.dropout(input + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """ViT: patch embedding, class token, :class:`Encoder`, linear head on the class token."""

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        patch_size: int = PATCH_SIZE,
        num_layers: int = NUM_LAYERS,
        num_heads: int = NUM_HEADS,
        hidden_dim: int = HIDDEN_DIM,
        mlp_dim: int = MLP_DIM,
        num_classes: int = NUM_CLASSES,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2 + 1  # patches + the class token
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.encoder = Encoder(
            seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout
        )
        self.seq_length = seq_length
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))

    def _process_input(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"expected {self.image_size}x{self.image_size} input, got {h}x{w}")
        n_h, n_w = h // self.patch_size, w // self.patch_size
        x = self.conv_proj(x)  # (n, D, n_h, n_w)
        x = x.reshape(n, self.hidden_dim, n_h * n_w)
        return x.permute(0, 2, 1)  # (n, tokens, D)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(batch, 3, image_size, image_size)`` → logits ``(batch, num_classes)``."""
        x = self._process_input(x)
        batch_class_token = self.class_token.expand(x.shape[0], -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        x = self.encoder(x)
        return self.heads(x[:, 0])


def build(num_classes: int = NUM_CLASSES) -> nn.Module:
    """Build the small ViT with deterministic (seed 0) weights, in eval mode."""
    return seeded(lambda: VisionTransformer(num_classes=num_classes)).eval()
