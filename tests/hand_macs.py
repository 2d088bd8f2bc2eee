"""MACs of the zoo models worked out by hand, per module, as reference data for MAC counters.

Each function returns ``{qualified module name: self MACs}`` for batch 1 at the zoo entry's
default input, the names being those of ``model.named_modules()`` (the root is ``""``).

The convention ("aten convention"): only matrix products count —

* convolution: output elements × (C_in / groups) × k_h × k_w;
* linear / mm / addmm: rows × in × out; batched matmul / bmm: b × n × k × m;
* ``scaled_dot_product_attention``: 2 × B × H × L_q × L_k × d (q·kᵀ plus attn·v);
* ``nn.MultiheadAttention``'s fused path (``aten._native_multi_head_attention``): its q/k/v
  projections + q·kᵀ + attn·v + its output projection.

Biases, norms, activations, softmax, pooling, adds and concatenations are 0.

*Self* MACs are those of the ops a module's own ``forward`` runs outside calls to its child
modules. So a ``Linear`` leaf has its own MACs; a container that only calls children has 0;
``nn.MultiheadAttention`` (ViT) and ``ShiftedWindowAttention`` (Swin) hold *all* of their
attention's MACs themselves, because their projection children (``out_proj``; ``qkv`` and
``proj``) are only used for their weights, never called, and so have 0.

**Modules with 0 self MACs are left out** of every dict; :func:`with_zeros` fills them in from
a model. Nothing here calls latprof or a FLOP counter: every number is arithmetic on the
architecture's sizes (written in the model modules' docstrings), with the product in a
comment. ``tests/test_hand_macs.py`` checks them against ``torch.utils.flop_counter``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["HAND_MACS", "densenet", "dscnn", "subtree", "swin", "total", "vit", "with_zeros"]


def _conv(out_h: int, out_w: int, c_out: int, c_in_per_group: int, k: int) -> int:
    """Convolution MACs: output elements × input channels per group × k × k."""
    return out_h * out_w * c_out * c_in_per_group * k * k


def _linear(rows: int, in_features: int, out_features: int) -> int:
    """Linear MACs: rows × in × out (no bias)."""
    return rows * in_features * out_features


# --- zoo:vit ----------------------------------------------------------------------------


def vit() -> dict[str, int]:
    """``zoo:vit``: 1x3x32x32, patch 4, D = 64, 4 heads (d = 16), 4 blocks, MLP 128, 10 classes.

    Tokens: (32 / 4)² = 64 patches + 1 class token = 65.
    """
    macs: dict[str, int] = {}
    # conv_proj: Conv2d(3, 64, 4, stride 4) → 8x8x64 outputs, 3·4·4 = 48 MACs each
    macs["conv_proj"] = _conv(8, 8, 64, 3, 4)  # 4096 · 48 = 196_608
    tokens, d_model, heads, head_dim, mlp = 65, 64, 4, 16, 128
    for i in range(4):
        block = f"encoder.layers.encoder_layer_{i}"
        in_proj = _linear(tokens, d_model, 3 * d_model)  # 65 · 64 · 192 = 798_720
        q_kt = heads * tokens * tokens * head_dim  # 4 · 65 · 65 · 16 = 270_400
        a_v = heads * tokens * tokens * head_dim  # 270_400
        out_proj = _linear(tokens, d_model, d_model)  # 65 · 64 · 64 = 266_240
        # the fused MHA runs all four itself; self_attention.out_proj is never called (0)
        macs[f"{block}.self_attention"] = in_proj + q_kt + a_v + out_proj  # 1_605_760
        macs[f"{block}.mlp.0"] = _linear(tokens, d_model, mlp)  # 65 · 64 · 128 = 532_480
        macs[f"{block}.mlp.3"] = _linear(tokens, mlp, d_model)  # 65 · 128 · 64 = 532_480
    # heads.head: Linear(64, 10) on the class token only (1 row)
    macs["heads.head"] = _linear(1, d_model, 10)  # 640
    return macs  # total 196_608 + 4 · 2_670_720 + 640 = 10_880_128


# --- zoo:swin ---------------------------------------------------------------------------


def _swin_attention(height: int, width: int, dim: int, heads: int, window: int) -> int:
    """Self MACs of one ``ShiftedWindowAttention`` on a ``height x width x dim`` map (a
    multiple of ``window``, so no padding): qkv, q·kᵀ and attn·v per window, proj."""
    tokens = height * width
    windows = (height // window) * (width // window)
    n = window * window  # tokens per window
    head_dim = dim // heads
    qkv = _linear(tokens, dim, 3 * dim)
    q_kt = windows * heads * n * n * head_dim  # a bmm over windows x heads
    a_v = windows * heads * n * n * head_dim
    proj = _linear(tokens, dim, dim)
    return qkv + q_kt + a_v + proj


def swin() -> dict[str, int]:
    """``zoo:swin``: 1x3x64x64, patch 4, embed 32, depths (2, 2), heads (2, 4), window 4,
    MLP ratio 4, 10 classes.

    Stage 1: 16x16 tokens of width 32 (16 windows of 16 tokens); patch merging to 8x8 of
    width 64; stage 2: 8x8 tokens of width 64 (4 windows). The shift (2) does not change
    MACs: the mask is an add.
    """
    macs: dict[str, int] = {}
    # features.0.0: Conv2d(3, 32, 4, stride 4) → 16x16x32 outputs, 3·4·4 = 48 MACs each
    macs["features.0.0"] = _conv(16, 16, 32, 3, 4)  # 8192 · 48 = 393_216
    for i in range(2):  # stage 1 (features.1): 256 tokens, C = 32, 2 heads of 16
        block = f"features.1.{i}"
        # qkv 256·32·96 = 786_432; q·kᵀ = a·v = 16·2·16·16·16 = 131_072; proj 256·32·32 = 262_144
        macs[f"{block}.attn"] = _swin_attention(16, 16, 32, 2, 4)  # 1_310_720
        macs[f"{block}.mlp.0"] = _linear(256, 32, 128)  # 1_048_576
        macs[f"{block}.mlp.3"] = _linear(256, 128, 32)  # 1_048_576
    # features.2 (PatchMerging 32 → 64): reduction Linear(128, 64) on 8x8 = 64 tokens
    macs["features.2.reduction"] = _linear(64, 4 * 32, 2 * 32)  # 64 · 128 · 64 = 524_288
    for i in range(2):  # stage 2 (features.3): 64 tokens, C = 64, 4 heads of 16
        block = f"features.3.{i}"
        # qkv 64·64·192 = 786_432; q·kᵀ = a·v = 4·4·16·16·16 = 65_536; proj 64·64·64 = 262_144
        macs[f"{block}.attn"] = _swin_attention(8, 8, 64, 4, 4)  # 1_179_648
        macs[f"{block}.mlp.0"] = _linear(64, 64, 256)  # 1_048_576
        macs[f"{block}.mlp.3"] = _linear(64, 256, 64)  # 1_048_576
    macs["head"] = _linear(1, 64, 10)  # 640
    return macs  # total 393_216 + 2·3_407_872 + 524_288 + 2·3_276_800 + 640 = 14_287_488


# --- zoo:densenet -----------------------------------------------------------------------


def densenet() -> dict[str, int]:
    """``zoo:densenet``: 1x3x32x32, growth 8, bn_size 4 (bottleneck 32), blocks (2, 2),
    16 initial features, 10 classes.

    conv0 (7x7, stride 2, pad 3) → 16x16; pool0 → 8x8. Block 1 at 8x8: 16 → 24 → 32 channels;
    transition1 1x1 32 → 16, pool → 4x4. Block 2 at 4x4: 16 → 24 → 32 channels.
    """
    macs: dict[str, int] = {}
    macs["features.conv0"] = _conv(16, 16, 16, 3, 7)  # 4096 · 147 = 602_112
    for block, side in (("denseblock1", 8), ("denseblock2", 4)):
        for j, c_in in ((1, 16), (2, 16 + 8)):  # layer j sees 16 + (j - 1) · 8 channels
            layer = f"features.{block}.denselayer{j}"
            macs[f"{layer}.conv1"] = _conv(side, side, 32, c_in, 1)  # 1x1 to 4 · 8 = 32
            macs[f"{layer}.conv2"] = _conv(side, side, 8, 32, 3)  # 3x3 to growth 8
    # block 1 (8x8 = 64 px): conv1 64·32·16 = 32_768, 64·32·24 = 49_152; conv2 64·8·288 =
    # 147_456 each. Block 2 (16 px): 8_192, 12_288; conv2 36_864 each.
    macs["features.transition1.conv"] = _conv(8, 8, 16, 32, 1)  # 64 · 16 · 32 = 32_768
    macs["classifier"] = _linear(1, 32, 10)  # 320
    return macs  # total 1_106_240


# --- zoo:dscnn --------------------------------------------------------------------------


def dscnn() -> dict[str, int]:
    """``zoo:dscnn``: 1x3x64x64, stem 3x3 stride 2 to 16, MBInvRes blocks (t, c, n, s) =
    (2,16,1,1) (4,24,2,2) (4,32,3,2) (4,64,2,2) (4,96,1,1), head 1x1 to 320, 10 classes.

    Every block has an expand 1x1 (c_in → t·c_in, at the input size), a depthwise 3x3
    (carries the stride) and a project 1x1 (→ c, at the output size).
    """
    macs: dict[str, int] = {"stem.conv": _conv(32, 32, 16, 3, 3)}  # 1024 · 16 · 27 = 442_368
    # (block, c_in, mid, c_out, input side, output side)
    blocks = (
        (0, 16, 32, 16, 32, 32),
        (1, 16, 64, 24, 32, 16),
        (2, 24, 96, 24, 16, 16),
        (3, 24, 96, 32, 16, 8),
        (4, 32, 128, 32, 8, 8),
        (5, 32, 128, 32, 8, 8),
        (6, 32, 128, 64, 8, 4),
        (7, 64, 256, 64, 4, 4),
        (8, 64, 256, 96, 4, 4),
    )
    for i, c_in, mid, c_out, side_in, side_out in blocks:
        macs[f"blocks.{i}.expand.conv"] = _conv(side_in, side_in, mid, c_in, 1)
        macs[f"blocks.{i}.depthwise.conv"] = _conv(side_out, side_out, mid, 1, 3)  # groups=mid
        macs[f"blocks.{i}.project.conv"] = _conv(side_out, side_out, c_out, mid, 1)
    # e.g. block 1: expand 1024·64·16 = 1_048_576, dw 256·64·9 = 147_456, project
    # 256·24·64 = 393_216
    macs["head.conv"] = _conv(4, 4, 320, 96, 1)  # 16 · 320 · 96 = 491_520
    macs["classifier"] = _linear(1, 320, 10)  # 3_200
    return macs


HAND_MACS: dict[str, Callable[[], dict[str, int]]] = {
    "vit": vit,
    "swin": swin,
    "densenet": densenet,
    "dscnn": dscnn,
}
"""Zoo model name → its hand count."""


def total(name: str) -> int:
    """All MACs of one forward of zoo model ``name`` (batch 1, default input)."""
    return sum(HAND_MACS[name]().values())


def subtree(macs: dict[str, int], prefix: str) -> int:
    """Inclusive MACs of module ``prefix``: the sum of the self MACs of it and its
    descendants (``""`` is the whole model)."""
    if not prefix:
        return sum(macs.values())
    return sum(v for k, v in macs.items() if k == prefix or k.startswith(prefix + "."))


def with_zeros(macs: dict[str, int], model: nn.Module) -> dict[str, int]:
    """``macs`` with an explicit 0 for every other module of ``model``."""
    return {name: macs.get(name, 0) for name, _ in model.named_modules()}
