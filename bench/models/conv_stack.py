"""A 15-layer conv stack whose activations (0.2-0.8 MB) exceed glibc's default mmap threshold."""

import torch
from torch import nn

input_shape = (1, 3, 160, 160)


def build_model() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()]
    for _ in range(14):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)
