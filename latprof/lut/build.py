"""A table build: measure every job not yet in the file, save atomically in batches, resume;
estimate a build's time (--dry-run)."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latprof.errors import UsageError
from latprof.lut import in_network
from latprof.lut.jobs import Job, cost_proxy
from latprof.lut.measurement import MeasureSettings, Tick, measure_jobs
from latprof.lut.table import OLDER_DEFAULTS, LatencyTable
from latprof.measure.clocks import Clock, clock_for


@dataclass
class BuildResult:
    measured: int
    reused: int
    failed: list[str]
    noisy: list[str]


def chunks(items: Sequence[Job], size: int) -> Iterator[Sequence[Job]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def open_table(
    out: Path, meta: dict[str, Any], resume: bool, remeasure_noisy: bool = False
) -> LatencyTable:
    """A new table, or the existing one when resuming (which must match `meta`)."""
    if out.exists():
        if not resume:
            raise UsageError(
                f"{out} already exists; pass --resume to continue it, or choose another -o"
            )
        table = LatencyTable.load(out)
        diffs = table.differences(meta)
        had, want = table.meta.get("models"), meta.get("models")
        if diffs and table.meta.get("source") == "models" and had != want:
            raise UsageError(
                f"--resume: {out} is a layer table of {', '.join(had or [])}, not of "
                f"{', '.join(want or [])}; a layer table keeps the models it was built for: "
                "build one of all the models with a new -o (or predict with --measure-misses)"
            )
        if diffs:
            options = {**OLDER_DEFAULTS, **dict.fromkeys(("warmup", "trials"))}
            how = {
                name: table.meta.get(name) or default
                for name, default in options.items()
                if any(d.startswith(f"{name}:") for d in diffs)
            }
            hint = " ".join(f"--{name} {value}" for name, value in how.items())
            fix = f"to continue it pass {hint}" if len(how) == len(diffs) else "use a new -o"
            raise UsageError(
                f"--resume: {out} was built for another space or environment "
                f"({'; '.join(diffs)}); {fix}"
            )
        if remeasure_noisy:
            for key in [k for k, r in table.rows.items() if remeasured(r)]:
                del table.rows[key]
        return table
    return LatencyTable(dict(meta))


def remeasured(row: dict[str, Any]) -> bool:
    """Whether --remeasure-noisy measures this entry again: noisy or failed."""
    return bool(row["noisy"]) or row["status"] != "ok"


def build(
    jobs: Sequence[Job],
    settings: MeasureSettings,
    out: Path,
    meta: dict[str, Any],
    *,
    resume: bool = False,
    remeasure_noisy: bool = False,
    clock: Clock | None = None,
    progress: Tick | None = None,
    slots: Sequence[Sequence[Job]] | None = None,
) -> BuildResult:
    """Measure every job not yet in `out`, saving atomically after each batch. With
    `slots` (the jobs each slot of a space can hold, in order) entries are measured in
    context networks (latprof.lut.in_network); with `meta["context"]` "models" in the
    models of `meta["model_keys"]` (latprof.lut.in_model); else alone."""
    table = open_table(out, meta, resume, remeasure_noisy)
    todo = [j for j in jobs if j.key not in table.rows]
    reused = len(jobs) - len(todo)
    clock = clock or clock_for(settings.device)
    done = 0
    if progress:
        progress(0, len(todo))

    def save(rows: list[dict[str, Any]]) -> None:
        nonlocal done
        for row in rows:
            table.add(row)
        table.save(out)
        done += len(rows)
        if progress:
            progress(done, len(todo))

    if slots is not None and todo:
        in_network.measure(todo, slots, settings, clock, on_group=save)
    elif meta.get("context") == "models" and todo:
        from latprof.lut import in_model

        model_keys, units = meta["model_keys"], meta.get("units") or []
        in_model.measure(todo, model_keys, units, settings, clock, on_group=save)
    else:
        for batch in chunks(todo, settings.flush_every):
            save(measure_jobs(batch, settings, clock))
    if not todo and not out.exists():
        table.save(out)
    keys = {j.key for j in jobs}
    rows = [r for k, r in table.rows.items() if k in keys]
    return BuildResult(
        measured=len(todo),
        reused=reused,
        failed=[f"{r['key']}: {r['error']}" for r in rows if r["status"] != "ok"],
        noisy=[r["key"] for r in rows if r["status"] == "ok" and r["noisy"]],
    )


@dataclass(frozen=True)
class BuildEstimate:
    """A build's expected time, extrapolated from a few sample entries measured for real."""

    entries: int
    seconds: float
    sampled: list[str]  # keys of the sample entries, cheapest first
    sample_s: float  # wall time spent measuring the samples
    per_entry_s: float  # per entry beyond its passes: build, MAC count, statistics
    passes_s: float  # every entry's warm-up and timed passes
    saves_s: float  # writing the table after each batch of flush_every entries
    by_proxy: bool  # whether samples were scaled by cost_proxy (else by count)
    failed: list[str] = field(default_factory=list)  # "key: error" of samples not built
    unestimated: int = 0  # entries of the failed samples' groups: no passes counted for them


