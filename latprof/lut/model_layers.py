"""Layer-level jobs: every distinct leaf layer (class, hyper-parameters, input shape) of models,
and every distinct unit: a module of a class named with `--unit`, timed as a whole (class,
structure, call), whose children are not entries of their own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from latprof.errors import LatprofError, UsageError, is_out_of_memory, out_of_memory
from latprof.loading import load_model
from latprof.lut.jobs import (
    Job,
    UnreplayableError,
    cost_proxy,
    job_key,
    layer_columns,
    layer_job,
    spec_of,
    unit_columns,
    unit_job,
)
from latprof.measure.device import eval_mode
from latprof.measure.hooks import ROOT_NAME, find_leaves, hooked
from latprof.profiler import explain_failure

INPUT_HINT = "check the model's inputs (input_shape or example_input in a model file; --batch-size)"

Shapes = list[tuple[tuple[int, ...], torch.dtype]]


@dataclass
class Call:
    """One call that becomes an entry: a leaf layer's (`shapes`: its tensor inputs) or a
    unit's (also `args`/`kwargs`: the call with tensors as TensorSpecs, and `inner`: the
    leaf calls it made, for a cost estimate)."""

    module: nn.Module
    shapes: Shapes
    args: tuple | None = None
    kwargs: dict[str, Any] | None = None
    inner: list[tuple[nn.Module, Shapes]] = field(default_factory=list)

    def key(self, batch: int, dtype: str) -> str:
        """The call's entry key, without building its job (a job copies its module)."""
        if self.args is None:
            return job_key(layer_columns(self.module, self.shapes), batch, dtype)
        return job_key(unit_columns(self.module, self.args, self.kwargs or {}), batch, dtype)

    def job(self, batch: int, dtype: str) -> Job:
        """The call's table entry: a leaf layer's job, or a unit's."""
        if self.args is None:
            return layer_job(self.module, self.shapes, batch, dtype)
        proxies = [cost_proxy(layer_columns(m, s)) for m, s in self.inner]
        known = bool(proxies) and all(p is not None for p in proxies)
        cost = sum(p or 0.0 for p in proxies) if known else None
        return unit_job(self.module, self.args, self.kwargs or {}, batch, dtype, cost)


def entry_calls(
    model: nn.Module, args: tuple, kwargs: dict, units: Sequence[str] = ()
) -> list[Call]:
    """Every call of one forward pass that becomes an entry, in call order: units (modules
    whose class name is in `units`) and the leaf calls made outside any unit."""
    wanted = set(units)
    names = {id(m): n or ROOT_NAME for n, m in model.named_modules()}
    calls: list[Call] = []
    depth = 0  # how many unit calls are running

    def shapes_of(a: tuple, k: dict) -> Shapes:
        return [(tuple(t.shape), t.dtype) for t in (*a, *k.values()) if isinstance(t, torch.Tensor)]

    def leaf_pre(module: nn.Module, a: Any, k: Any) -> None:
        if depth == 0:
            calls.append(Call(module, shapes_of(a, k)))
        else:
            calls[-1].inner.append((module, shapes_of(a, k)))

    def unit_pre(module: nn.Module, a: Any, k: Any) -> None:
        nonlocal depth
        if depth == 0:
            try:
                spec = spec_of((tuple(a), dict(k)))
            except UnreplayableError as exc:
                raise UsageError(
                    f"--unit {type(module).__name__}: {names.get(id(module), '?')} is called "
                    f"with a {exc} argument; a unit is replayed with tensors and plain values "
                    "(None, numbers, strings, dtypes) only"
                ) from None
            calls.append(Call(module, shapes_of(a, k), *spec))
        depth += 1

    def unit_post(*_: Any) -> None:
        nonlocal depth
        depth -= 1

    def nothing(*_: Any) -> None:
        pass

    modules = dict(model.named_modules())
    unit_pairs = [(m, unit_pre, unit_post) for m in modules.values() if type(m).__name__ in wanted]
    leaf_pairs = [
        (m, leaf_pre, nothing) for _, m in find_leaves(model) if type(m).__name__ not in wanted
    ]
    try:
        with eval_mode(model), hooked(unit_pairs + leaf_pairs), torch.inference_mode():
            model(*args, **kwargs)
    except LatprofError:
        raise
    except Exception as exc:  # the user's forward may raise anything
        if is_out_of_memory(exc):
            raise out_of_memory(exc, "in the model's forward") from exc
        failure = explain_failure(model, args, kwargs, INPUT_HINT)
        if failure is None:  # the model runs: the failure was ours, not the model's
            raise
        raise failure from exc
    return calls


def check_units(units: Sequence[str], models: dict[str, nn.Module]) -> None:
    """UsageError naming the unit classes no model has, and the classes they do have
    (those with children first)."""
    present: dict[str, bool] = {}  # class name -> has children
    for model in models.values():
        for module in model.modules():
            has_children = next(module.children(), None) is not None
            name = type(module).__name__
            present[name] = present.get(name, False) or has_children
    missing = [u for u in units if u not in present]
    if missing:
        inner = [c for c, kids in present.items() if kids]
        leaves = [c for c, kids in present.items() if not kids]
        raise UsageError(
            f"--unit {', '.join(missing)}: no module of that class in {', '.join(models)}; "
            f"classes with children: {', '.join(inner) or 'none'}; "
            f"leaf classes: {', '.join(leaves) or 'none'}"
        )


def model_jobs(
    specs: list[str], batch: int, dtype: str, units: Sequence[str] = ()
) -> tuple[list[Job], dict[str, list[str]]]:
    """Distinct leaf-layer and unit jobs across models, and each model's keys in call order."""
    loaded = {spec: load_model(spec, batch_size=batch) for spec in specs}
    check_units(units, {spec: got.module for spec, got in loaded.items()})
    jobs: dict[str, Job] = {}
    per_model: dict[str, list[str]] = {}
    for spec, got in loaded.items():
        keys = []
        for call in entry_calls(got.module, got.args, got.kwargs, units):
            job = call.job(batch, dtype)
            jobs.setdefault(job.key, job)
            keys.append(job.key)
        per_model[spec] = keys
    return list(jobs.values()), per_model
