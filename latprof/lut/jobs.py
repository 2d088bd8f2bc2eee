"""What to measure: jobs (key, descriptive columns, how to build) for space entries and model
layers; shards; a cost proxy per job for time estimates."""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from latprof.errors import UsageError
from latprof.measure.device import random_input
from latprof.space.ops import OPS


@dataclass(frozen=True)
class Job:
    """One entry to measure: its key, its descriptive columns and how to build it: `make`
    returns the module and its positional arguments, and for units also its keyword
    arguments; `cost`, when known, replaces cost_proxy(columns) in time estimates."""

    key: str
    columns: dict[str, Any]
    make: Callable[[], tuple[nn.Module, tuple] | tuple[nn.Module, tuple, dict[str, Any]]]
    cost: float | None = None


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' with 0 <= I < N."""
    if text is None:
        return None
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: write I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text!r}: need N >= 1 and 0 <= I < N (I counts from 0)")
    return index, count


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a stable hash of the key."""
    if shard is None:
        return True
    digest = int(hashlib.sha1(key.encode()).hexdigest()[:12], 16)
    return digest % shard[1] == shard[0]


SHAPE_FIELDS = ("op", "kernel", "stride", "mid", "se", "act", "dilation", "c_in", "c_out", "h", "w")
ELEMENT_WEIGHT = 16
"""In cost_proxy, one tensor element read or written counts as this many MACs: on CPU,
depthwise convs, BN and activations are bound by memory traffic, not by arithmetic."""


def _elements(shape_text: str) -> int | None:
    """Total elements of 'AxBxC' or several such shapes separated by commas."""
    try:
        return sum(math.prod(int(d) for d in s.split("x")) for s in shape_text.split(","))
    except ValueError:
        return None


def cost_proxy(columns: dict[str, Any]) -> float | None:
    """Rough relative cost of one forward pass of an entry, from its columns alone:
    MACs + ELEMENT_WEIGHT x tensor elements read and written. None when unknown."""
    get = columns.get
    op = OPS.get(str(get("op")))
    if op is not None:
        shape = SimpleNamespace(**{f: get(f) or 0 for f in SHAPE_FIELDS})
        shape.kernel, shape.stride = shape.kernel or 1, shape.stride or 1
        macs, elems = op.cost(shape)
        return float(macs + ELEMENT_WEIGHT * elems)
    # a model's leaf layer: its input shape, and MACs for convs and linears
    k, s = get("kernel") or 1, get("stride") or 1
    ci, co, h, w = get("c_in") or 0, get("c_out") or 0, get("h") or 0, get("w") or 0
    total = _elements(str(get("input_shape") or ""))
    if not total:
        return None
    groups = re.search(r"groups=(\d+)", str(get("signature") or ""))
    if get("op") == "Conv2d" and h and w:
        out = co * math.ceil(h / s) * math.ceil(w / s)
        macs = k * k * ci * out // (int(groups.group(1)) if groups else 1)
    elif get("op") == "Linear" and ci:
        macs = total // ci * co
    else:
        macs = 0
    elems = 2 * total
    return float(macs + ELEMENT_WEIGHT * elems)


def space_jobs(space: Any, batch: int, dtype: str, width_step: int = 1) -> list[Job]:
    """Jobs for every entry of a search space."""
    return entry_jobs(space.entries(width_step), batch, dtype)


def entry_jobs(entries: Iterable[Any], batch: int, dtype: str) -> list[Job]:
    """Jobs for the given space entries (e.g. only those some architectures use)."""
    jobs = []
    for entry in entries:
        shape = entry.input_shape(batch)
        jobs.append(
            Job(
                key=entry.key(batch, dtype),
                columns={
                    **entry.to_dict(),
                    "signature": "",
                    "input_shape": "x".join(map(str, shape)),
                },
                make=lambda e=entry, s=shape: (e.build(), (random_input(*s),)),
            )
        )
    return jobs


def layer_columns(module: nn.Module, shapes: list[tuple[tuple[int, ...], torch.dtype]]) -> dict:
    """The descriptive columns of one leaf layer called on tensors of `shapes`."""
    first = shapes[0][0] if shapes else ()

    def get(name: str) -> int:
        value = getattr(module, name, 0)
        value = value[0] if isinstance(value, tuple) else value
        return int(value) if isinstance(value, int) else 0

    return {
        "op": type(module).__name__,
        "kernel": get("kernel_size"),
        "stride": get("stride"),
        "mid": 0,
        "se": 0,
        "act": "",
        "dilation": get("dilation") or 1,
        "c_in": get("in_channels") or get("in_features") or (first[1] if len(first) > 1 else 0),
        "c_out": get("out_channels") or get("out_features"),
        "h": first[2] if len(first) == 4 else 0,
        "w": first[3] if len(first) == 4 else 0,
        "signature": module.extra_repr(),
        "input_shape": ",".join("x".join(map(str, s)) for s, _ in shapes),
    }


def layer_job(
    module: nn.Module, shapes: list[tuple[tuple[int, ...], torch.dtype]], batch: int, dtype: str
) -> Job:
    """A job timing one leaf layer alone at the input shapes it saw in its model."""
    columns = layer_columns(module, shapes)
    clone = copy.deepcopy(module)

    def make() -> tuple[nn.Module, tuple]:
        args = tuple(
            random_input(*s) if d.is_floating_point else torch.zeros(*s, dtype=d) for s, d in shapes
        )
        return copy.deepcopy(clone), args

    return Job(job_key(columns, batch, dtype), columns, make)


def job_key(columns: dict[str, Any], batch: int, dtype: str) -> str:
    """A layer's or unit's key: op|signature|input shapes|bBATCH|DTYPE."""
    return f"{columns['op']}|{columns['signature']}|{columns['input_shape']}|b{batch}|{dtype}"


# ---------------------------------------------------------------------- units


@dataclass(frozen=True)
class TensorSpec:
    """A tensor argument of a recorded call: the `index`-th distinct tensor of the call (one
    tensor passed twice, as in self-attention's ``attn(x, x, x)``, is one spec), rebuilt as
    random values (floating point) or zeros (integers, booleans) of its shape and dtype."""

    index: int
    shape: tuple[int, ...]
    dtype: torch.dtype

    def build(self) -> torch.Tensor:
        if self.dtype.is_floating_point:
            return random_input(*self.shape, dtype=self.dtype)
        return torch.zeros(*self.shape, dtype=self.dtype)

    def text(self) -> str:
        """'T0' for a floating-point tensor (cast to the table's dtype), else 'T0:DTYPE'."""
        if self.dtype.is_floating_point:
            return f"T{self.index}"
        return f"T{self.index}:{str(self.dtype).split('.')[-1]}"


PLAIN = (type(None), bool, int, float, str, torch.dtype)
"""Non-tensor argument values a unit's call is replayed with (and keyed by)."""


class UnreplayableError(TypeError):
    """A call argument that is neither a tensor nor a plain value (nor a nest of them)."""


def spec_of(value: Any, seen: dict[int, TensorSpec] | None = None) -> Any:
    """`value` with every tensor replaced by its TensorSpec (tuples, lists and dicts
    followed; a tensor met again gets the same spec); UnreplayableError for anything else
    that is not a plain value."""
    seen = {} if seen is None else seen
    if isinstance(value, torch.Tensor):
        if id(value) not in seen:
            seen[id(value)] = TensorSpec(len(seen), tuple(value.shape), value.dtype)
        return seen[id(value)]
    if type(value) in (tuple, list):
        return type(value)(spec_of(v, seen) for v in value)
    if type(value) is dict:
        return {k: spec_of(v, seen) for k, v in value.items()}
    if isinstance(value, PLAIN):
        return value
    raise UnreplayableError(type(value).__name__)


def rebuild(spec: Any, built: dict[int, torch.Tensor] | None = None) -> Any:
    """Fresh tensors in place of the TensorSpecs of `spec` (one per distinct tensor)."""
    built = {} if built is None else built
    if isinstance(spec, TensorSpec):
        if spec.index not in built:
            built[spec.index] = spec.build()
        return built[spec.index]
    if type(spec) in (tuple, list):
        return type(spec)(rebuild(v, built) for v in spec)
    if type(spec) is dict:
        return {k: rebuild(v, built) for k, v in spec.items()}
    return spec


def tensor_specs(spec: Any) -> list[TensorSpec]:
    """The TensorSpecs of `spec`, in argument order."""
    if isinstance(spec, TensorSpec):
        return [spec]
    if type(spec) in (tuple, list):
        return [t for v in spec for t in tensor_specs(v)]
    if type(spec) is dict:
        return [t for v in spec.values() for t in tensor_specs(v)]
    return []


def call_text(args: tuple, kwargs: dict[str, Any]) -> str:
    """'(T0, T0, T0, need_weights=False)': a call's arguments, tensors written as T and
    their index (the same tensor, the same index)."""

    def text(v: Any) -> str:
        if isinstance(v, TensorSpec):
            return v.text()
        if type(v) in (tuple, list):
            inner = ", ".join(text(x) for x in v)
            if type(v) is list:
                return f"[{inner}]"
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        if type(v) is dict:
            return "{" + ", ".join(f"{k!r}: {text(x)}" for k, x in v.items()) + "}"
        return repr(v)

    parts = [text(a) for a in args] + [f"{k}={text(v)}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"


def _plain_attribute(value: Any) -> bool:
    if type(value) in (tuple, list):
        return all(_plain_attribute(v) for v in value)
    return isinstance(value, PLAIN)


def structure_digest(module: nn.Module) -> str:
    """12 hex digits of SHA-256 over what configures a module as a whole: every submodule's
    name, class, extra_repr and plain attributes (e.g. MultiheadAttention's num_heads and
    batch_first, which its repr leaves out), and every parameter's and buffer's name, shape
    and dtype. Modules configured alike share it; weights' values do not count."""
    lines = []
    for name, m in module.named_modules():
        attrs = {
            k: v for k, v in sorted(vars(m).items()) if k != "training" and _plain_attribute(v)
        }
        lines.append(f"{name}:{type(m).__qualname__}({m.extra_repr()}){attrs!r}")
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        lines.append(f"{name}:{tuple(t.shape)}:{t.dtype}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def unit_job(
    module: nn.Module,
    args: tuple,
    kwargs: dict[str, Any],
    batch: int,
    dtype: str,
    cost: float | None = None,
) -> Job:
    """A job timing a whole module (a unit: its children are not entries of their own) alone,
    called as it was in its model: `args` and `kwargs` are the call's arguments with tensors
    as TensorSpecs (spec_of); plain values are replayed as they were. Keyed by class,
    structure digest, call and input shapes, so differently configured modules of one class
    (or one module called differently) get entries of their own."""
    columns = unit_columns(module, args, kwargs)
    clone = copy.deepcopy(module)

    def make() -> tuple[nn.Module, tuple, dict[str, Any]]:
        args_now, kwargs_now = rebuild((args, kwargs))
        return copy.deepcopy(clone), args_now, kwargs_now

    return Job(job_key(columns, batch, dtype), columns, make, cost)


def unit_columns(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The descriptive columns of a unit called with `args`/`kwargs` (tensors as TensorSpecs)."""
    tensors = tensor_specs((args, kwargs))
    first = tensors[0].shape if tensors else ()
    digest, call = structure_digest(module), call_text(args, kwargs)
    return {
        "op": type(module).__name__,
        "kernel": 0,
        "stride": 0,
        "mid": 0,
        "se": 0,
        "act": "",
        "dilation": 1,
        "c_in": first[1] if len(first) > 1 else 0,
        "c_out": 0,
        "h": first[2] if len(first) == 4 else 0,
        "w": first[3] if len(first) == 4 else 0,
        "signature": f"unit {digest} {call}",
        "input_shape": ",".join("x".join(map(str, t.shape)) for t in tensors),
    }
