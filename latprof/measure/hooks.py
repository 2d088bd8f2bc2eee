"""Leaf discovery and forward hooks that time every leaf call.

Hooks are registered with `with_kwargs=True` / `always_call=True` and always removed in
`finally`; nothing is stored on the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from latprof.measure.clocks import Clock

ROOT_NAME = "(model)"


def find_leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, de-duplicated by identity, in registration order.

    A model without any children is itself the only leaf, named `(model)`.
    """
    leaves = [
        (name or ROOT_NAME, module)
        for name, module in model.named_modules()
        if next(module.children(), None) is None
    ]
    return leaves


@contextmanager
def hooked(pairs: list[tuple[nn.Module, Any, Any]]) -> Iterator[None]:
    """Register (module, pre_hook, post_hook) triples for the duration of the block."""
    handles = []
    try:
        for module, pre, post in pairs:
            handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(module.register_forward_hook(post, with_kwargs=True, always_call=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


class LeafTimer:
    """Times each call of each leaf with a clock; one list of (leaf, start, end) per pass."""

    def __init__(self, leaves: list[nn.Module], clock: Clock) -> None:
        self.leaves = leaves
        self.clock = clock
        self.calls: list[tuple[int, Any, Any]] = []

    def _hooks(self, index: int) -> tuple[Any, Any]:
        mark = self.clock.mark
        stack: list[Any] = []
        push, pop, record = stack.append, stack.pop, self.calls.append

        def pre(_module: nn.Module, _args: Any, _kwargs: Any) -> None:
            push(mark())

        def post(_module: nn.Module, _args: Any, _kwargs: Any, _out: Any) -> None:
            end = mark()
            record((index, pop(), end))

        return pre, post

    @contextmanager
    def attached(self) -> Iterator[None]:
        pairs = [(m, *self._hooks(i)) for i, m in enumerate(self.leaves)]
        with hooked(pairs):
            yield

    def durations_us(self) -> list[tuple[int, float]]:
        """(leaf index, µs) for every call of the last pass; call after clock.finish()."""
        elapsed = self.clock.elapsed_us
        return [(i, elapsed(s, e)) for i, s, e in self.calls]


def shape_of(value: Any) -> str:
    """Compact shape text of a tensor or a nest of tensors, e.g. '1x3x32x32'."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return "x".join(str(d) for d in shape) or "scalar"
    if isinstance(value, (tuple, list)):
        inner = [shape_of(v) for v in value]
        inner = [s for s in inner if s]
        return "(" + ", ".join(inner) + ")" if len(inner) > 1 else (inner[0] if inner else "")
    if isinstance(value, dict):
        return shape_of(list(value.values()))
    return ""


@dataclass
class ShapeProbe:
    """One pass that records each leaf's calls and shapes, and which leaf failed."""

    names: list[str]
    leaves: list[nn.Module]
    calls: list[int] = field(init=False)
    input_shapes: list[str] = field(init=False)
    output_shapes: list[str] = field(init=False)
    active: list[int] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    failed: tuple[str, str] | None = None
    last_finished: str | None = None

    def __post_init__(self) -> None:
        n = len(self.leaves)
        self.calls = [0] * n
        self.input_shapes = [""] * n
        self.output_shapes = [""] * n

    def _hooks(self, index: int) -> tuple[Any, Any]:
        def pre(_module: nn.Module, args: Any, kwargs: Any) -> None:
            self.active.append(index)
            if not self.input_shapes[index]:
                self.order.append(index)
                self.input_shapes[index] = shape_of([*args, *kwargs.values()])

        def post(_module: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
            self.active.pop()
            if out is None and self.failed is None:
                # always_call hooks see None when the forward raised; only read on failure
                self.failed = (self.names[index], shape_of([*args, *kwargs.values()]))
            self.calls[index] += 1
            self.last_finished = self.names[index]
            if not self.output_shapes[index]:
                self.output_shapes[index] = shape_of(out)

        return pre, post

    @contextmanager
    def attached(self) -> Iterator[None]:
        with hooked([(m, *self._hooks(i)) for i, m in enumerate(self.leaves)]):
            yield
