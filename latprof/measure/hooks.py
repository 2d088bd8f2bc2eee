"""Leaf discovery, and the instrumentation that times or probes every leaf call.

Everything is undone in `finally`: hooks removed (registered with `with_kwargs=True` /
`always_call=True`), shadowed forwards restored; nothing is left on the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from latprof.measure import ROOT_NAME
from latprof.measure.clocks import Clock


def find_leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, de-duplicated by identity, in registration order.

    A model without any children is itself the only leaf, named `(model)`. TorchScript
    submodules accept neither hooks nor a new forward: they are left out (their time is
    unattributed; see `scripted_modules`).
    """
    return [
        (name or ROOT_NAME, module)
        for name, module in model.named_modules()
        if next(module.children(), None) is None and not is_scripted(module)
    ]


def find_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every module, the root included, de-duplicated by identity, in registration order;
    TorchScript submodules and everything inside them are left out."""
    out: list[tuple[str, nn.Module]] = []
    scripted = scripted_modules(model)
    for name, module in model.named_modules():
        if is_scripted(module) or any(name.startswith(s + ".") for s in scripted):
            continue
        out.append((name or ROOT_NAME, module))
    return out


def is_scripted(module: nn.Module) -> bool:
    return isinstance(module, torch.jit.ScriptModule)


def scripted_modules(model: nn.Module) -> list[str]:
    """Qualified names of outermost TorchScript submodules (not instrumented)."""
    names: list[str] = []
    for name, module in model.named_modules():
        if is_scripted(module) and not any(name.startswith(n + ".") for n in names):
            names.append(name)
    return names


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


@contextmanager
def wrapped_forwards(pairs: list[tuple[nn.Module, Any]]) -> Iterator[None]:
    """Shadow each module's `forward` with the paired function, then restore it exactly.

    Timing through a shadowed forward costs far less per call than forward hooks, which push
    every call off PyTorch's fast path (see docs/benchmarks.md).
    """
    saved: list[tuple[nn.Module, bool, Any]] = []
    try:
        for module, forward in pairs:
            had = "forward" in module.__dict__
            saved.append((module, had, module.__dict__.get("forward")))
            module.forward = forward
        yield
    finally:
        for module, had, previous in reversed(saved):
            if had:
                module.forward = previous
            else:
                del module.forward


class TreeTimer:
    """Times each call of the given modules (leaves, or any modules, nested ones included)
    through a shadowed `forward` (cheapest per call); one list of
    (module, start, end, depth, outermost) per pass, in the order calls end (children before
    parents). `outermost` is False for a call made while the same module is already running
    (recursion), whose time is inside the outer call's total."""

    def __init__(self, modules: list[nn.Module], clock: Clock) -> None:
        self.modules = modules
        self.clock = clock
        self.calls: list[tuple[int, Any, Any, int, bool]] = []
        self._level = [0]
        self._running = [0] * len(modules)
        self._timed: list[tuple[nn.Module, Any]] | None = None

    @contextmanager
    def attached(self) -> Iterator[None]:
        # wrappers are built once and reused: fresh ones run slower on their first pass
        if self._timed is None:
            self._timed = [(m, self._wrapper(i)(m.forward)) for i, m in enumerate(self.modules)]
        with wrapped_forwards(self._timed):
            yield

    def _wrapper(self, index: int) -> Any:
        mark, record, level, running = (
            self.clock.mark,
            self.calls.append,
            self._level,
            self._running,
        )

        def make(forward: Any) -> Any:
            def timed(*args: Any, **kwargs: Any) -> Any:
                outer = running[index]
                running[index] = outer + 1
                level[0] += 1
                start = mark()
                try:
                    return forward(*args, **kwargs)
                finally:
                    # also when the forward raises and a caller catches it: the tree stays whole
                    end = mark()
                    level[0] -= 1
                    running[index] = outer
                    record((index, start, end, level[0], not outer))

            return timed

        return make

    def reset(self) -> None:
        self.calls.clear()
        self._level[0] = 0
        self._running[:] = [0] * len(self._running)

    def tree_times(
        self, bias_us: float, nest_us: float, edges: dict[tuple[int, int], list] | None = None
    ) -> list[tuple[int, float, float, bool, int, int]]:
        """(module, self µs, total µs, outermost, timed children, timed calls below it) for
        every call of the last pass; after clock.finish(). `edges`, when given, adds up for
        each (caller, callee) pair [calls, the callee's totals µs, timed calls below them].

        A call without timed children is credited max(raw - bias, 0), as a leaf. A call with
        children is credited raw - bias - Σ children's raw - children × nest (`nest_us`: what
        each child's timer costs its parent outside the child's own marks; never clamped, so
        noise averages out); its total is its self time plus its children's totals.
        """
        elapsed = self.clock.elapsed_us
        # depth -> [children's raw, calls, totals, modules, calls below them]
        below: dict[int, list[Any]] = {}
        out: list[tuple[int, float, float, bool, int, int]] = []
        for index, start, end, depth, outermost in self.calls:
            raw = elapsed(start, end)
            child_raw, children, child_total, callees, deeper = below.pop(
                depth + 1, (0.0, 0, 0.0, (), 0)
            )
            if children:
                own = raw - bias_us - child_raw - children * nest_us
            else:
                own = max(raw - bias_us, 0.0)
            if edges is not None:
                for callee, callee_total, callee_below in callees:
                    edge = edges.setdefault((index, callee), [0, 0.0, 0])
                    edge[0] += 1
                    edge[1] += callee_total
                    edge[2] += callee_below
            total = own + child_total
            inside = children + deeper  # timed calls within this one
            out.append((index, own, total, outermost, children, inside))
            acc = below.setdefault(depth, [0.0, 0, 0.0, [], 0])
            acc[0] += raw
            acc[1] += 1
            acc[2] += total
            acc[3].append((index, total, inside))
            acc[4] += inside
        return out


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
    """One pass that records each module's shapes at its first call (`order`: first calls,
    parents before children), which leaf failed and which leaf finished last."""

    names: list[str]
    leaves: list[nn.Module]
    input_shapes: list[str] = field(init=False)
    output_shapes: list[str] = field(init=False)
    order: list[int] = field(default_factory=list)
    failed: tuple[str, str] | None = None
    last_finished: str | None = None

    def __post_init__(self) -> None:
        n = len(self.leaves)
        self.input_shapes = [""] * n
        self.output_shapes = [""] * n

    def _wrapper(self, index: int) -> Any:
        name = self.names[index]
        leaf = next(self.leaves[index].children(), None) is None

        def make(forward: Any) -> Any:
            # a shadowed forward, like the timers': it also sees calls of child.forward(x)
            def probed(*args: Any, **kwargs: Any) -> Any:
                shape = ""
                if not self.input_shapes[index]:
                    self.order.append(index)
                    self.input_shapes[index] = shape = shape_of([*args, *kwargs.values()])
                try:
                    out = forward(*args, **kwargs)
                except BaseException:
                    if self.failed is None and leaf:
                        self.failed = (name, shape or shape_of([*args, *kwargs.values()]))
                    raise
                if leaf:
                    self.last_finished = name
                if not self.output_shapes[index]:
                    self.output_shapes[index] = shape_of(out)
                return out

            return probed

        return make

    @contextmanager
    def attached(self) -> Iterator[None]:
        pairs = [(m, self._wrapper(i)(m.forward)) for i, m in enumerate(self.leaves)]
        with wrapped_forwards(pairs):
            yield


class FaultProbe:
    """One pass that counts the page faults inside each leaf (summed over its calls), read
    from `counter` (e.g. allocator.minor_faults) before and after every call."""

    def __init__(self, leaves: list[nn.Module], counter: Callable[[], int]) -> None:
        self.leaves = leaves
        self.counter = counter
        self.faults = [0] * len(leaves)
        self._start: list[int] = []

    def _hooks(self, index: int) -> tuple[Any, Any]:
        def pre(_module: nn.Module, _args: Any, _kwargs: Any) -> None:
            self._start.append(self.counter())

        def post(_module: nn.Module, _args: Any, _kwargs: Any, _out: Any) -> None:
            self.faults[index] += self.counter() - self._start.pop()

        return pre, post

    @contextmanager
    def attached(self) -> Iterator[None]:
        with hooked([(m, *self._hooks(i)) for i, m in enumerate(self.leaves)]):
            yield