def save_times(rows: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[float, float]:
    """Seconds of the first and of a later save of a table holding `rows`."""
    table = LatencyTable(dict(meta))
    for row in rows:
        table.add(row)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            start = time.perf_counter()
            table.save(Path(tmp) / "estimate.parquet")
            times.append(time.perf_counter() - start)
    return times[0], times[1]


def estimate_build(
    jobs: Sequence[Job],
    settings: MeasureSettings,
    clock: Clock | None = None,
    samples: int = 5,
    meta: dict[str, Any] | None = None,
) -> BuildEstimate:
    """Estimate how long `build` takes for `jobs` by measuring a few of them for real.

    Jobs are sorted by cost_proxy (a unit's job brings its own: its leaves' proxies summed),
    or kept in order when a proxy is unknown, and cut into `samples` equal strata; the middle
    job of each is measured the way `build` measures (same warm-up and trials, interleaved).
    Each stratum's passes are its sample's pass time x its size x (mean proxy / sample
    proxy); on top come the per-entry overhead seen while measuring the samples (build, MAC
    count) and the saves. A sample that cannot be built (or run) gives its stratum no pass
    time: `failed` and `unestimated` say so.
    """
    n = len(jobs)
    if n == 0:
        return BuildEstimate(0, 0.0, [], 0.0, 0.0, 0.0, 0.0, False)
    proxies = [cost_proxy(j.columns) if j.cost is None else j.cost for j in jobs]
    by_proxy = all(p is not None for p in proxies)
    weights = [p or 0.0 for p in proxies] if by_proxy else [0.0] * n
    order = sorted(range(n), key=lambda i: (weights[i], i))
    k = max(1, min(samples, n))
    strata = [order[round(s * n / k) : round((s + 1) * n / k)] for s in range(k)]
    picks = [stratum[len(stratum) // 2] for stratum in strata]
    clock = clock or clock_for(settings.device)

    # bring the process to the state a build is in after its first entries: the costliest
    # entry's tensors grow the heap to their size, so later passes stop page-faulting
    # (in a fresh process a 112x112 block measured first runs 2-4x slower)
    measure_jobs([jobs[order[-1]]], replace(settings, warmup=1, trials=1), clock)
    start = time.perf_counter()
    rows = measure_jobs([jobs[i] for i in picks], settings, clock)
    sample_s = time.perf_counter() - start

    passes = settings.warmup + settings.trials
    pass_s = [r["time_us_mean"] / 1e6 if r["status"] == "ok" else 0.0 for r in rows]
    per_entry_s = max(0.0, (sample_s - passes * sum(pass_s)) / k)
    passes_s = 0.0
    for stratum, pick, t in zip(strata, picks, pass_s, strict=True):
        scale = 1.0
        if by_proxy and weights[pick] > 0:
            scale = sum(weights[i] for i in stratum) / len(stratum) / weights[pick]
        passes_s += passes * t * len(stratum) * scale
    first_save, later_save = save_times(rows, meta or {"kind": "lut"})
    saves_s = first_save + (math.ceil(n / settings.flush_every) - 1) * later_save
    failed = [(stratum, r) for stratum, r in zip(strata, rows, strict=True) if r["status"] != "ok"]
    return BuildEstimate(
        entries=n,
        seconds=n * per_entry_s + passes_s + saves_s,
        sampled=[jobs[i].key for i in picks],
        sample_s=sample_s,
        per_entry_s=per_entry_s,
        passes_s=passes_s,
        saves_s=saves_s,
        by_proxy=by_proxy,
        failed=[f"{r['key']}: {r['error']}" for _, r in failed],
        unestimated=sum(len(stratum) for stratum, _ in failed),
    )
