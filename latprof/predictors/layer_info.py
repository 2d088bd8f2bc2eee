"""Per-call layer descriptions: the input every analytical latency predictor reads.

`describe` runs the model once with forward hooks on its leaves (`find_leaves`) and returns one
`LayerInfo` per leaf *call*, in call order. MACs come from `latprof.macs.count_layer_costs`
(one more forward pass, on a deep copy).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from latprof.macs import count_layer_costs
from latprof.measure.hooks import ROOT_NAME, find_leaves

__all__ = ["LayerInfo", "LayerKind", "describe", "kind_of"]

LayerKind = Literal["conv", "dwconv", "fc", "other"]


@dataclass(frozen=True)
class LayerInfo:
    """One call of one leaf module.

    Geometry (NCHW view of the call):
    * ``conv`` / ``dwconv`` (nn.Conv2d, nn.Conv1d as H = 1): batch, channels, kernel, stride,
      groups and spatial sizes of the first input and the output.
    * ``fc`` (nn.Linear): ``c_in``/``c_out`` = in/out features, ``batch`` = first dim,
      ``h_in = h_out`` = product of the middle dims (tokens; 1 for 2-D input), ``w = 1``, so
      ``batch * h_out * w_out`` is the number of rows multiplied.
    * ``other``: the first tensor input/output read as N, C, H, W (missing dims are 1);
      kernel/stride from the module's ``kernel_size``/``stride`` if it has them, else 1.

    Costs: ``macs`` for this call (0 when latprof cannot count the module); ``bytes_*`` are
    element counts × ``dtype_bytes``: all tensor inputs, all tensor outputs, and the leaf's
    parameters plus floating-point buffers.
    """

    name: str
    kind: LayerKind
    category: str
    batch: int
    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    groups: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int
    macs: float
    bytes_in: int
    bytes_out: int
    bytes_weights: int

    @property
    def bytes_total(self) -> int:
        """Bytes moved by the roofline convention: inputs + outputs + weights."""
        return self.bytes_in + self.bytes_out + self.bytes_weights


def kind_of(module: nn.Module) -> LayerKind:
    """Kind of a leaf: dwconv, conv, fc or other.

    "dwconv" is a Conv1d/2d with groups == c_in == c_out > 1, "conv" any other Conv1d/2d
    (grouped included), "fc" an nn.Linear.
    """
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        g, c, f = module.groups, module.in_channels, module.out_channels
        return "dwconv" if g > 1 and g == c == f else "conv"
    if isinstance(module, nn.Linear):
        return "fc"
    return "other"


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        items = [int(v) for v in value]
        return (1, items[0]) if len(items) == 1 else (items[-2], items[-1])
    return (int(value), int(value))


def _nchw(t: torch.Tensor | None) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a tensor; 3-D is (N, C, L) -> H = 1, W = L; missing dims are 1."""
    if t is None or t.dim() == 0:
        return 1, 1, 1, 1
    s = list(t.shape)
    if len(s) == 1:
        return 1, s[0], 1, 1
    if len(s) == 2:
        return s[0], s[1], 1, 1
    if len(s) == 3:
        return s[0], s[1], 1, s[2]
    return s[0], s[1], math.prod(s[2:-1]), s[-1]


