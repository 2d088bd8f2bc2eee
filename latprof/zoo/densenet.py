"""``zoo:densenet`` — a small DenseNet with the module structure of torchvision's
``DenseNet`` (torchvision is not imported; input ``1x3x32x32``).

``features`` is an ``nn.Sequential``: stem ``conv0`` (7x7, stride 2) ``norm0`` ``relu0``
``pool0`` (3x3 max, stride 2), then ``denseblock{i}`` (:class:`DenseBlock`, an
``nn.ModuleDict`` whose forward runs its ``denselayer{j}`` and concatenates every feature map)
with a ``transition{i}`` (:class:`Transition`: BN, ReLU, 1x1 conv, 2x2 average pool) between
blocks, and ``norm5``. The root's own forward then applies ReLU and global average pooling
*functionally* (``F.relu``, ``F.adaptive_avg_pool2d``, ``torch.flatten``) before
``classifier``, as torchvision does. Each :class:`DenseLayer` concatenates its inputs
(``torch.cat``, in its own forward) before ``norm1`` ``relu1`` ``conv1`` (1x1 to
``bn_size * growth_rate``) ``norm2`` ``relu2`` ``conv2`` (3x3 to ``growth_rate``).

Sizes: growth rate 8, ``bn_size`` 4, block config (2, 2), 16 initial features: 32x32 → 16x16
after ``conv0`` → 8x8 after ``pool0`` (block 1: 16 → 32 channels) → transition to 16 channels
at 4x4 (block 2: 16 → 32 channels) → 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latprof.blocks import seeded

INPUT_SHAPE: tuple[int, ...] = (1, 3, 32, 32)
GROWTH_RATE = 8
BLOCK_CONFIG: tuple[int, ...] = (2, 2)
NUM_INIT_FEATURES = 16
BN_SIZE = 4
NUM_CLASSES = 10


class DenseLayer(nn.Module):
    """``cat(inputs)`` → BN-ReLU-Conv1x1 (bottleneck) → BN-ReLU-Conv3x3 (``growth_rate``
    new channels)."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, mid, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def bn_function(self, inputs: list[Tensor]) -> Tensor:
        """Concatenate the previous feature maps along channels and apply the bottleneck."""
        concated_features = torch.cat(inputs, 1)
        return self.conv1(self.relu1(self.norm1(concated_features)))

    def forward(self, input: Tensor | list[Tensor]) -> Tensor:
        """``input``: one feature map or the list of all previous ones."""
        prev_features = [input] if isinstance(input, Tensor) else input
        bottleneck_output = self.bn_function(prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class DenseBlock(nn.ModuleDict):
    """``denselayer1`` … ``denselayerN``; each sees every earlier feature map, and the
    block's output is all of them concatenated."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        """Run the layers in order, each on the list of all feature maps so far."""
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN, ReLU, 1x1 conv (halving the channels), 2x2 average pool."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(num_input_features),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(
                    num_input_features, num_output_features, kernel_size=1, stride=1, bias=False
                ),
                pool=nn.AvgPool2d(kernel_size=2, stride=2),
            )
        )


class DenseNet(nn.Module):
    """DenseNet-BC: ``features`` (stem, dense blocks, transitions, ``norm5``) and
    ``classifier``; ReLU and pooling in between are functional."""

    def __init__(
        self,
        growth_rate: int = GROWTH_RATE,
        block_config: tuple[int, ...] = BLOCK_CONFIG,
        num_init_features: int = NUM_INIT_FEATURES,
        bn_size: int = BN_SIZE,
        drop_rate: float = 0.0,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                conv0=nn.Conv2d(
                    3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False
                ),
                norm0=nn.BatchNorm2d(num_init_features),
                relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = Transition(num_features, num_features // 2)
                self.features.add_module(f"transition{i + 1}", trans)
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(batch, 3, H, W)`` → logits ``(batch, num_classes)``."""
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)


def build(num_classes: int = NUM_CLASSES) -> nn.Module:
    """Build the small DenseNet with deterministic (seed 0) weights, in eval mode."""
    return seeded(lambda: DenseNet(num_classes=num_classes)).eval()
