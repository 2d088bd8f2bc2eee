"""Measure lookup-table entries: warmed up, interleaved, flushed in batches, resumable."""

from __future__ import annotations

import copy
import hashlib
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latprof.errors import UsageError
from latprof.flops import count_layer_costs
from latprof.lut.table import OLDER_DEFAULTS, LatencyTable
from latprof.measure import allocator
from latprof.measure.clocks import Clock, clock_for
from latprof.measure.runner import time_plain
from latprof.profiler import DTYPES, place
from latprof.stats import summarize

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Job:
    """One entry to measure: its key, its descriptive columns and how to build it."""

    key: str
    columns: dict[str, Any]
    make: Callable[[], tuple[nn.Module, tuple]]


@dataclass(frozen=True)
class BuildSettings:
    device: str = "cpu"
    dtype: str = "float32"
    batch: int = 1
    warmup: int = 10
    trials: int = 20
    flush_every: int = 16


@dataclass
class BuildResult:
    measured: int
    reused: int
    failed: list[str]
    noisy: list[str]


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


def _failed(job: Job, settings: BuildSettings, reason: str) -> dict[str, Any]:
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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@dataclass
class Ready:
    """A job built, placed, warmed up and counted, with the row its samples go into."""

    job: Job
    module: nn.Module
    args: tuple
    row: dict[str, Any]


def prepare(job: Job, settings: BuildSettings) -> Ready | dict[str, Any]:
    """Build, place and warm up one job alone and count its MACs; a failed row on error."""
    try:
        module, args = job.make()
        module = module.to(device=settings.device, dtype=DTYPES[settings.dtype]).eval()
        args = place(args, settings.device, DTYPES[settings.dtype])
        with torch.inference_mode():
            for _ in range(settings.warmup):
                module(*args)
        cost = count_layer_costs(module, args, leaves=[""])[""]
    except Exception as exc:  # any op may fail to build or run at a shape
        return _failed(job, settings, _reason(exc))
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
    return Ready(job, module, args, row)


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


def measure_jobs(jobs: Sequence[Job], settings: BuildSettings, clock: Clock) -> list[dict]:
    """Measure a batch alone: build and warm every job, then time them round-robin
    (A B C A B C) so drift spreads over all entries and each is timed right after a
    different block."""
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
                        time_plain(lambda m=r.module, a=r.args: m(*a), clock)
                    )
                except Exception as exc:
                    rows[r.job.key] = _failed(r.job, settings, _reason(exc))
    return [finish_row(rows[j.key]) for j in jobs]


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
        if diffs:
            how = {
                name: table.meta.get(name) or default
                for name, default in OLDER_DEFAULTS.items()
                if any(d.startswith(f"{name}:") for d in diffs)
            }
            hint = " ".join(f"--{name} {value}" for name, value in how.items())
            fix = f"to continue it pass {hint}" if len(how) == len(diffs) else "use a new -o"
            raise UsageError(
                f"--resume: {out} was built for another space or environment "
                f"({'; '.join(diffs)}); {fix}"
            )
        if remeasure_noisy:
            for key in [k for k, r in table.rows.items() if r["noisy"] or r["status"] != "ok"]:
                del table.rows[key]
        return table
    return LatencyTable(dict(meta))


def build(
    jobs: Sequence[Job],
    settings: BuildSettings,
    out: Path,
    meta: dict[str, Any],
    *,
    resume: bool = False,
    remeasure_noisy: bool = False,
    clock: Clock | None = None,
    progress: Progress | None = None,
    slots: Sequence[Sequence[Job]] | None = None,
) -> BuildResult:
    """Measure every job not yet in `out`, saving atomically after each batch. With
    `slots` (the jobs each slot of a space can hold, in order) entries are measured in
    context networks (latprof.lut.context), else alone."""
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
        from latprof.lut import context

        context.measure(todo, slots, settings, clock, on_group=save)
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


# ---------------------------------------------------------------- time estimate (--dry-run)

