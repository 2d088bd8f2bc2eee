"""``zoo:swin`` — a small Swin Transformer (v1) with the module structure of torchvision's
``SwinTransformer`` (torchvision is not imported; input ``1x3x64x64``).

``features`` is an ``nn.Sequential``: ``0`` the patch embedding (``Conv2d`` k=4 s=4,
:class:`Permute` to channels-last, ``LayerNorm``), then one ``nn.Sequential`` of
:class:`SwinTransformerBlock` per stage with a :class:`PatchMerging` between stages. The
root's forward then runs ``norm``, permutes back, ``avgpool`` and ``head``.

A block is ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, with the window shift
alternating 0 / ``window // 2``. :class:`ShiftedWindowAttention` owns ``qkv`` and ``proj``
``nn.Linear`` modules and a relative position bias table but, as in torchvision, its forward
passes their weights to the module-level function :func:`shifted_window_attention`, which
does all the work functionally (pad, roll, window partition, ``F.linear``, two matmuls,
masked softmax, ``F.linear``, reverse roll, unpad): ``qkv`` and ``proj`` are never called,
so all of the attention's time and MACs belong to the ``attn`` module itself.

Sizes: 64x64 input → 16x16 tokens of width 32 (stage 1: 2 blocks, 2 heads) → patch merging
→ 8x8 tokens of width 64 (stage 2: 2 blocks, 4 heads); 4x4 windows (shift 2), MLP ratio 4,
10 classes.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latprof.blocks import seeded
from latprof.macs import register_counter, zero

INPUT_SHAPE: tuple[int, ...] = (1, 3, 64, 64)
PATCH_SIZE = 4
EMBED_DIM = 32
DEPTHS: tuple[int, ...] = (2, 2)
NUM_HEADS: tuple[int, ...] = (2, 4)
WINDOW_SIZE = 4
MLP_RATIO = 4
NUM_CLASSES = 10

_layer_norm = partial(nn.LayerNorm, eps=1e-5)


class Permute(nn.Module):
    """``torch.permute`` as a module (torchvision's ``ops.misc.Permute``)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        """Permute ``x``'s dimensions to ``self.dims``."""
        return torch.permute(x, self.dims)


register_counter(Permute, zero)  # a view: no arithmetic


def _shift_mask(
    pad_h: int, pad_w: int, window: list[int], shift: list[int], like: Tensor
) -> Tensor:
    """The ``(num_windows, N, N)`` additive mask (0 or -100) that keeps tokens of a shifted
    window from attending across the regions the cyclic roll brought together."""
    region = like.new_zeros((pad_h, pad_w))
    h_bounds = ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None))
    w_bounds = ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None))
    label = 0
    for h0, h1 in h_bounds:
        for w0, w1 in w_bounds:
            region[h0:h1, w0:w1] = label
            label += 1
    num_windows = (pad_h // window[0]) * (pad_w // window[1])
    region = region.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    region = region.permute(0, 2, 1, 3).reshape(num_windows, window[0] * window[1])
    diff = region.unsqueeze(1) - region.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def shifted_window_attention(
    input: Tensor,
    qkv_weight: Tensor,
    proj_weight: Tensor,
    relative_position_bias: Tensor,
    window_size: list[int],
    num_heads: int,
    shift_size: list[int],
    attention_dropout: float = 0.0,
    dropout: float = 0.0,
    qkv_bias: Tensor | None = None,
    proj_bias: Tensor | None = None,
    training: bool = False,
) -> Tensor:
    """Window multi-head self-attention with relative position bias on ``input``
    (``(B, H, W, C)``), shifted when ``shift_size`` is non-zero; returns ``(B, H, W, C)``.

    MACs (aten convention), with ``T = B * pad_H * pad_W`` tokens in windows of ``N``:
    ``T*C*3C`` (qkv) + ``2 * T*N*C`` (q·kᵀ and attn·v over all heads) + ``T*C*C`` (proj).
    """
    b, h, w, c = input.shape
    pad_r = (window_size[1] - w % window_size[1]) % window_size[1]
    pad_b = (window_size[0] - h % window_size[0]) % window_size[0]
    x = F.pad(input, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_h, pad_w, _ = x.shape

    shift = list(shift_size)  # a copy: never change the caller's (the module's) list
    if window_size[0] >= pad_h:
        shift[0] = 0  # one window covers the map: nothing to shift
    if window_size[1] >= pad_w:
        shift[1] = 0
    shifted = sum(shift) > 0
    if shifted:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))

    # partition into windows: (B * num_windows, N, C)
    wh, ww = window_size
    rows, cols = pad_h // wh, pad_w // ww  # windows down and across
    num_windows, n = rows * cols, wh * ww
    x = x.view(b, rows, wh, cols, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b * num_windows, n, c)

    qkv = F.linear(x, qkv_weight, qkv_bias)
    qkv = qkv.reshape(x.size(0), n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * (c // num_heads) ** -0.5
    attn = q.matmul(k.transpose(-2, -1))  # (B * num_windows, heads, N, N)
    attn = attn + relative_position_bias

    if shifted:
        mask = _shift_mask(pad_h, pad_w, window_size, shift, x)
        attn = attn.view(b, num_windows, num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, n, n)

    attn = F.softmax(attn, dim=-1)
    attn = F.dropout(attn, p=attention_dropout, training=training)

    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), n, c)
    x = F.linear(x, proj_weight, proj_bias)
    x = F.dropout(x, p=dropout, training=training)

    # reverse the partition and the shift, drop the padding
    x = x.view(b, rows, cols, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, pad_h, pad_w, c)
    if shifted:
        x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
    return x[:, :h, :w, :].contiguous()


class ShiftedWindowAttention(nn.Module):
    """Holds the parameters of :func:`shifted_window_attention` (``qkv``, ``proj``, the
    relative position bias table) and calls it; ``qkv`` and ``proj`` are never called."""

    def __init__(
        self,
        dim: int,
        window_size: list[int],
        shift_size: list[int],
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(window_size) != 2 or len(shift_size) != 2:
            raise ValueError("window_size and shift_size must be of length 2")
        self.window_size = window_size
        self.shift_size = shift_size
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # index into the table for every (query, key) pair of a window's tokens
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij"))
        flat = coords.flatten(1)  # (2, N)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()  # (N, N, 2)
        rel[:, :, 0] += wh - 1
        rel[:, :, 1] += ww - 1
        rel[:, :, 0] *= 2 * ww - 1
        self.register_buffer("relative_position_index", rel.sum(-1).flatten())

    def get_relative_position_bias(self) -> Tensor:
        """The ``(1, heads, N, N)`` bias added to the attention logits."""
        n = self.window_size[0] * self.window_size[1]
        index: Tensor = self.relative_position_index  # type: ignore[assignment]
        bias = self.relative_position_bias_table[index].view(n, n, -1)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C)``."""
        return shifted_window_attention(
            x,
            self.qkv.weight,
            self.proj.weight,
            self.get_relative_position_bias(),
            self.window_size,
            self.num_heads,
            shift_size=self.shift_size,
            attention_dropout=self.attention_dropout,
            dropout=self.dropout,
            qkv_bias=self.qkv.bias,
            proj_bias=self.proj.bias,
            training=self.training,
        )


class SwinTransformerBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``; ``mlp`` is Linear, GELU, Dropout,
    Linear, Dropout."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: list[int],
        shift_size: list[int],
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = _layer_norm(dim)
        self.attn = ShiftedWindowAttention(
            dim,
            window_size,
            shift_size,
            num_heads,
            attention_dropout=attention_dropout,
            dropout=dropout,
        )
        self.norm2 = _layer_norm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C)``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Halve H and W: concatenate each 2x2 neighbourhood (``4C``), ``norm``, then
    ``reduction`` (``Linear(4C, 2C, bias=False)``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = _layer_norm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, H, W, C)`` → ``(B, ceil(H/2), ceil(W/2), 2C)``."""
        h, w = x.shape[-3], x.shape[-2]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x0 = x[..., 0::2, 0::2, :]
        x1 = x[..., 1::2, 0::2, :]
        x2 = x[..., 0::2, 1::2, :]
        x3 = x[..., 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1)
        return self.reduction(self.norm(x))


class SwinTransformer(nn.Module):
    """Swin v1: ``features`` (patch embedding, stages, patch merging), ``norm``,
    ``avgpool``, ``head``."""

    def __init__(
        self,
        patch_size: int = PATCH_SIZE,
        embed_dim: int = EMBED_DIM,
        depths: tuple[int, ...] = DEPTHS,
        num_heads: tuple[int, ...] = NUM_HEADS,
        window_size: int = WINDOW_SIZE,
        mlp_ratio: float = MLP_RATIO,
        num_classes: int = NUM_CLASSES,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size),
                Permute([0, 2, 3, 1]),
                _layer_norm(embed_dim),
            )
        ]
        for i_stage, depth in enumerate(depths):
            dim = embed_dim * 2**i_stage
            stage = nn.Sequential(
                *(
                    SwinTransformerBlock(
                        dim,
                        num_heads[i_stage],
                        window_size=[window_size, window_size],
                        shift_size=[0 if i % 2 == 0 else window_size // 2] * 2,
                        mlp_ratio=mlp_ratio,
                        dropout=dropout,
                        attention_dropout=attention_dropout,
                    )
                    for i in range(depth)
                )
            )
            layers.append(stage)
            if i_stage < len(depths) - 1:
                layers.append(PatchMerging(dim))
        self.features = nn.Sequential(*layers)
        num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = _layer_norm(num_features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, H, W)`` → logits ``(B, num_classes)``."""
        x = self.features(x)
        x = self.norm(x)
        x = x.permute(0, 3, 1, 2)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.head(x)


def build(num_classes: int = NUM_CLASSES) -> nn.Module:
    """Build the small Swin Transformer with deterministic (seed 0) weights, in eval mode."""
    return seeded(lambda: SwinTransformer(num_classes=num_classes)).eval()
