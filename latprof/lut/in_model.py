"""Measure a layer table's entries inside the models they come from (`--context models`).

Timed alone, an entry's input and weights are hot from its own previous pass, and ViT's
blocks read 7.6 % higher alone (248.5 against 230.9 µs) than inside the model
(docs/lookup-tables.md). Here each model runs its own forward passes with a timer on every
entry call (the units, and the leaf layers outside them); an entry's sample in a pass is the
mean of its calls in that pass, so the table's sum over a model's calls is the sum of the
calls' times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.lut.jobs import Job
from latprof.lut.measurement import Ready, failed_row, failure_reason, finish_row, prepare
from latprof.lut.model_layers import entry_calls
from latprof.measure import allocator
from latprof.measure.clocks import Clock
from latprof.measure.device import DTYPES, eval_mode, measuring, place
from latprof.measure.hooks import TreeTimer
from latprof.measure.runner import calibrate_bias, calibrate_nesting, time_tree


class CallsChanged(RuntimeError):
    """The timers saw other entry calls than the model's module calls."""


def measure_model(
    model: nn.Module,
    args: tuple,
    kwargs: dict,
    units: Sequence[str],
    jobs: dict[str, Job],
    settings: MeasureSettings,
    clock: Clock,
) -> dict[str, dict[str, Any]]:
    """Rows for the keys of `jobs`, timed in `model`'s own forward passes: `settings.warmup`
    passes, then `settings.trials` timed ones (each after an untimed pass, as `profile` times).

    The keys are those of the model as given; then it and its inputs are moved to the
    settings' device and dtype, in place. Each call is credited its time less the timers'
    calibrated cost (its own, and that of timed calls inside it). MACs and parameters are
    counted on each entry rebuilt alone, as for a table measured alone. Keys the model does
    not call get a failed row saying so; so do all when the model fails to run."""
    calls = entry_calls(model, args, kwargs, units)
    keys = [c.key(settings.batch, settings.dtype) for c in calls]
    rows: dict[str, dict[str, Any]] = {}
    ready: dict[str, dict[str, Any]] = {}  # ok rows waiting for their samples
    for key, job in jobs.items():
        got = prepare(job, replace(settings, warmup=0)) if key in keys else None
        if got is None:
            rows[key] = failed_row(job, settings, "not called by its model in this build")
        elif isinstance(got, Ready):
            ready[key] = got.row  # the rebuilt module is not kept
        else:
            rows[key] = got
    model, args, kwargs = on_device(model, args, kwargs, settings)
    try:
        with measuring(settings.device, settings.tf32, settings.cudnn_benchmark):
            allocator.steady()
            _time_calls(model, args, kwargs, calls, keys, ready, settings, clock)
    except Exception as exc:  # the model's own forward may raise anything
        why = "in its model: " + failure_reason(exc)
        ready = {key: failed_row(jobs[key], settings, why) for key in ready}
    for key, row in ready.items():
        if row["status"] == "ok" and not row["samples_us"]:
            ready[key] = failed_row(jobs[key], settings, "no call of it was timed in its model")
    rows.update(ready)
    return {k: finish_row(v) for k, v in rows.items()}


def _time_calls(
    model: nn.Module,
    args: tuple,
    kwargs: dict,
    calls: list[Any],
    keys: list[str],
    ready: dict[str, dict[str, Any]],
    settings: MeasureSettings,
    clock: Clock,
) -> None:
    """Append each ready key's per-pass mean call time to its row's samples."""
    bias = calibrate_bias(clock, settings.device)
    nest = calibrate_nesting(clock, settings.device)
    modules = list({id(c.module): c.module for c in calls}.values())
    index = {id(m): i for i, m in enumerate(modules)}
    expected = [index[id(c.module)] for c in calls]
    timer = TreeTimer(modules, clock)

    def forward() -> Any:
        return model(*args, **kwargs)

    with eval_mode(model), torch.inference_mode():
        for trial in range(-settings.warmup - 1, settings.trials):
            time_tree(forward, timer)
            times = timer.tree_times(bias, nest)
            outer = [
                (i, total)
                for (i, _, _, depth, _), (_, _, total, *_) in zip(timer.calls, times, strict=True)
                if depth == 0
            ]
            _check_calls([i for i, _ in outer], expected, first=trial == -settings.warmup - 1)
            if trial < 0:
                continue
            per_key: dict[str, list[float]] = {}
            for key, (_, us) in zip(keys, outer, strict=True):
                per_key.setdefault(key, []).append(us)
            for key, us in per_key.items():
                if key in ready:
                    ready[key]["samples_us"].append(max(float(np.mean(us)), 0.0))


