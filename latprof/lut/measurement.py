"""How entries are measured alone: build, place, warm up, count MACs, time round-robin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.lut.jobs import Job
from latprof.macs import count_layer_costs
from latprof.measure import allocator
from latprof.measure.clocks import Clock
from latprof.measure.device import DTYPES, measuring, place
from latprof.measure.runner import time_plain
from latprof.stats import summarize

Tick = Callable[[int, int], None]
"""Progress of a loop: (done, total)."""


def failed_row(job: Job, settings: MeasureSettings, reason: str) -> dict[str, Any]:
    return {
        **job.columns,
        "key": job.key,
        "batch": settings.batch,
        "dtype": settings.dtype,
        "status": "failed",
        "error": reason,
        "samples_us": [],
        "n": 0,
    }


def failure_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@dataclass
class Ready:
    """A job built, placed, warmed up and counted, with the row its samples go into."""

    job: Job
    module: nn.Module
    args: tuple
    row: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def prepare(job: Job, settings: MeasureSettings) -> Ready | dict[str, Any]:
    """Build, place and warm up one job alone and count its MACs; a failed row on error."""
    try:
        module, args, *rest = job.make()
        kwargs = rest[0] if rest else {}
        module = module.to(device=settings.device, dtype=DTYPES[settings.dtype]).eval()
        args = place(args, settings.device, DTYPES[settings.dtype])
        kwargs = place(kwargs, settings.device, DTYPES[settings.dtype])
        with torch.inference_mode():
            for _ in range(settings.warmup):
                module(*args, **kwargs)
        cost = count_layer_costs(module, args, kwargs, leaves=[""])[""]
    except Exception as exc:  # any op may fail to build or run at a shape
        return failed_row(job, settings, failure_reason(exc))
    row = {
        **job.columns,
        "key": job.key,
        "batch": settings.batch,
        "dtype": settings.dtype,
        "macs": cost.macs,
        "params": cost.params,
        "status": "ok",
        "error": "",
        "samples_us": [],
    }
    return Ready(job, module, args, row, kwargs)


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    """Fill an ok row's statistics from its samples."""
    if row["status"] == "ok":
        s = summarize(row["samples_us"])
        row.update(
            time_us_median=s.median,
            time_us_mean=s.mean,
            time_us_std=s.std,
            time_us_min=s.min,
            time_us_p10=s.p10,
            time_us_iqr=s.iqr,
            n=s.n,
            outliers=s.outliers,
            noisy=s.noisy,
        )
    return row


def measure_jobs(jobs: Sequence[Job], settings: MeasureSettings, clock: Clock) -> list[dict]:
    """Measure a batch alone: build and warm every job, then time them round-robin
    (A B C A B C) so drift spreads over all entries and each is timed right after a
    different block."""
    with measuring(settings.device, settings.tf32, settings.cudnn_benchmark):
        allocator.steady()
        rows: dict[str, dict[str, Any]] = {}
        ready: list[Ready] = []
        for job in jobs:
            got = prepare(job, settings)
            if isinstance(got, Ready):
                ready.append(got)
                rows[job.key] = got.row
            else:
                rows[job.key] = got
        with torch.inference_mode():
            for _ in range(settings.trials):
                for r in ready:
                    if rows[r.job.key]["status"] != "ok":
                        continue
                    try:
                        r.row["samples_us"].append(
                            time_plain(lambda m=r.module, a=r.args, k=r.kwargs: m(*a, **k), clock)
                        )
                    except Exception as exc:
                        rows[r.job.key] = failed_row(r.job, settings, failure_reason(exc))
        return [finish_row(rows[j.key]) for j in jobs]
