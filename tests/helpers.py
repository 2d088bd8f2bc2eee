"""Assertions shared by tests."""

from __future__ import annotations

from torch import nn


def assert_untouched(model: nn.Module, keys: list[str], flags: list[bool]) -> None:
    assert list(model.state_dict().keys()) == keys
    assert [m.training for m in model.modules()] == flags
    for mod in model.modules():
        assert not mod._forward_hooks and not mod._forward_pre_hooks
        assert not mod._forward_hooks_with_kwargs and not mod._forward_pre_hooks_with_kwargs
        assert "total_ops" not in mod._buffers and "total_params" not in mod._buffers
        assert "forward" not in mod.__dict__


def snapshot(model: nn.Module) -> tuple[list[str], list[bool]]:
    return list(model.state_dict().keys()), [m.training for m in model.modules()]
