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
from latprof.space.ops import OPS


@dataclass(frozen=True)
class Job:
    """One entry to measure: its key, its descriptive columns and how to build it."""

    key: str
    columns: dict[str, Any]
    make: Callable[[], tuple[nn.Module, tuple]]


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
                make=lambda e=entry, s=shape: (e.build(), (torch.randn(*s),)),
            )
        )
    return jobs


def layer_job(
    module: nn.Module, shapes: list[tuple[tuple[int, ...], torch.dtype]], batch: int, dtype: str
) -> Job:
    """A job timing one leaf layer alone at the input shapes it saw in its model."""
    category = type(module).__name__
    signature = module.extra_repr()
    text = ",".join("x".join(map(str, s)) for s, _ in shapes)
    first = shapes[0][0] if shapes else ()

    def get(name: str) -> int:
        value = getattr(module, name, 0)
        value = value[0] if isinstance(value, tuple) else value
        return int(value) if isinstance(value, int) else 0

    columns = {
        "op": category,
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
        "signature": signature,
        "input_shape": text,
    }
    clone = copy.deepcopy(module)

    def make() -> tuple[nn.Module, tuple]:
        args = tuple(
            torch.randn(*s) if d.is_floating_point else torch.zeros(*s, dtype=d) for s, d in shapes
        )
        return copy.deepcopy(clone), args

    return Job(f"{category}|{signature}|{text}|b{batch}|{dtype}", columns, make)
