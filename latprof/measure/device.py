"""Device and dtype helpers: check a device, place tensors, convert a model, eval mode,
threads for a block."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from latprof.errors import DeviceError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def check_device(device: str) -> None:
    """Raise DeviceError when a CUDA device is asked for and not present."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {device}: CUDA is not available here (torch {torch.__version__}); "
            "use --device cpu, or install a CUDA build of torch (make install TORCH=...)"
        )
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible; "
            f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for the block, then restore them."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """eval() for the block; every module's training flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def place(value: Any, device: str, dtype: torch.dtype) -> Any:
    """Tensors in a nest moved to device; floating ones cast to dtype."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype if value.is_floating_point() else None)
    if isinstance(value, (tuple, list)):
        return type(value)(place(v, device, dtype) for v in value)
    if isinstance(value, dict):
        return {k: place(v, device, dtype) for k, v in value.items()}
    return value


def prepare_model(model: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    """The model itself when already on device/dtype, else a converted deep copy."""
    tensors = [*model.parameters(), *model.buffers()]
    target = torch.device(device)
    same = all(
        t.device.type == target.type
        and (target.index is None or t.device.index == target.index)
        and (not t.is_floating_point() or t.dtype == dtype)
        for t in tensors
    )
    return model if same else copy.deepcopy(model).to(device=device, dtype=dtype)
