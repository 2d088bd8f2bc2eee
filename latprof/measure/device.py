"""Device and dtype helpers: check a device, place tensors, convert a model, eval mode,
threads for a block, the CUDA device context and the CUDA conditions (TF32, cudnn.benchmark)."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from latprof.config import DTYPES as DTYPE_NAMES
from latprof.errors import DeviceError, UsageError

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
"""The --dtype names (latprof.config.DTYPES) and their torch dtypes."""


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


def model_devices(model: nn.Module) -> dict[str, str]:
    """Device -> the first parameter or buffer on it; UsageError when there are several
    (a model split over devices is not one that latprof can move to --device)."""
    found: dict[str, str] = {}
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        found.setdefault(str(t.device), name)
    if len(found) > 1:
        where = "; ".join(f"{name!r} on {dev}" for dev, name in found.items())
        raise UsageError(
            f"the model's parameters are on several devices ({where}); move the whole model "
            "to one device, or profile its parts separately"
        )
    return found


@contextmanager
def torch_imports_undone() -> Iterator[None]:
    """Undo what torch's lazy imports do to the process the first time a dispatch mode or
    FLOP counter runs (TORCHINDUCTOR_CACHE_DIR set, a warnings filter added): environment
    variables that appear inside are removed, the warnings filters restored."""
    before = set(os.environ)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        for name in set(os.environ) - before:
            del os.environ[name]


def random_input(*shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A standard-normal tensor from a generator of its own: the caller's RNG is untouched."""
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(0))


def already_on(model: nn.Module, device: str, dtype: torch.dtype) -> bool:
    """Whether every parameter and buffer is on `device` (an index-less "cuda": the current
    one, where latprof's clock records) and every floating-point one in `dtype`."""
    target = torch.device(device)
    index = target.index
    if index is None and target.type == "cuda":
        index = torch.cuda.current_device()
    return all(
        t.device.type == target.type
        and t.device.index == index
        and (not t.is_floating_point() or t.dtype == dtype)
        for t in [*model.parameters(), *model.buffers()]
    )


def prepare_model(model: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    """The model itself when already on device/dtype, else a converted deep copy."""
    model_devices(model)
    if already_on(model, device, dtype):
        return model
    try:
        work = copy.deepcopy(model)
    except Exception as exc:  # an attribute that cannot be copied (a lock, a file)
        raise UsageError(
            f"cannot copy the model to move it to {device}/{str(dtype).replace('torch.', '')} "
            f"({type(exc).__name__}: {exc}); convert it yourself first "
            "(model.to(device, dtype)), then profile it"
        ) from exc
    return work.to(device=device, dtype=dtype)


def device_context(device: str) -> Any:
    """`torch.cuda.device(N)` for a CUDA device (so that the current device and its current
    stream are the measured ones), else a no-op context."""
    if not device.startswith("cuda"):
        return nullcontext()
    return torch.cuda.device(torch.device(device))


CUDA_FLAGS = ("tf32", "cudnn_benchmark")


def cuda_flags_now() -> dict[str, bool]:
    """The GPU conditions that change latency: TF32 (matmul, cuDNN), cudnn.benchmark,
    deterministic algorithms."""
    return {
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
    }


@contextmanager
def cuda_flags(tf32: bool | None = None, cudnn_benchmark: bool | None = None) -> Iterator[None]:
    """Set TF32 (matmul and cuDNN) and cudnn.benchmark for the block when asked (None leaves
    PyTorch's own setting), then restore them."""
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    try:
        if tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        if cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = cudnn_benchmark
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = before


@contextmanager
def measuring(
    device: str, tf32: bool | None = None, cudnn_benchmark: bool | None = None
) -> Iterator[None]:
    """The measured device as the current one, with the CUDA conditions asked for."""
    with device_context(device), cuda_flags(tf32, cudnn_benchmark):
        yield
