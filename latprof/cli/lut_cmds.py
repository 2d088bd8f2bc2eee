"""Commands that make lookup tables: build-lut, merge, spaces; and a table's report."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from latprof.cli.app import (
    CudnnBenchmarkOpt,
    DeviceOpt,
    DtypeOpt,
    ListFormatOpt,
    ProgressView,
    Tf32Opt,
    ThreadsOpt,
    command,
    console,
    cuda_conditions,
    set_threads,
)
from latprof.cli.output import emit_rows, resolve_formats, wrote
from latprof.config import BUILD_TRIALS
from latprof.errors import UsageError
from latprof.space.builtin import DEFAULT_SPACE

SpaceOpt = Annotated[
    str | None,
    typer.Option(
        "--space",
        help="Built-in space (see `latprof spaces`) or a .toml file. Default, with "
        f"neither --space nor --models: {DEFAULT_SPACE} (TF-NAS's MobileNetV2 space).",
    ),
]
ArchsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--archs",
        help="Measure only the entries these architectures of the space use, at their "
        "exact widths (zoo:tfnas-a, arch .json/.toml; several after one --archs).",
    ),
]
ModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--models",
        help="Build a layer-level table from every distinct leaf layer of these "
        "models (MODEL specs, several after one --models).",
    ),
]
UnitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--unit",
        help="With --models: time every module of this class as one entry (the module as a "
        "whole: residual adds, functional ops and all), not its leaf layers (e.g. "
        "MultiheadAttention; repeatable, or several after one --unit).",
    ),
]
BatchOpt = Annotated[
    int | None,
    typer.Option("--batch-size", help="Default: 1 on CPU, 32 on CUDA (TF-NAS's settings)."),
]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="Warm-up passes per entry.")]
TrialsOpt = Annotated[int, typer.Option("--trials", help="Timed passes per entry.")]
WidthStepOpt = Annotated[
    int | None,
    typer.Option(
        "--width-step",
        help="Measure every K-th mid-channel width; lookups interpolate. Default: the space's own.",
    ),
]
LutOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Parquet file. Default: tables/SPACE-DEVICE-bBATCH.parquet"
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue an interrupted build; skips every key in the file."),
]
RemeasureOpt = Annotated[
    bool,
    typer.Option(
        "--remeasure-noisy", help="With --resume: measure noisy and failed entries again."
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard", help="I/N: build only shard I (0..N-1) of N; merge with `latprof merge`."
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the number of entries and a time estimate (from timing a few sample "
        "entries); write no table.",
    ),
]
ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="networks: time each entry inside networks that run one entry per slot "
        "(input hot, weights as cold as in a network; default for spaces); models: time "
        "each entry of a layer table inside the models' own passes; alone: time entries "
        "by themselves, round-robin (default for layer tables).",
    ),
]
SelfCheckOpt = Annotated[
    int,
    typer.Option(
        "--self-check",
        help="After the build, measure K random architectures of the space end to end and "
        "store the table's errors on them in its metadata (layer tables: their models). "
        "0 skips it.",
    ),
]
FitOpt = Annotated[
    int,
    typer.Option(
        "--fit",
        help="After the build, measure K random architectures end to end (in a fresh "
        "process) and fit latency = a·Σentries, adding + c and + b·blocks only where they cut "
        "the leave-one-out error by a point (stored in the table; predict, "
        "validate, compare and expected latency use it; the raw sum stays beside it). "
        "0: no fit.",
    ),
]
StatisticOpt = Annotated[
    str,
    typer.Option(
        "--statistic",
        help="What lookups return: p10 (10th percentile: the latency of a quiet "
        "machine, since interference only adds time), median, mean or min.",
    ),
]


@command("build-lut")
def build_lut_cmd(
    space: SpaceOpt = None,
    archs: ArchsOpt = None,
    models: ModelsOpt = None,
    unit: UnitOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = None,
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    warmup: WarmupOpt = 10,
    trials: TrialsOpt = BUILD_TRIALS,
    width_step: WidthStepOpt = None,
    out: LutOutOpt = None,
    resume: ResumeOpt = False,
    remeasure_noisy: RemeasureOpt = False,
    shard: ShardOpt = None,
    dry_run: DryRunOpt = False,
    context: ContextOpt = None,
    statistic: StatisticOpt = "p10",
    self_check: SelfCheckOpt = 10,
    fit: FitOpt = 20,
    tf32: Tf32Opt = None,
    cudnn_benchmark: CudnnBenchmarkOpt = None,
) -> None:
    """Measure every candidate op of a search space (or every leaf layer of some models)."""
    from latprof.config import ProfileConfig, parse_device
    from latprof.lut import plan as planmod
    from latprof.measure.device import check_device

    flags = cuda_conditions(tf32, cudnn_benchmark)
    ProfileConfig(
        device=device, dtype=dtype, threads=threads, warmup=warmup, trials=trials, **flags
    )
    context = planmod.check_options(
        space=space, archs=archs, models=models, width_step=width_step, context=context,
        statistic=statistic, resume=resume, remeasure_noisy=remeasure_noisy, shard=shard,
        units=unit,
    )  # fmt: skip
    set_threads(threads)
    check_device(parse_device(device))
    plan = planmod.plan_build(
        space=space, archs=archs, models=models, units=unit, device=device, batch=batch_size,
        dtype=dtype,
        warmup=warmup, trials=trials, width_step=width_step, context=context,
        statistic=statistic, shard=shard, **flags,
    )  # fmt: skip
    out = out or plan.default_output()
    if out.suffix != ".parquet":  # before --dry-run too: it would be refused at the build
        raise UsageError(f"-o {out}: lookup tables are Parquet files; use a .parquet name")
    _check_counts(self_check=self_check, fit=fit)
    whole_space = not plan.shard and "-archs" not in plan.label
    self_check = self_check if whole_space else 0
    fit = fit if whole_space and plan.meta["source"] == "space" else 0
    if dry_run:
        _dry_run(plan, out, fit, self_check, remeasure_noisy)
        return
    _build(plan, out, resume, remeasure_noisy)
    if fit or self_check:
        _check(out, fit, self_check)


def _dry_run(plan: Any, out: Path, fit: int, self_check: int, remeasure: bool) -> None:
    from latprof.lut.fresh import startup_s

    start = startup_s()  # before the estimate measures: what a fresh process costs
    checks = [n for n in (fit, self_check) if n]
    lines = _dry_run_lines(plan, out, self_check + fit, remeasure)
    if checks and start is not None:
        lines.append(
            f"  the fit and self-check each start a fresh process: about {start:.1f} s "
            f"each ({len(checks)}), not in the estimate above"
        )
    typer.echo("\n".join(lines))


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
    if 0 < counts.get("fit", 0) < MIN_FIT:
        raise UsageError(
            f"--fit {counts['fit']}: a fit is judged leave-one-out and needs at least "
            f"{MIN_FIT} architectures; use 0 (no correction) or {MIN_FIT} or more"
        )


MIN_FIT = 3


def _check(out: Path, fit: int, self_check: int) -> None:
    """The correction fit, then the self-check on other archs (each measured in a fresh
    process); both saved in the table."""
    from latprof.lut import correction, selfcheck
    from latprof.lut.table import LatencyTable, describe

    table = LatencyTable.load(out)
    if fit:
        typer.echo(f"latprof: fitting on {fit} random architectures (a fresh process)", err=True)
        c = correction.fit_table(table, fit, path=out)
        table.save(out)
        typer.echo(correction.describe(c))
    if self_check:
        what = "its models" if table.meta.get("source") == "models" else f"{self_check} archs"
        typer.echo(f"latprof: self-check on {what} (a fresh process)", err=True)
        selfcheck.run(table, self_check, path=out)
        table.save(out)
        typer.echo(describe(table.meta["self_check"]))


def _build(plan: Any, out: Path, resume: bool, remeasure_noisy: bool) -> None:
    import pyarrow.parquet as pq

    from latprof.io.atomic import check_writable
    from latprof.lut.build import build

    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out)
    view = ProgressView(f"measuring {plan.label}", delay_s=0.0)
    started = time.monotonic()
    try:
        result = build(
            plan.jobs, plan.settings, out, plan.meta, resume=resume,
            remeasure_noisy=remeasure_noisy, progress=lambda d, t: view("entries", d, t),
            slots=plan.slots,
        )  # fmt: skip
    except KeyboardInterrupt:
        view.close()
        if out.exists():
            said = (
                f"entries measured so far are saved in {out}. "
                "Continue with the same command plus --resume."
            )
        else:
            said = (
                f"nothing was saved yet ({out} was not written). Start again with the same command."
            )
        typer.echo(f"latprof: interrupted; {said}", err=True)
        raise typer.Exit(130) from None
    finally:
        view.close()
    elapsed = time.monotonic() - started
    took = f"{elapsed:.2f}" if elapsed < 10 else f"{elapsed:.1f}"  # comparable with --dry-run
    s = plan.settings
    held = pq.read_metadata(out).num_rows
    more = f"; the file holds {held} in all" if held > len(plan.jobs) else ""
    lines = [
        f"wrote {out}: {len(plan.jobs)} entries ({result.measured} measured, {result.reused} "
        f"reused{more}) in {took} s on {plan.meta['device_name']}, batch {s.batch}, {s.dtype}"
    ]
    if result.failed:
        lines.append(f"{len(result.failed)} entries failed (kept as status=failed):")
        lines += [f"  {f}" for f in result.failed[:10]]
    if result.noisy:
        lines.append(
            f"{len(result.noisy)} noisy entries (IQR > 10% of median); re-measure them "
            "with the same command plus --resume --remeasure-noisy"
        )
    typer.echo("\n".join(lines))


def _dry_run_lines(plan: Any, out: Path, self_check: int, remeasure: bool = False) -> list[str]:
    """Count entries; estimate the build time by measuring a few sample entries for real."""
    from latprof.lut.build import estimate_build, remeasured
    from latprof.lut.jobs import ELEMENT_WEIGHT
    from latprof.lut.table import LatencyTable

    jobs, settings = plan.jobs, plan.settings
    rows = LatencyTable.load(out).rows if out.exists() else {}
    done = {k for k, r in rows.items() if not (remeasure and remeasured(r))}
    todo = [j for j in jobs if j.key not in done]
    lines = [
        f"{len(jobs)} entries, {len(todo)} to measure ({len(jobs) - len(todo)} already in {out})"
    ]
    units = plan.unit_entries()
    if units:
        listed = ", ".join(f"{n} {u}" for u, n in units.items())
        lines.append(f"  of which units (each module timed whole): {listed}")
    if todo and plan.slots is not None:
        return lines + _network_estimate(todo, plan, self_check)
    if todo and plan.meta.get("context") == "models":
        return lines + _model_estimate(todo, plan)
    if not todo:
        return lines
    est = estimate_build(todo, settings)
    k = len(est.sampled)
    if est.by_proxy:
        how = (
            f"measured {k} sample entries for real, one from each of {k} equal groups of "
            f"the entries sorted by a cost proxy (MACs + {ELEMENT_WEIGHT} x tensor "
            "elements), and scaled each group by its mean proxy"
        )
    else:
        how = f"measured {k} sample entries spread over the list, scaled by entry count"
    total = f"{est.seconds:.2f}" if est.seconds < 10 else f"{est.seconds:.1f}"
    lines += [
        f"estimated build time: {total} s (an estimate, typically within ±20 %; "
        "the command's start-up is not included)",
        f"  how: {how}; warm-up {settings.warmup}, trials {settings.trials}, "
        f"{est.sample_s:.2f} s of sampling.",
        f"  passes {est.passes_s:.2f} s + {len(todo)} x {est.per_entry_s * 1e3:.1f} ms per "
        f"entry (build, MAC count) + saves {est.saves_s:.2f} s",
    ]
    if est.failed:
        lines.append(
            f"  {len(est.failed)} of {k} sample entries failed (e.g. {est.failed[0]}): the "
            f"{est.unestimated} entries they stand for are not in the estimate (their passes "
            "count as 0 s); the build records such entries as failed"
        )
    return lines


def _network_estimate(todo: list[Any], plan: Any, self_check: int) -> list[str]:
    from latprof.lut import in_network
    from latprof.measure.clocks import clock_for

    s = plan.settings
    count, seconds, sampled, failed = in_network.estimate(todo, plan.slots, s, clock_for(s.device))
    check_s = self_check * seconds / max(count, 1)  # a random arch ~ one context network
    seconds += check_s
    total = f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"
    lines = [
        f"estimated build time: {total} s (an estimate; the command's start-up and the "
        "saves are not included)",
        f"  how: the entries go into {count} context networks (one entry per slot); "
        f"measured {min(3, count)} of them for real (warm-up {s.warmup} alone + "
        f"{in_network.NETWORK_WARMUP} in the network, trials {s.trials}) in "
        f"{sampled:.2f} s and scaled by the number of networks; the fit and self-check "
        f"({self_check} random architectures) add about {check_s:.1f} s.",
    ]
    if failed:
        lines.append(
            f"  {len(failed)} entries of the sampled networks failed (e.g. {failed[0]}); the "
            "build records such entries as failed, and other entries may fail the same way"
        )
    return lines


def _model_estimate(todo: list[Any], plan: Any) -> list[str]:
    from latprof.lut import in_model
    from latprof.measure.clocks import clock_for

    s, meta = plan.settings, plan.meta
    from latprof.lut.build import save_times

    count, seconds, sampled, rows = in_model.estimate(
        todo, meta["model_keys"], meta.get("units") or [], s, clock_for(s.device)
    )
    first, later = save_times(rows, meta)
    where = "the model's own passes" if count == 1 else f"the {count} models' own passes"
    saves = first + (count - 1) * later
    total = seconds + saves
    said = f"{total:.2f}" if total < 10 else f"{total:.1f}"
    lines = [
        f"estimated build time: {said} s (an estimate; the command's start-up is not included)",
        f"  how: the entries are timed in {where} "
        f"(warm-up {s.warmup}, trials {s.trials}, each after an untimed pass); each model "
        f"was measured for real with 1 and 6 trials in {sampled:.2f} s and scaled to the "
        f"build's passes: {seconds:.2f} s, + saves {saves:.2f} s (one per model).",
    ]
    failed = [f"{r['key']}: {r['error']}" for r in rows if r["status"] != "ok"]
    if failed:
        lines.append(
            f"  {len(failed)} of {len(rows)} entries failed in these measurements (e.g. "
            f"{failed[0]}); the build records such entries as failed"
        )
    return lines


@command("merge")
def merge_cmd(
    tables: Annotated[list[Path], typer.Argument(help="Shard tables to merge.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="The merged .parquet file.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace -o if it exists (never one of the tables being merged)."
        ),
    ] = False,
) -> None:
    """Merge shard tables into one; refuses mismatched environments, conflicting keys and
    incomplete sets of shards."""
    from latprof.io.atomic import check_writable, is_same_file
    from latprof.lut.table import LatencyTable, merge

    if out.suffix != ".parquet":
        raise UsageError(f"-o {out}: lookup tables are Parquet files; use a .parquet name")
    check_writable(out)
    if any(is_same_file(out, p) for p in tables):
        raise UsageError(f"-o {out} is one of the inputs; merge into a new file")
    if out.exists() and not force:
        raise UsageError(
            f"-o {out} already exists; pass --force to replace it, or choose another -o"
        )
    merged = merge([(str(p), LatencyTable.load(p)) for p in tables])
    merged.save(out)
    typer.echo(f"wrote {out}: {len(merged)} entries from {len(tables)} tables")


@command("spaces")
def spaces_cmd(fmt: ListFormatOpt = None) -> None:
    """List the built-in search spaces (for build-lut --space)."""
    from latprof.space.builtin import describe

    emit_rows(describe(), fmt, "Built-in search spaces")


MEASURED_WHERE = {
    "networks": ", measured in context networks",
    "models": ", measured in their models",
    "alone": ", measured alone",
}


def report_lut(path: Path, by: str, fmt: str | None, out: Path | None) -> None:
    """`latprof report TABLE`: entries (--by layer) or per-op sums (--by category)."""
    from latprof.lut.table import LatencyTable, report_rows

    table = LatencyTable.load(path)
    rows = report_rows(table, by)
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    if out is not None and file_fmt is not None:
        file_fmt = "markdown" if file_fmt == "table" else file_fmt  # .txt: the rows as text
        if file_fmt == "parquet":
            table.save(out)
        else:
            from latprof.io.export import write_rows

            write_rows(rows, out, file_fmt)
        wrote(out)
    from latprof.lut.table import describe

    check = describe(table.meta.get("self_check"))
    if table.meta.get("correction"):
        from latprof.lut import correction

        check = correction.describe(table.meta["correction"]) + "\n" + check
    if table.meta.get("recalibration"):
        from latprof.lut.recalibrate import describe as recalibrated

        check += "\n" + recalibrated(table.meta["recalibration"], saved=True)
    if stdout_fmt == "table":
        m = table.meta
        where = MEASURED_WHERE.get(str(m.get("context")), "")
        console().print(
            f"[bold]{path}[/bold]  {m.get('space') or 'models'}  ·  "
            f"{m.get('device_name')}  ·  batch {m.get('batch')}  ·  {m.get('dtype')}"
            f"  ·  {len(table)} entries{where}\n{check}"
        )
        brief = ("key", "time_us_median", "time_us_iqr", "macs", "status")
        shown = rows if by == "category" else [{k: r[k] for k in brief} for r in rows]
        emit_rows(shown, "table", "Lookup table")
    elif stdout_fmt is not None:
        emit_rows(rows, stdout_fmt, "Lookup table")
        typer.echo(check, err=True)
    sys.stdout.flush()
