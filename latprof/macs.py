"""Per-layer MAC counting: THOP's counters, latprof's extra counters, and a cross-check.

Conventions (design brief, section 4):

* Numbers are **MACs** (multiply-accumulates), THOP's unit. FLOPs ≈ 2 × MACs for conv/matmul,
  which is what `torch.utils.flop_counter.FlopCounterMode` reports (`flop_counter_total`).
* Bias additions are not counted (THOP and torch's flop counter both ignore them).
* Conv / Linear / MultiheadAttention: one MAC per weight multiply actually performed.
* Elementwise activations with arithmetic (SiLU, GELU, Sigmoid, LeakyReLU, ...): 1 op per
  output element, the convention THOP uses for PReLU (`count_prelu`).
* Pure data movement and comparisons (ReLU, ReLU6, Hardtanh, max-pooling, padding, Identity,
  Flatten, Dropout in eval, Embedding lookups): 0, counter name ``"zero"``.
* Normalization, softmax, average pooling, upsampling, RNNs: THOP's formulas (op counts, not
  strictly MACs): norm = 2 × numel, × 2 again when affine; softmax = rows × (3n - 1);
  avg-pool = (kernel + 1) × output numel; RNNs per `thop.rnn_hooks`.
* A module with no known counter gets ``macs=None`` and counter ``"none"`` (never a silent 0);
  a counter that fails at run time also gives ``macs=None`` (keeping the counter's name).
* A module that was never called during the forward pass gets ``macs=0.0`` and counter
  ``"not-called"``. Work done by a parent without calling its children (e.g.
  `nn.MultiheadAttention`, which uses its `out_proj` weights functionally) is then not
  attributed to any leaf; compare the sum with `flop_counter_total` to see such gaps.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from latprof.errors import LatprofError, ModelRunError
from latprof.measure.device import torch_imports_undone

with warnings.catch_warnings():
    # thop imports distutils.version (DeprecationWarning on 3.11, needs setuptools on 3.12+).
    warnings.simplefilter("ignore")
    from thop import rnn_hooks as _thop_rnn
    from thop.profile import register_hooks as _THOP_HOOKS
    from thop.vision import basic_hooks as _thop_basic
    from thop.vision import calc_func as _thop_calc

__all__ = [
    "COUNTERS",
    "Counter",
    "LayerCost",
    "adaptive_avgpool",
    "avgpool",
    "conv",
    "count_layer_costs",
    "counter_for",
    "counter_name",
    "elementwise",
    "flop_counter_total",
    "multihead_attention",
    "register_counter",
    "rnn",
    "rnn_cell",
    "softmax",
    "uncounted",
    "upsample",
    "zero",
]

_log = logging.getLogger(__name__)

Counter = Callable[[nn.Module, tuple, Any], None]
"""A THOP-style counter: ``fn(module, inputs, output)`` adds the MACs of one call to
``module.total_ops`` (a float64 buffer registered on the counting copy)."""


@dataclass(frozen=True)
class LayerCost:
    """MACs and parameters of one module for one forward pass."""

    macs: float | None  # summed over all calls; None = not counted
    params: int  # parameters owned directly by the module (recurse=False), counted once
    counter: str  # e.g. "thop.count_convNd", "latprof.elementwise", "zero", "none"


# --------------------------------------------------------------------------------------------
# latprof counters (THOP calling convention: add to m.total_ops)


def _numel(y: Any) -> int:
    if isinstance(y, torch.Tensor):
        return y.numel()
    if isinstance(y, (tuple, list)):
        return sum(_numel(t) for t in y)
    return 0


def zero(m: nn.Module, x: tuple, y: Any) -> None:
    """Layers without arithmetic (copies, reshapes, comparisons): 0 MACs."""


def elementwise(m: nn.Module, x: tuple, y: Any) -> None:
    """Elementwise activations: 1 op per output element (THOP's PReLU convention)."""
    m.total_ops += _numel(y)


def conv(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
    """Conv1d/2d/3d and ConvTranspose1d/2d/3d, any groups; bias not counted.

    Replaces thop's `count_convNd`, which computes ``y.numel() * (x.shape[1] // groups) * k``:
    * for transposed convolutions that counts every output position against the full kernel
      (including the inserted zeros): ConvTranspose2d(4, 6, 3, stride=2) on 1x4x5x5 gives
      26136 instead of the 5400 multiplies performed (= FlopCounterMode / 2);
    * for unbatched input (C, H, W) it reads H as the channel count (3x8x8 input to
      Conv2d(3, 8, 3, padding=1): 36864 instead of 13824).
    Regular and grouped/depthwise batched convolutions give the same numbers as thop.
    """
    k = math.prod(m.kernel_size)
    if m.transposed:
        # each input element is multiplied by out_channels/groups kernels
        macs = x[0].numel() * (m.out_channels // m.groups) * k
    else:
        macs = y.numel() * (m.in_channels // m.groups) * k
    m.total_ops += macs


def _softmax_dim(m: nn.Module, ndim: int) -> int:
    if isinstance(m, nn.Softmax2d):
        return -3
    dim = getattr(m, "dim", None)
    if dim is None:  # legacy implicit dim, as torch.nn.functional._get_softmax_dim
        return 0 if ndim in (0, 1, 3) else 1
    return dim


def softmax(m: nn.Module, x: tuple, y: Any) -> None:
    """Softmax/Softmin/LogSoftmax/Softmax2d: thop's formula rows × (n exp + n-1 add + n div).

    thop's `count_softmax` raises TypeError for ``nn.Softmax()`` (dim=None) and knows only
    nn.Softmax.
    """
    inp = x[0]
    n = inp.shape[_softmax_dim(m, inp.dim())] if inp.dim() else 1
    rows = inp.numel() // max(n, 1)
    m.total_ops += rows * (3 * n - 1)


def _pool_ndim(m: nn.Module) -> int:
    for cls in type(m).__mro__:
        for d in (1, 2, 3):
            if cls.__name__.endswith(f"{d}d"):
                return d
    raise NotImplementedError(f"cannot tell the dimensionality of {type(m).__name__}")


def avgpool(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
    """AvgPool1d/2d/3d: (kernel adds + 1 div) per output element.

    thop's `count_avgpool` counts 1 op per output element whatever the kernel, which is
    inconsistent with its own AdaptiveAvgPool counter (kernel + 1 per output element); this
    uses the adaptive convention for both.
    """
    ks = m.kernel_size
    k = math.prod(ks) if isinstance(ks, (tuple, list)) else ks ** _pool_ndim(m)
    m.total_ops += (k + 1) * y.numel()


def adaptive_avgpool(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
    """AdaptiveAvgPool1d/2d/3d: (mean kernel size + 1) per output element, as thop.

    thop's `count_adap_avgpool` takes the spatial dims as ``shape[2:]``, which is wrong for
    unbatched input; this takes the last 1/2/3 dims.
    """
    d = _pool_ndim(m)
    kernel = math.prod(i / o for i, o in zip(x[0].shape[-d:], y.shape[-d:], strict=True))
    m.total_ops += int((kernel + 1) * y.numel())


def upsample(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
    """nn.Upsample*: thop's per-output-element costs, plus "trilinear" and "nearest-exact".

    thop's `count_upsample` logs a warning and counts 0 for "trilinear" although its own
    `calculate_upsample` has a formula for it; unknown modes raise (-> not counted).
    """
    mode = "nearest" if m.mode == "nearest-exact" else m.mode
    if mode not in ("nearest", "linear", "bilinear", "bicubic", "trilinear"):
        raise NotImplementedError(f"no counter for upsample mode {m.mode!r}")
    m.total_ops += float(_thop_calc.calculate_upsample(mode, y.numel()))


def rnn(m: nn.Module, x: tuple, y: Any) -> None:
    """nn.RNN/GRU/LSTM via thop's counters, giving unbatched (L, H_in) input a batch dim.

    thop reads the batch size from the input shape, so unbatched input would be counted with
    H_in as the batch size. LSTM with proj_size > 0 is not handled by thop (-> not counted).
    """
    if getattr(m, "proj_size", 0):
        raise NotImplementedError("thop's LSTM counter ignores proj_size")
    inp = x[0]
    if isinstance(inp, torch.Tensor) and inp.dim() == 2:
        inp = inp.unsqueeze(0 if m.batch_first else 1)
    if isinstance(m, nn.LSTM):
        fn = _thop_rnn.count_lstm
    elif isinstance(m, nn.GRU):
        fn = _thop_rnn.count_gru
    else:
        fn = _thop_rnn.count_rnn
    fn(m, (inp, *x[1:]), y)


def rnn_cell(m: nn.Module, x: tuple, y: Any) -> None:
    """nn.RNNCell/GRUCell/LSTMCell via thop's counters, with unbatched (H_in,) input fixed."""
    inp = x[0]
    if isinstance(inp, torch.Tensor) and inp.dim() == 1:
        inp = inp.unsqueeze(0)
    if isinstance(m, nn.LSTMCell):
        fn = _thop_rnn.count_lstm_cell
    elif isinstance(m, nn.GRUCell):
        fn = _thop_rnn.count_gru_cell
    else:
        fn = _thop_rnn.count_rnn_cell
    fn(m, (inp, *x[1:]), y)


def multihead_attention(m: nn.Module, x: tuple, y: Any) -> None:
    """nn.MultiheadAttention: q/k/v/out projections + QK^T + AV matmuls (bias, softmax not counted).

    Only reached when the module is named in ``leaves`` or sits inside a named non-leaf: it has
    a child (``out_proj``) and so is not a leaf itself.
    """
    q, k = x[0], x[1]
    if q.dim() == 3:
        n, lq = (q.shape[0], q.shape[1]) if m.batch_first else (q.shape[1], q.shape[0])
        lk = k.shape[1] if m.batch_first else k.shape[0]
    else:
        n, lq, lk = 1, q.shape[0], k.shape[0]
    e = m.embed_dim
    lk_att = lk + (m.bias_k is not None) + bool(m.add_zero_attn)
    macs = lq * e * e + lk * m.kdim * e + lk * m.vdim * e + 2 * lq * lk_att * e + lq * e * e
    m.total_ops += n * macs


# --------------------------------------------------------------------------------------------
# registry


def _nn_types(*names: str) -> list[type]:
    """The nn classes with these names that exist in the installed torch."""
    return [t for t in (getattr(nn, n, None) for n in names) if isinstance(t, type)]


# fmt: off
_ELEMENTWISE = _nn_types(
    "SiLU", "Sigmoid", "Hardswish", "Hardsigmoid", "GELU", "Tanh", "Mish", "ELU", "SELU",
    "CELU", "Softplus", "LeakyReLU", "RReLU", "LogSigmoid", "Softsign", "Tanhshrink",
    "Softshrink", "Hardshrink", "GLU",
)
_ZERO = _nn_types(
    "Identity", "Flatten", "Unflatten", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
    "AlphaDropout", "FeatureAlphaDropout", "Hardtanh", "Threshold",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d",
    "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
    "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "Embedding", "Fold", "Unfold",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
)
# fmt: on

COUNTERS: dict[type, Counter] = {
    t: (zero if fn is _thop_basic.zero_ops else fn) for t, fn in _THOP_HOOKS.items()
}
"""Module type -> counter. THOP's mapping plus latprof's; resolved along ``type(m).__mro__``.

THOP's `count_linear` (``in_features * y.numel()``) is kept: it is correct for inputs with any
number of leading dims ([B, C], [B, T, C], unbatched [C]).
THOP's `count_normalization` is kept: 2 × numel, doubled when affine (BatchNorm2d(8) on
1x8x4x4 -> 512), also used for GroupNorm and RMSNorm.
"""
COUNTERS.update(dict.fromkeys(_ELEMENTWISE, elementwise))  # LeakyReLU: thop counts 0
COUNTERS.update(dict.fromkeys(_ZERO, zero))
COUNTERS.update(dict.fromkeys(_nn_types("GroupNorm", "RMSNorm"), _thop_basic.count_normalization))
_CONVS = _nn_types(
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"
)
COUNTERS.update(dict.fromkeys(_CONVS, conv))
COUNTERS.update(dict.fromkeys(_nn_types("Softmax", "Softmin", "LogSoftmax", "Softmax2d"), softmax))
COUNTERS.update(dict.fromkeys(_nn_types("AvgPool1d", "AvgPool2d", "AvgPool3d"), avgpool))
COUNTERS.update(
    dict.fromkeys(
        _nn_types("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d"), adaptive_avgpool
    )
)
COUNTERS.update(
    dict.fromkeys(_nn_types("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"), upsample)
)
COUNTERS.update(dict.fromkeys(_nn_types("RNN", "GRU", "LSTM"), rnn))
COUNTERS.update(dict.fromkeys(_nn_types("RNNCell", "GRUCell", "LSTMCell"), rnn_cell))
COUNTERS[nn.MultiheadAttention] = multihead_attention

# Containers: a non-leaf module resolving to one of these is summed over its children.
_CONTAINERS: tuple[type, ...] = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def register_counter(module_type: type, fn: Counter | None) -> Counter | None:
    """Add or override the counter for `module_type` (and its subclasses); return the old one.

    ``fn=None`` removes the entry, so the type resolves through its base classes again.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"module_type must be an nn.Module subclass, got {module_type!r}")
    if fn is not None and not callable(fn):
        raise TypeError(f"counter must be callable, got {fn!r}")
    old = COUNTERS.get(module_type)
    if fn is None:
        COUNTERS.pop(module_type, None)
    else:
        COUNTERS[module_type] = fn
    return old


def counter_for(module: nn.Module | type, *, for_non_leaf: bool = False) -> Counter | None:
    """The counter for a module or type: the first class of its MRO found in COUNTERS.

    With ``for_non_leaf``, resolution stops at container classes (Sequential, ModuleList,
    ModuleDict), so a block subclassing nn.Sequential is summed over its children instead.
    """
    cls = module if isinstance(module, type) else type(module)
    for t in cls.__mro__:
        if for_non_leaf and t in _CONTAINERS:
            return None
        if t in COUNTERS:
            return COUNTERS[t]
    return None


def counter_name(fn: Callable | None) -> str:
    """Display name of a counter: "zero", "thop.<fn>", "latprof.<fn>" or "<module>.<qualname>"."""
    if fn is None:
        return "none"
    if fn is zero or fn is _thop_basic.zero_ops:
        return "zero"
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", type(fn).__name__)
    if mod.split(".")[0] == "thop":
        return f"thop.{name}"
    if mod == __name__:
        return f"latprof.{name}"
    return f"{mod}.{getattr(fn, '__qualname__', name)}" if mod else name


# --------------------------------------------------------------------------------------------
# counting


@dataclass
class _Unit:
    """Counting state of one hooked module on the copy."""

    calls: int = 0
    fn: Counter | None = None
    error: BaseException | None = None
    leaf: bool = True
    children: list[nn.Module] = field(default_factory=list)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence thop's prints, warnings and root-logger warnings."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _inputs(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    """Positional view of a call's inputs, in forward()'s parameter order."""
    if not kwargs:
        return args
    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return (*args, *kwargs.values())
    out: list[Any] = []
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            out.extend(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            out.extend(value.values())
        else:
            out.append(value)
    return tuple(out)


def _is_leaf(m: nn.Module) -> bool:
    return next(m.children(), None) is None


def _units(m: nn.Module) -> list[nn.Module]:
    """Modules whose costs make up `m`: itself if a leaf or it has its own counter, else the
    units of its children (shared modules once)."""
    if _is_leaf(m) or counter_for(m, for_non_leaf=True) is not None:
        return [m]
    seen: dict[int, nn.Module] = {}
    for child in m.children():
        for u in _units(child):
            seen.setdefault(id(u), u)
    return list(seen.values())


def _deepcopy(model: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        lazy = any(map(is_lazy, model.parameters()))
        fix = (
            "lazy modules must be initialised by one forward pass first"
            if lazy
            else "MACs are counted on a copy so that the model is left as found: make its "
            "attributes copyable (e.g. hold locks and files outside the module)"
        )
        raise LatprofError(
            f"cannot deep-copy the model to count MACs ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); {fix}"
        ) from exc


def _run(model: nn.Module, args: tuple, kwargs: dict) -> None:
    try:
        with torch_imports_undone(), torch.no_grad():
            model(*args, **kwargs)
    except Exception as exc:
        raise ModelRunError(
            f"the model failed while counting MACs: {type(exc).__name__}: {exc}; "
            "check the input shape, dtype and device"
        ) from exc


def count_layer_costs(
    model: nn.Module,
    args: tuple,
    kwargs: dict | None = None,
    leaves: Iterable[str] | None = None,
) -> dict[str, LayerCost]:
    """MACs and parameters per module for one forward pass ``model(*args, **kwargs)``.

    Keys are qualified names from ``model.named_modules()`` ("" is the root). By default every
    leaf module (no children) is reported, in `named_modules` order; `leaves` restricts the
    report to those names. A non-leaf name in `leaves` is reported as one unit: by its own
    counter if one is registered (e.g. nn.MultiheadAttention), else as the sum of its
    children (counter "latprof.subtree", all its parameters, ``None`` if any part is not
    counted or did not run although the module did).

    Counting runs on a deep copy in eval mode under ``torch.no_grad()``; `model` is not
    modified. Shared modules are reported once (first name), with the MACs of all calls.
    """
    args = args if isinstance(args, tuple) else (args,)
    kwargs = kwargs or {}
    work = _deepcopy(model)
    by_name = dict(work.named_modules(remove_duplicate=False))
    if leaves is None:
        names = [n for n, m in work.named_modules() if _is_leaf(m)]
    else:
        names = list(dict.fromkeys(leaves))
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"not module names of the model: {unknown}")

    units: dict[int, _Unit] = {}
    hooked: dict[int, nn.Module] = {}

    def add(m: nn.Module) -> _Unit:
        if id(m) not in units:
            units[id(m)] = _Unit(leaf=_is_leaf(m))
            hooked[id(m)] = m
        return units[id(m)]

    for name in names:
        m = by_name[name]
        parts = _units(m)
        for part in parts:
            add(part)
        if parts != [m]:
            add(m).children = parts

    def hook(m: nn.Module, h_args: tuple, h_kwargs: dict, output: Any) -> None:
        unit = units[id(m)]
        unit.calls += 1
        if unit.children or unit.error is not None:
            return
        # resolved at call time: lazy modules change class on their first call
        unit.fn = counter_for(m, for_non_leaf=not unit.leaf)
        if unit.fn is None:
            return
        try:
            with _quiet():
                unit.fn(m, _inputs(m, h_args, h_kwargs), output)
        except Exception as exc:
            unit.error = exc

    handles = []
    try:
        work.eval()
        for m in hooked.values():
            with contextlib.suppress(AttributeError):
                delattr(m, "total_ops")  # a leftover of an earlier thop run (on the copy)
            m.register_buffer("total_ops", torch.zeros(1, dtype=torch.float64))
            handles.append(m.register_forward_hook(hook, with_kwargs=True))
        _run(work, args, kwargs)
    finally:
        for h in handles:
            h.remove()

    def cost_of(m: nn.Module) -> tuple[float | None, str]:
        unit = units[id(m)]
        if unit.calls == 0:
            return 0.0, "not-called"
        if unit.error is not None:
            fn_name = counter_name(unit.fn)
            _log.warning("MAC counter %s failed on %s: %s", fn_name, type(m).__name__, unit.error)
            return None, counter_name(unit.fn)
        if unit.fn is None:
            return None, "none"
        return float(m.total_ops.item()), counter_name(unit.fn)

    result: dict[str, LayerCost] = {}
    for name in names:
        m = by_name[name]
        unit = units[id(m)]
        if unit.children:
            parts = [(units[id(p)].calls, cost_of(p)[0]) for p in unit.children]
            incomplete = any(macs is None or (calls == 0 and unit.calls) for calls, macs in parts)
            macs = None if incomplete else float(sum(macs or 0.0 for _, macs in parts))
            params = sum(p.numel() for p in m.parameters())
            result[name] = LayerCost(macs, params, "latprof.subtree")
        else:
            macs, counter = cost_of(m)
            params = sum(p.numel() for p in m.parameters(recurse=False))
            result[name] = LayerCost(macs, params, counter)
    return result


def uncounted(costs: dict[str, LayerCost]) -> list[str]:
    """Names whose MACs are not counted (``macs is None``)."""
    return [name for name, cost in costs.items() if cost.macs is None]


def flop_counter_total(model: nn.Module, args: tuple, kwargs: dict | None = None) -> int:
    """Total FLOPs by torch's FlopCounterMode (2 × MACs for matmul/conv; ignores
    elementwise ops and norms), on a deep copy in eval mode under no_grad."""
    from torch.utils.flop_counter import FlopCounterMode

    args = args if isinstance(args, tuple) else (args,)
    work = _deepcopy(model)
    work.eval()
    with torch_imports_undone(), FlopCounterMode(display=False) as counter:
        _run(work, args, kwargs or {})
    return int(counter.get_total_flops())
