"""``zoo:dscnn`` — the MobileNetV2-like depthwise-separable CNN of seed 000.

Seed 000: "DSCNN consists of MBConvReLU blocks where each MBConvReLU block contains one
pointwise MBConvReLU block, one depthwise MBConvReLU block, and one pointwise linear
convolution layer. The DSCNN structure as a whole begins with a stride-2 convolution layer,
goes into a sequence of inverted residual bottleneck layers, and exits into a stride-1
convolution layer and final linear layer."

Here: stride-2 ``3x3`` conv-BN-ReLU stem → :class:`~latprof.blocks.MBInvRes` blocks
with ReLU and an expand conv in every block (residual add where stride 1 and
``c_in == c_out``) → ``1x1`` conv-BN-ReLU head → global average pool → ``Linear``.
Default input ``1x3x64x64``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from latprof.blocks import ConvBNAct, MBInvRes, seeded

INPUT_SHAPE: tuple[int, ...] = (1, 3, 64, 64)
STEM_CHANNELS = 16
HEAD_CHANNELS = 320
SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    # expansion t, output channels c, repeats n, first stride s (MobileNetV2 notation)
    (2, 16, 1, 1),
    (4, 24, 2, 2),
    (4, 32, 3, 2),
    (4, 64, 2, 2),
    (4, 96, 1, 1),
)


class DSCNN(nn.Sequential):
    """Seed-000 DSCNN: children ``stem``, ``blocks`` (``0``, ``1``, ...), ``head``,
    ``pool``, ``flatten``, ``classifier``. Accepts any input size (adaptive pooling)."""

    def __init__(self, num_classes: int = 10) -> None:
        blocks = nn.Sequential()
        c_in = STEM_CHANNELS
        for t, c, n, s in SETTINGS:
            for i in range(n):
                stride = s if i == 0 else 1
                blocks.add_module(
                    str(len(blocks)), MBInvRes(c_in, c, 3, stride, expansion=t, act="relu")
                )
                c_in = c
        super().__init__(
            OrderedDict(
                stem=ConvBNAct(3, STEM_CHANNELS, kernel=3, stride=2, act="relu"),
                blocks=blocks,
                head=ConvBNAct(c_in, HEAD_CHANNELS, kernel=1, act="relu"),
                pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                classifier=nn.Linear(HEAD_CHANNELS, num_classes),
            )
        )


def build(num_classes: int = 10) -> nn.Module:
    """Build the seed-000 DSCNN with deterministic (seed 0) weights, in eval mode."""
    return seeded(lambda: DSCNN(num_classes)).eval()
