"""Shared fixtures: tiny models and a check that no hook leaks out of latprof."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def no_global_hooks_leak() -> Iterator[None]:
    from torch.nn.modules import module as m

    before = (len(m._global_forward_hooks), len(m._global_forward_pre_hooks))
    yield
    assert (len(m._global_forward_hooks), len(m._global_forward_pre_hooks)) == before


@pytest.fixture
def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )
