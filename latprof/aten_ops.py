"""Aten ops inside modules: their MACs, attributed to the innermost module that ran them, and
(for `--by op`) their times.

A `TorchDispatchMode` sees every aten op; the shadowed forwards of the modules keep a stack of
the modules running, so an op is credited to the innermost one, as `torch.utils.flop_counter`
tracks modules. Composite ops (linear, matmul, einsum, conv2d) are decomposed into the ops they
are made of (mm/bmm/convolution), which come back through the mode, in inference mode too.
MACs = torch's flop formulas / 2, plus two formulas torch lacks on CPU: the fused attention
of `scaled_dot_product_attention`, `nn.MultiheadAttention`'s fast path and
`nn.TransformerEncoderLayer`'s fused path. Elementwise ops,
norms and softmax count 0 here (as in FlopCounterMode).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from latprof.measure.clocks import Clock
from latprof.measure.device import torch_imports_undone
from latprof.measure.hooks import wrapped_forwards

aten = torch.ops.aten
OUTSIDE = -1  # ops that ran outside every given module


def _batch(t: torch.Tensor) -> int:
    return math.prod(t.shape[:-2])


def sdpa_flops(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *_: Any, **__: Any):
    """q·kᵀ and a·v of `scaled_dot_product_attention` (FLOPs = 2 × MACs)."""
    lq, e = query.shape[-2:]
    lk, ev = key.shape[-2], value.shape[-1]
    return 2 * _batch(query) * lq * lk * (e + ev)


def encoder_layer_flops(
    src: torch.Tensor,
    embed_dim: int,
    _num_heads: int,
    _qkv_weight: torch.Tensor,
    *args: Any,
    **__: Any,
) -> int:
    """`nn.TransformerEncoderLayer`'s fused path: self-attention (as `native_mha_flops`) and
    the two feed-forward linears (E x F, F x E)."""
    ffn_weight_1 = args[10]
    attention = native_mha_flops(src, src, src, embed_dim)
    rows = math.prod(src.shape[:-1])
    return attention + 2 * 2 * rows * int(embed_dim) * ffn_weight_1.shape[0]


def native_mha_flops(
    query: torch.Tensor, key: torch.Tensor, _value: torch.Tensor, embed_dim: int, *_: Any, **__: Any
) -> int:
    """`nn.MultiheadAttention`'s fast path: q, k, v projections, q·kᵀ, a·v, out projection."""
    batch = _batch(query) if query.dim() > 2 else 1
    lq, lk, e = query.shape[-2], key.shape[-2], int(embed_dim)
    return 2 * batch * (lq * e * e + 2 * lk * e * e + 2 * lq * lk * e + lq * e * e)


FLOPS: dict[Any, Any] = {
    **flop_registry,
    aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flops,
    aten._native_multi_head_attention: native_mha_flops,
    aten._transformer_encoder_layer_fwd: encoder_layer_flops,
}


def macs_of(func: Any, args: tuple, kwargs: dict, out: Any) -> float:
    """MACs of one aten op call (0 for ops without a formula)."""
    formula = FLOPS.get(func.overloadpacket)
    if formula is None:
        return 0.0
    if formula in (sdpa_flops, native_mha_flops, encoder_layer_flops):
        return formula(*args, **kwargs) / 2
    return formula(*args, **kwargs, out_val=out) / 2


class _ModuleStack(TorchDispatchMode):
    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.modules = modules
        self.stack = [OUTSIDE]

    def _tracked(self, index: int, forward: Any) -> Any:
        stack = self.stack

        def tracked(*args: Any, **kwargs: Any) -> Any:
            stack.append(index)
            try:
                return forward(*args, **kwargs)
            finally:
                stack.pop()

        return tracked

    def decomposed(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """A composite op run as the ops it is made of, which come back through this mode
        (in inference mode they would not be decomposed); NotImplemented for other ops."""
        if func.overloadpacket in FLOPS:
            return NotImplemented
        with self:
            return func.decompose(*args, **kwargs)

    @contextmanager
    def attached(self) -> Iterator[None]:
        pairs = [(m, self._tracked(i, m.forward)) for i, m in enumerate(self.modules)]
        with torch_imports_undone(), wrapped_forwards(pairs), self, torch.no_grad():
            yield


class MacCounter(_ModuleStack):
    """MACs of every aten op, credited to the innermost running module (`OUTSIDE` for none)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__(modules)
        self.macs: dict[int, float] = defaultdict(float)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        out = self.decomposed(func, args, kwargs)
        if out is not NotImplemented:
            return out
        out = func(*args, **kwargs)
        macs = macs_of(func, args, kwargs, out)
        if macs:
            self.macs[self.stack[-1]] += macs
        return out


def count_macs(model: nn.Module, args: tuple, kwargs: dict, modules: list[nn.Module]) -> MacCounter:
    """One pass of `model` counting each module's self MACs (see `MacCounter`)."""
    counter = MacCounter(modules)
    with counter.attached():
        model(*args, **kwargs)
    return counter


class OpTimer(_ModuleStack):
    """Times the aten ops that run while `target` is running (its children's included)."""

    def __init__(self, target: nn.Module, clock: Clock) -> None:
        super().__init__([target])
        self.clock = clock
        self.calls: list[tuple[str, Any, Any, float]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        if len(self.stack) == 1:
            return func(*args, **kwargs)
        out = self.decomposed(func, args, kwargs)
        if out is not NotImplemented:
            return out
        start = self.clock.mark()
        out = func(*args, **kwargs)
        end = self.clock.mark()
        self.calls.append((str(func.overloadpacket), start, end, macs_of(func, args, kwargs, out)))
        return out


class _Views(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(64):
            x = x.view(-1)
        return x


def op_bias(clock: Clock, device: str = "cpu", passes: int = 20) -> float:
    """Median time an `OpTimer` credits to `aten.view` (no work): re-dispatching an op from
    inside the mode and the clock reads."""
    model = _Views()
    x = torch.zeros(1, device=device)
    timer = OpTimer(model, clock)
    samples: list[float] = []
    with timer.attached():
        for i in range(passes + 3):
            timer.calls.clear()
            clock.start_pass()
            model(x)
            clock.finish()
            if i >= 3:
                samples += [clock.elapsed_us(start, end) for _, start, end, _ in timer.calls]
    return float(np.median(samples))


def time_ops(
    model: nn.Module,
    args: tuple,
    kwargs: dict,
    target: nn.Module,
    clock: Clock,
    passes: int,
    bias_us: float = 0.0,
    device: str = "cpu",
    module_name: str = "",
) -> list[dict[str, Any]]:
    """The aten ops inside `target` over `passes` passes (after one untimed): per op, calls,
    mean and median µs per pass and MACs per pass; slowest first. Each call is credited less
    the larger of `bias_us` and `op_bias(clock)`, never below 0."""
    bias_us = max(bias_us, op_bias(clock, device))
    timer = OpTimer(target, clock)
    per_pass: list[dict[str, list[float]]] = []
    with timer.attached():
        for i in range(passes + 1):
            timer.calls.clear()
            clock.start_pass()
            model(*args, **kwargs)
            clock.finish()
            seen: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
            for op, start, end, macs in timer.calls:
                acc = seen[op]
                acc[0] += 1
                acc[1] += max(clock.elapsed_us(start, end) - bias_us, 0.0)
                acc[2] += macs
            if i:
                per_pass.append(dict(seen))
    names = list(dict.fromkeys(op for p in per_pass for op in p))
    rows = []
    for op in names:
        got = [p.get(op, [0.0, 0.0, 0.0]) for p in per_pass]
        times = np.array([g[1] for g in got])
        rows.append(
            {
                "module": module_name,
                "op": op,
                "calls": float(np.mean([g[0] for g in got])),
                "time_us": float(times.mean()),
                "time_us_median": float(np.median(times)),
                "macs": float(np.mean([g[2] for g in got])),
            }
        )
    return sorted(rows, key=lambda r: r["time_us"], reverse=True)
