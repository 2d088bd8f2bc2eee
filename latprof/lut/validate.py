"""Validate a lookup table: measure whole networks end to end and compare with its prediction
(seed 004 Table 4: lookup-table latency vs measured latency)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from latprof.errors import UsageError
from latprof.flops import count_layer_costs
from latprof.lut import arch as archmod
from latprof.lut.predict import OnMiss, Prediction, predict_arch, predict_model
from latprof.lut.table import LatencyTable
from latprof.measure import allocator
from latprof.measure.clocks import Clock, clock_for
from latprof.measure.runner import time_plain
from latprof.profiler import DTYPES, eval_mode, place, prepare_model
from latprof.stats import Stats, summarize


@dataclass(frozen=True)
class Settings:
    device: str
    dtype: str
    warmup: int
    trials: int

    @classmethod
    def of(cls, table: LatencyTable, warmup: int | None, trials: int | None) -> Settings:
        m = table.meta
        return cls(
            device=m.get("device") or "cpu",
            dtype=m["dtype"],
            warmup=int(m.get("warmup", 10)) if warmup is None else warmup,
            trials=int(m.get("trials", 20)) if trials is None else trials,
        )


def measure_end_to_end(
    module: nn.Module, args: tuple, kwargs: dict, settings: Settings, clock: Clock | None = None
) -> tuple[Stats, float]:
    """(latency statistics in µs, MACs) of whole forward passes, without any hooks."""
    allocator.steady()
    clock = clock or clock_for(settings.device)
    dtype = DTYPES[settings.dtype]
    module = prepare_model(module, settings.device, dtype)
    args = place(args, settings.device, dtype)
    kwargs = place(kwargs, settings.device, dtype)
    with eval_mode(module), torch.inference_mode():
        macs = count_layer_costs(module, args, kwargs, leaves=[""])[""].macs
        for _ in range(settings.warmup):
            module(*args, **kwargs)
        samples = [
            time_plain(lambda: module(*args, **kwargs), clock) for _ in range(settings.trials)
        ]
    return summarize(samples), float(macs or 0.0)


def row(name: str, pred: Prediction, stats: Stats, macs: float) -> dict[str, Any]:
    """One validation row; error_pct is (predicted - measured) / measured in percent."""
    predicted = pred.total_us if not pred.misses else None
    err = None if predicted is None else 100.0 * (predicted - stats.median) / stats.median
    return {
        "arch": name,
        "measured_us": stats.median,
        "measured_iqr_us": stats.iqr,
        "predicted_us": predicted,
        "error_pct": err,
        "unattributed_us": None if predicted is None else stats.median - predicted,
        "macs": macs,
        "blocks": len(pred.blocks),
        "interpolated": sum(b.source == "interpolated" for b in pred.blocks),
        "misses": len(pred.misses),
        "noisy": stats.noisy,
    }


def validate_arch(
    table: LatencyTable, arch: archmod.Arch, settings: Settings, on_miss: OnMiss = "report"
) -> tuple[dict[str, Any], Prediction]:
    pred = predict_arch(table, arch, on_miss=on_miss)
    module = archmod.build_module(arch)
    shape = archmod.input_shape(arch, None, int(table.meta["batch"]))
    stats, macs = measure_end_to_end(module, (torch.randn(*shape),), {}, settings)
    return row(arch.name, pred, stats, macs), pred


def validate_model(
    table: LatencyTable, spec: str, settings: Settings, on_miss: OnMiss = "report"
) -> tuple[dict[str, Any], Prediction]:
    from latprof.loading import load_model

    loaded = load_model(spec, batch_size=int(table.meta["batch"]))
    pred = predict_model(table, spec, loaded.module, loaded.args, loaded.kwargs, on_miss)
    stats, macs = measure_end_to_end(loaded.module, loaded.args, loaded.kwargs, settings)
    return row(spec, pred, stats, macs), pred


def default_targets(table: LatencyTable) -> list[str]:
    """Every zoo arch of the table's space, or the models a layer table was built from."""
    if table.meta.get("source") == "models":
        return list(table.meta.get("models") or [])
    from latprof.zoo.tfnas_archs import PAPER_ARCHS

    space = table.meta.get("space")
    targets = [f"zoo:{name}" for name, p in PAPER_ARCHS.items() if p.space == space]
    if not targets:
        raise UsageError(
            f"the zoo has no architectures of space {space!r}; name some (arch .json/.toml "
            "files, or --samples N for random ones)"
        )
    return targets


def validate(
    table: LatencyTable,
    targets: list[str | archmod.Arch],
    settings: Settings,
    on_miss: OnMiss = "report",
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per target (arch spec, Arch or MODEL spec), measured in table order."""
    rows = []
    for i, target in enumerate(targets):
        if progress:
            progress(i, len(targets))
        if isinstance(target, archmod.Arch):
            r, _ = validate_arch(table, target, settings, on_miss)
        elif table.meta.get("source") == "models" and not target.endswith((".json", ".toml")):
            r, _ = validate_model(table, target, settings, on_miss)
        else:
            r, _ = validate_arch(table, archmod.load(target), settings, on_miss)
        rows.append(r)
    if progress:
        progress(len(targets), len(targets))
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median and max |error| in percent over the rows that have a prediction."""
    errs = sorted(abs(r["error_pct"]) for r in rows if r["error_pct"] is not None)
    if not errs:
        return {}
    mid = len(errs) // 2
    median = errs[mid] if len(errs) % 2 else (errs[mid - 1] + errs[mid]) / 2
    return {"median_abs_error_pct": median, "max_abs_error_pct": errs[-1], "n": len(errs)}
