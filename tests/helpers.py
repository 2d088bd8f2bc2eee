"""Assertions and fake-clock modules shared by tests."""

from __future__ import annotations

import torch
from torch import nn

from latprof.measure.clocks import FakeClock


def assert_untouched(model: nn.Module, keys: list[str], flags: list[bool]) -> None:
    assert list(model.state_dict().keys()) == keys
    assert [m.training for m in model.modules()] == flags
    for mod in model.modules():
        assert not mod._forward_hooks and not mod._forward_pre_hooks
        assert not mod._forward_hooks_with_kwargs and not mod._forward_pre_hooks_with_kwargs
        assert "total_ops" not in mod._buffers and "total_params" not in mod._buffers
        assert "forward" not in mod.__dict__


def timed_now(module: nn.Module) -> bool:
    """Whether latprof's timer shadows the module's forward now (the shape probe's does not
    count: it runs one untimed pass)."""
    return getattr(module.__dict__.get("forward"), "__name__", "") == "timed"


def snapshot(model: nn.Module) -> tuple[list[str], list[bool]]:
    return list(model.state_dict().keys()), [m.training for m in model.modules()]


class Work(nn.Module):
    """A leaf that 'takes' `ns` nanoseconds of fake time."""

    def __init__(self, clock: FakeClock, ns: int) -> None:
        super().__init__()
        self.clock, self.ns = clock, ns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(self.ns)
        return x + 0