def _geometry(
    m: nn.Module, kind: LayerKind, x: torch.Tensor | None, y: torch.Tensor | None
) -> dict[str, Any]:
    if kind == "fc":
        rows_in = list(x.shape) if x is not None else [m.in_features]
        rows_out = list(y.shape) if y is not None else [m.out_features]
        batch = rows_in[0] if len(rows_in) >= 2 else 1
        h_in = math.prod(rows_in[1:-1]) if len(rows_in) >= 2 else 1
        h_out = math.prod(rows_out[1:-1]) if len(rows_out) >= 2 else 1
        return dict(
            batch=batch,
            c_in=m.in_features,
            c_out=m.out_features,
            kernel=(1, 1),
            stride=(1, 1),
            groups=1,
            h_in=h_in,
            w_in=1,
            h_out=h_out,
            w_out=1,
        )
    if kind in ("conv", "dwconv"):
        unbatched = x is not None and x.dim() == (2 if isinstance(m, nn.Conv1d) else 3)
        xs = x.unsqueeze(0) if unbatched else x
        ys = y.unsqueeze(0) if unbatched and y is not None else y
        n, _, h_in, w_in = _nchw(xs)
        _, _, h_out, w_out = _nchw(ys)
        return dict(
            batch=n,
            c_in=m.in_channels,
            c_out=m.out_channels,
            kernel=_pair(m.kernel_size),
            stride=_pair(m.stride),
            groups=m.groups,
            h_in=h_in,
            w_in=w_in,
            h_out=h_out,
            w_out=w_out,
        )
    n, c_in, h_in, w_in = _nchw(x)
    _, c_out, h_out, w_out = _nchw(y)
    kernel = getattr(m, "kernel_size", 1)
    stride = getattr(m, "stride", None) or kernel
    return dict(
        batch=n,
        c_in=c_in,
        c_out=c_out,
        kernel=_pair(kernel),
        stride=_pair(stride),
        groups=int(getattr(m, "groups", 1) or 1),
        h_in=h_in,
        w_in=w_in,
        h_out=h_out,
        w_out=w_out,
    )


def _weight_elements(m: nn.Module) -> int:
    params = sum(p.numel() for p in m.parameters(recurse=False))
    buffers = sum(b.numel() for b in m.buffers(recurse=False) if b.is_floating_point())
    return params + buffers


def describe(
    model: nn.Module,
    args: Any,
    kwargs: dict[str, Any] | None = None,
    dtype_bytes: int = 4,
) -> list[LayerInfo]:
    """One `LayerInfo` per leaf call of ``model(*args, **kwargs)``, in call order.

    Runs in eval mode under ``torch.inference_mode``; hooks are removed and every module's
    training flag restored afterwards. A leaf called k times appears k times; its counted MACs
    (summed over calls by `count_layer_costs`) are split over the calls in proportion to each
    call's output size (exact when the calls have the same shapes, and for conv/linear/
    elementwise layers in general). Byte counts use ``dtype_bytes`` per element whatever the
    tensors' actual dtype (pass 2 to predict float16 from a float32 model).
    """
    args = args if isinstance(args, tuple) else (args,)
    kwargs = kwargs or {}
    leaves = find_leaves(model)
    qualified = ["" if name == ROOT_NAME else name for name, _ in leaves]
    costs = count_layer_costs(model, args, kwargs, leaves=qualified)
    index_of = {id(m): i for i, (_, m) in enumerate(leaves)}
    calls: list[tuple[int, dict[str, Any], int, int]] = []  # (leaf, geometry, in, out)

    def hook(m: nn.Module, h_args: tuple, h_kwargs: dict, output: Any) -> None:
        ins = [*_tensors(h_args), *_tensors(h_kwargs)]
        outs = list(_tensors(output))
        kind = kind_of(m)
        geometry = _geometry(m, kind, ins[0] if ins else None, outs[0] if outs else None)
        n_in = sum(t.numel() for t in ins)
        n_out = sum(t.numel() for t in outs)
        calls.append((index_of[id(m)], geometry, n_in, n_out))

    flags = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        model.eval()
        for _, m in leaves:
            handles.append(m.register_forward_hook(hook, with_kwargs=True))
        with torch.inference_mode():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags:
            m.training = flag

    out_per_leaf = [0] * len(leaves)
    calls_per_leaf = [0] * len(leaves)
    for i, _, _, n_out in calls:
        out_per_leaf[i] += n_out
        calls_per_leaf[i] += 1
    result = []
    for i, geometry, n_in, n_out in calls:
        name, m = leaves[i]
        total = costs[qualified[i]].macs or 0.0
        share = n_out / out_per_leaf[i] if out_per_leaf[i] else 1.0 / calls_per_leaf[i]
        result.append(
            LayerInfo(
                name=name,
                kind=kind_of(m),
                category=type(m).__name__,
                macs=float(total * share),
                bytes_in=n_in * dtype_bytes,
                bytes_out=n_out * dtype_bytes,
                bytes_weights=_weight_elements(m) * dtype_bytes,
                **geometry,
            )
        )
    return result