ELEMENT_WEIGHT = 16
"""In cost_proxy, one tensor element read or written counts as this many MACs: on CPU,
depthwise convs, BN and activations are bound by memory traffic, not by arithmetic."""


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
    op = get("op")
    k, s = get("kernel") or 1, get("stride") or 1
    ci, co, mid, se = get("c_in") or 0, get("c_out") or 0, get("mid") or 0, get("se") or 0
    h, w = get("h") or 0, get("w") or 0
    ho, wo = math.ceil(h / s), math.ceil(w / s)
    x_in, out = ci * h * w, co * ho * wo
    if op in ("conv", "dil_conv"):
        macs, elems = k * k * ci * out, x_in + 2 * out
    elif op == "sep_conv":
        macs, elems = (k * k + co) * ci * ho * wo, x_in + 2 * ci * ho * wo + 2 * out
    elif op == "mbinvres":  # [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project
        expand = mid != ci
        macs = (ci * mid * h * w if expand else 0) + (k * k + co) * mid * ho * wo + 2 * mid * se
        elems = x_in + (2 * mid * h * w if expand else 0) + 2 * mid * ho * wo + 2 * out
        elems += 2 * mid * ho * wo if se else 0
    elif op == "fused_mbconv":  # kxk conv to mid -> [SE] -> 1x1 project; mid = c_in: kxk only
        project = mid != ci
        width = mid if project else co
        macs = k * k * ci * width * ho * wo + (width * out if project else 0) + 2 * width * se
        elems = x_in + 2 * width * ho * wo + (2 * out if project else 0)
        elems += 2 * width * ho * wo if se else 0
    elif op == "identity":
        macs, elems = (ci * out if s != 1 or ci != co else 0), x_in
    elif op == "zero":
        macs, elems = 0, out
    elif op == "pool_fc":
        macs, elems = x_in + ci * co, x_in
    else:  # a model's leaf layer: its input shape, and MACs for convs and linears
        total = _elements(str(get("input_shape") or ""))
        if not total:
            return None
        groups = re.search(r"groups=(\d+)", str(get("signature") or ""))
        if op == "Conv2d" and h and w:
            macs = k * k * ci * out // (int(groups.group(1)) if groups else 1)
        elif op == "Linear" and ci:
            macs = total // ci * co
        else:
            macs = 0
        elems = 2 * total
    return float(macs + ELEMENT_WEIGHT * elems)


def _save_times(rows: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[float, float]:
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
    settings: BuildSettings,
    clock: Clock | None = None,
    samples: int = 5,
    meta: dict[str, Any] | None = None,
) -> BuildEstimate:
    """Estimate how long `build` takes for `jobs` by measuring a few of them for real.

    Jobs are sorted by cost_proxy (or kept in order when a proxy is unknown) and cut into
    `samples` equal strata; the middle job of each is measured the way `build` measures
    (same warm-up and trials, interleaved). Each stratum's passes are its sample's pass
    time x its size x (mean proxy / sample proxy); on top come the per-entry overhead seen
    while measuring the samples (build, MAC count) and the saves.
    """
    n = len(jobs)
    if n == 0:
        return BuildEstimate(0, 0.0, [], 0.0, 0.0, 0.0, 0.0, False)
    proxies = [cost_proxy(j.columns) for j in jobs]
    by_proxy = all(p is not None for p in proxies)
    weights = [p or 0.0 for p in proxies] if by_proxy else [0.0] * n
    order = sorted(range(n), key=lambda i: (weights[i], i))
    k = max(1, min(samples, n))
    strata = [order[round(s * n / k) : round((s + 1) * n / k)] for s in range(k)]
    picks = [stratum[len(stratum) // 2] for stratum in strata]
    clock = clock or clock_for(settings.device)

    # bring the process to the state a build is in after its first entries: the costliest
    # entry's tensors raise glibc's mmap threshold, so later passes stop page-faulting
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
    first_save, later_save = _save_times(rows, meta or {"kind": "lut"})
    saves_s = first_save + (math.ceil(n / settings.flush_every) - 1) * later_save
    return BuildEstimate(
        entries=n,
        seconds=n * per_entry_s + passes_s + saves_s,
        sampled=[jobs[i].key for i in picks],
        sample_s=sample_s,
        per_entry_s=per_entry_s,
        passes_s=passes_s,
        saves_s=saves_s,
        by_proxy=by_proxy,
    )


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
