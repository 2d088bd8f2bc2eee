"""``zoo:cnn`` — the plain CNN of seed 000, sized for CIFAR-10 (input ``1x3x32x32``).

Seed 000: "a repeating sequence of stride 1 convolution, batch normalization, and ReLU
layers followed by three linear layers". Stages of stride-1 conv-BN-ReLU are separated by
``MaxPool2d``; an ``AvgPool2d`` pools the last stage to ``1x1``; the classifier is three
``Linear`` layers with ``ReLU`` and ``Dropout`` between them. Every op is a module, so all of
the forward time is attributable to leaves, and all seven seed-000 categories (Conv2d,
BatchNorm2d, ReLU, MaxPool2d, Linear, Dropout, AvgPool2d) appear.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from latprof.blocks import seeded

INPUT_SHAPE: tuple[int, ...] = (1, 3, 32, 32)
STAGES: tuple[tuple[int, int], ...] = ((32, 2), (64, 2), (128, 2))
"""(channels, number of conv-BN-ReLU layers) per stage."""


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(c_in, c_out, 3, stride=1, padding=1, bias=False),
            bn=nn.BatchNorm2d(c_out),
            relu=nn.ReLU(),
        )
    )


class CNN(nn.Sequential):
    """Seed-000 CNN: children ``features`` (stages ``stage{i}`` + ``pool{i}``), ``avgpool``,
    ``flatten``, ``classifier``.

    ``input_size`` must be divisible by ``2 ** (len(STAGES) - 1)``; the ``AvgPool2d`` kernel
    is the size of the last stage's feature map, so the model is tied to that input size.
    """

    def __init__(self, num_classes: int = 10, input_size: int = 32, dropout: float = 0.5) -> None:
        n_pools = len(STAGES) - 1
        if input_size < 2**n_pools or input_size % 2**n_pools:
            raise ValueError(f"input_size must be a multiple of {2**n_pools}, got {input_size}")
        features: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = 3
        for i, (c_out, depth) in enumerate(STAGES):
            if i > 0:
                features[f"pool{i}"] = nn.MaxPool2d(2)
            stage = nn.Sequential()
            for j in range(depth):
                stage.add_module(str(j), _conv_bn_relu(c_in if j == 0 else c_out, c_out))
            features[f"stage{i + 1}"] = stage
            c_in = c_out
        hidden = (256, 128)
        super().__init__(
            OrderedDict(
                features=nn.Sequential(features),
                avgpool=nn.AvgPool2d(input_size // 2**n_pools),
                flatten=nn.Flatten(),
                classifier=nn.Sequential(
                    OrderedDict(
                        fc1=nn.Linear(c_in, hidden[0]),
                        relu1=nn.ReLU(),
                        drop1=nn.Dropout(dropout),
                        fc2=nn.Linear(hidden[0], hidden[1]),
                        relu2=nn.ReLU(),
                        drop2=nn.Dropout(dropout),
                        fc3=nn.Linear(hidden[1], num_classes),
                    )
                ),
            )
        )


def build(num_classes: int = 10, input_size: int = 32) -> nn.Module:
    """Build the seed-000 CNN with deterministic (seed 0) weights, in eval mode."""
    return seeded(lambda: CNN(num_classes, input_size)).eval()