def _check_calls(seen: list[int], expected: list[int], first: bool) -> None:
    if seen == expected:
        return
    if first:  # the timers replace forward, so they also see child.forward(x); hooks do not
        raise CallsChanged(
            f"the timers saw {len(seen)} entry calls where the model's module calls were "
            f"{len(expected)}: a layer called through .forward() directly, or a forward that "
            "changes from pass to pass; use --context alone"
        )
    raise CallsChanged(
        f"the model made {len(seen)} entry calls in a pass, not the same {len(expected)} as "
        "in its first; use --context alone"
    )


def on_device(
    model: nn.Module, args: tuple, kwargs: dict, settings: MeasureSettings
) -> tuple[nn.Module, tuple, dict]:
    """The model (moved in place) and its inputs on the settings' device and dtype."""
    dtype = DTYPES[settings.dtype]
    model = model.to(device=settings.device, dtype=dtype)
    return model, place(args, settings.device, dtype), place(kwargs, settings.device, dtype)


def measure(
    todo: Sequence[Job],
    model_keys: dict[str, list[str]],
    units: Sequence[str],
    settings: MeasureSettings,
    clock: Clock,
    on_group: Callable[[list[dict[str, Any]]], None] | None = None,
    load: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows for `todo`, each measured in the first model (of `model_keys`: spec -> its keys
    in call order) that calls it, a model at a time; an entry that fails in one model is
    tried in the next that calls it. `on_group` gets each model's final rows (to save them)
    as soon as they are known. `load(spec)` gives the model's LoadedModel."""
    if load is None:
        from latprof.loading import load_model

        def load(spec: str) -> Any:
            return load_model(spec, batch_size=settings.batch)

    left = {j.key: j for j in todo}
    failed: dict[str, dict[str, Any]] = {}
    specs = list(model_keys)
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        jobs = {k: left[k] for k in dict.fromkeys(model_keys[spec]) if k in left}
        done: list[dict[str, Any]] = []
        if jobs:
            rows = _measure_spec(spec, jobs, units, settings, clock, load)
            for key, row in rows.items():
                if row["status"] == "ok":
                    done.append(row)
                    del left[key]
                    failed.pop(key, None)
                else:
                    failed[key] = row
        later = {k for s in specs[i + 1 :] for k in model_keys[s]}
        for key in [k for k in failed if k not in later]:
            done.append(failed.pop(key))
            del left[key]
        if done:
            out += done
            if on_group:
                on_group(done)
    if left:
        done = [
            failed_row(j, settings, "called by none of the table's models") for j in left.values()
        ]
        out += done
        if on_group:
            on_group(done)
    return out


def _measure_spec(
    spec: str,
    jobs: dict[str, Job],
    units: Sequence[str],
    settings: MeasureSettings,
    clock: Clock,
    load: Callable[[str], Any],
) -> dict[str, dict[str, Any]]:
    try:
        got = load(spec)
        return measure_model(got.module, got.args, got.kwargs, units, jobs, settings, clock)
    except Exception as exc:  # a model file may fail to load, or its probe pass to run
        why = f"{spec} did not load or run: {failure_reason(exc)}"
        return {k: failed_row(j, settings, why) for k, j in jobs.items()}


def estimate(
    todo: Sequence[Job],
    model_keys: dict[str, list[str]],
    units: Sequence[str],
    settings: MeasureSettings,
    clock: Clock,
) -> tuple[int, float, float, list[dict[str, Any]]]:
    """(models, seconds, seconds spent sampling, the rows measured) for measuring `todo` in
    its models: each model that holds some of it is measured for real (after one untimed
    measurement: the first runs cold) with one and with six trials and no warm-up, and the
    difference scaled to the build's warm-up and trials. Saves are not included."""
    seconds = 0.0
    count = 0
    spent = time.perf_counter()
    left = {j.key for j in todo}
    rows: list[dict[str, Any]] = []
    for spec, keys in model_keys.items():
        mine = [j for j in todo if j.key in left and j.key in keys]
        if not mine:
            continue
        left -= {j.key for j in mine}
        count += 1
        took = []
        for trials in (1, 1, 6):
            start = time.perf_counter()
            got = measure(
                mine, {spec: keys}, units, replace(settings, warmup=0, trials=trials), clock
            )
            took.append(time.perf_counter() - start)
        rows += got
        per_pass = max((took[2] - took[1]) / 5, 0.0)
        seconds += max(took[1] - per_pass, 0.0) + per_pass * (settings.warmup + settings.trials)
    return count, seconds, time.perf_counter() - spent, rows
