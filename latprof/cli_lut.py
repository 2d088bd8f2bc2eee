"""CLI commands for lookup tables: build-lut, merge, spaces (part of the CLI layer)."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from latprof.cli import (
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    ProgressView,
    ThreadsOpt,
    command,
    console,
    emit_rows,
    resolve_formats,
)
from latprof.errors import UsageError

DEFAULT_SPACE = "mbv2"
LUT_COLUMNS = (
    "key",
    "op",
    "kernel",
    "stride",
    "mid",
    "se",
    "act",
    "c_in",
    "c_out",
    "h",
    "w",
    "batch",
    "dtype",
    "time_us_median",
    "time_us_p10",
    "time_us_mean",
    "time_us_std",
    "time_us_iqr",
    "n",
    "outliers",
    "noisy",
    "macs",
    "params",
    "status",
    "error",
)


def default_output(label: str, device: str, batch: int, dtype: str) -> Path:
    suffix = "" if dtype == "float32" else f"-{dtype}"
    return Path("tables") / f"{label}-{device.replace(':', '')}-b{batch}{suffix}.parquet"


@command("build-lut")
def build_lut_cmd(
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            help="Built-in space (see `latprof spaces`) or a .toml file. Default, with "
            f"neither --space nor --models: {DEFAULT_SPACE} (TF-NAS's MobileNetV2 space).",
        ),
    ] = None,
    archs: Annotated[
        list[str] | None,
        typer.Option(
            "--archs",
            help="Measure only the entries these architectures of the space use, at their "
            "exact widths (zoo:tfnas-a, arch .json/.toml; several after one --archs).",
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help="Build a layer-level table from every distinct leaf layer of these "
            "models (MODEL specs, several after one --models).",
        ),
    ] = None,
    device: DeviceOpt = "cpu",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Default: 1 on CPU, 32 on CUDA (TF-NAS's settings)."),
    ] = None,
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up passes per entry.")] = 10,
    trials: Annotated[int, typer.Option("--trials", help="Timed passes per entry.")] = 20,
    width_step: Annotated[
        int | None,
        typer.Option(
            "--width-step",
            help="Measure every K-th mid-channel width; lookups interpolate. "
            "Default: the space's own.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Parquet file. Default: tables/SPACE-DEVICE-bBATCH.parquet"
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an interrupted build; skips every key in the file."
        ),
    ] = False,
    remeasure_noisy: Annotated[
        bool,
        typer.Option(
            "--remeasure-noisy", help="With --resume: measure noisy and failed entries again."
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard", help="I/N: build only shard I (0..N-1) of N; merge with `latprof merge`."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the number of entries and a time estimate; measure nothing."
        ),
    ] = False,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="networks: time each entry inside networks that run one entry per slot "
            "(input hot, weights as cold as in a network; default for spaces); alone: time "
            "entries by themselves, round-robin (faster, less faithful; layer tables).",
        ),
    ] = None,
    statistic: Annotated[
        str,
        typer.Option(
            "--statistic",
            help="What lookups return: p10 (10th percentile: the latency of a quiet "
            "machine, since interference only adds time), median, mean or min.",
        ),
    ] = "p10",
) -> None:
    """Measure every candidate op of a search space (or every leaf layer of some models)."""
    from latprof.config import ProfileConfig
    from latprof.lut import builder

    if archs and models:
        raise UsageError("--archs picks entries of a space; it does not go with --models")
    if space and models:
        raise UsageError("give either --space or --models, not both")
    ProfileConfig(device=device, dtype=dtype, threads=threads, warmup=warmup, trials=trials)
    shard_spec = builder.parse_shard(shard)
    if width_step is not None and width_step < 1:
        raise UsageError(f"--width-step must be at least 1, got {width_step}")
    if remeasure_noisy and not resume:
        raise UsageError("--remeasure-noisy works on an existing table; add --resume")
    from latprof.lut.table import STATISTICS

    if statistic not in STATISTICS:
        raise UsageError(f"--statistic {statistic!r}: choose one of {', '.join(STATISTICS)}")
    if context not in (None, "networks", "alone"):
        raise UsageError(f"--context {context!r}: choose networks or alone")
    if models and context == "networks":
        raise UsageError(
            "--context networks needs a search space (slots to chain); layer tables from "
            "--models are measured alone"
        )
    context = context or ("alone" if models else "networks")
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    from latprof.config import parse_device
    from latprof.env import capture
    from latprof.profiler import check_device

    device = parse_device(device)
    check_device(device)
    batch = batch_size or (32 if device.startswith("cuda") else 1)
    if batch < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch}")
    meta: dict[str, Any] = {
        "kind": "lut",
        "format_version": 1,
        "batch": batch,
        "dtype": dtype,
        "warmup": warmup,
        "trials": trials,
        "context": context,
        "statistic": statistic,
    }
    slots: list[list[Any]] | None = None
    if models:
        from latprof.lut.layers import model_jobs

        jobs, per_model = model_jobs(models, batch, dtype)
        label = "layers-" + "-".join(Path(m.split(":")[-1]).stem for m in models)[:60]
        meta.update(
            source="models",
            space=None,
            models=models,
            model_keys=per_model,
            space_hash=hashlib.sha256("\n".join(sorted(models)).encode()).hexdigest()[:16],
            width_step=None,
        )
    else:
        from latprof.lut.spaces import BUILTIN, default_width_step, get_space

        the_space = get_space(space or DEFAULT_SPACE)
        step = width_step or default_width_step(the_space.name)
        jobs = builder.space_jobs(the_space, batch, dtype, step)
        label = the_space.name
        per_slot = [slot.entries(step) for slot in the_space.slots]
        if archs:
            from latprof.lut import arch as archmod

            placed = [(s, e) for a in archs for s, e in archmod.entries(archmod.load(a), the_space)]
            used = list(dict.fromkeys(e for _, e in placed))
            jobs = builder.entry_jobs(used, batch, dtype)
            per_slot = [
                list(dict.fromkeys(e for s, e in placed if s == slot.name))
                for slot in the_space.slots
            ]
            label += "-archs"
        if context == "networks":
            slots = [builder.entry_jobs(es, batch, dtype) for es in per_slot if es]
        meta.update(
            source="space",
            space=the_space.name,
            space_file=None if space in BUILTIN or space is None else str(Path(space).resolve()),
            space_hash=the_space.hash(),
            width_step=step,
            models=None,
        )
    env = capture(device).to_dict()
    meta.update(
        device=device,
        device_name=env["device_name"],
        torch=env["torch"],
        threads=env["intra_op_threads"],
        environment=env,
        shard=list(shard_spec) if shard_spec else None,
    )
    jobs = [j for j in jobs if builder.in_shard(j.key, shard_spec)]
    if out is None:
        out = default_output(label, device, batch, dtype)
        if shard_spec:
            out = out.with_name(f"{out.stem}-shard{shard_spec[0]}of{shard_spec[1]}.parquet")
    settings = builder.BuildSettings(
        device=device, dtype=dtype, batch=batch, warmup=warmup, trials=trials
    )
    if dry_run:
        _dry_run(jobs, settings, out, slots)
        return
    if out.suffix != ".parquet":
        raise UsageError(f"-o {out}: lookup tables are Parquet files; use a .parquet name")
    from latprof.io.atomic import check_writable

    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out)
    view = ProgressView(f"measuring {label}", delay_s=0.0)
    started = time.monotonic()
    try:
        result = builder.build(
            jobs,
            settings,
            out,
            meta,
            resume=resume,
            remeasure_noisy=remeasure_noisy,
            progress=lambda d, t: view("entries", d, t),
            slots=slots,
        )
    except KeyboardInterrupt:
        view.close()
        typer.echo(
            f"latprof: interrupted; entries measured so far are saved in {out}. "
            "Continue with the same command plus --resume.",
            err=True,
        )
        raise typer.Exit(130) from None
    finally:
        view.close()
    elapsed = time.monotonic() - started
    took = f"{elapsed:.2f}" if elapsed < 10 else f"{elapsed:.1f}"  # comparable with --dry-run
    lines = [
        f"wrote {out}: {len(jobs)} entries ({result.measured} measured, {result.reused} "
        f"reused) in {took} s on {meta['device_name']}, batch {batch}, {dtype}"
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


def _dry_run(jobs: list[Any], settings: Any, out: Path, slots: list[list[Any]] | None) -> None:
    """Count entries; estimate the build time by measuring a few sample entries for real."""
    from latprof.lut import builder
    from latprof.lut.table import LatencyTable

    done = set(LatencyTable.load(out).rows) if out.exists() else set()
    todo = [j for j in jobs if j.key not in done]
    lines = [
        f"{len(jobs)} entries, {len(todo)} to measure ({len(jobs) - len(todo)} already in {out})"
    ]
    if todo and slots is not None:
        from latprof.lut import context
        from latprof.measure.clocks import clock_for

        count, seconds, sampled = context.estimate(
            todo, slots, settings, clock_for(settings.device)
        )
        total = f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"
        lines += [
            f"estimated build time: {total} s (an estimate; the command's start-up and the "
            "saves are not included)",
            f"  how: the entries go into {count} context networks (one entry per slot); "
            f"measured {min(3, count)} of them for real (warm-up {settings.warmup} alone + "
            f"{context.NETWORK_WARMUP} in the network, trials {settings.trials}) in "
            f"{sampled:.2f} s and scaled by the number of networks.",
        ]
    elif todo:
        est = builder.estimate_build(todo, settings)
        k = len(est.sampled)
        if est.by_proxy:
            how = (
                f"measured {k} sample entries for real, one from each of {k} equal groups of "
                f"the entries sorted by a cost proxy (MACs + {builder.ELEMENT_WEIGHT} x tensor "
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
    typer.echo("\n".join(lines))


@command("merge")
def merge_cmd(
    tables: Annotated[list[Path], typer.Argument(help="Shard tables to merge.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="The merged .parquet file.")],
) -> None:
    """Merge shard tables into one; refuses mismatched environments or conflicting keys."""
    from latprof.lut.table import LatencyTable, merge

    if out.suffix != ".parquet":
        raise UsageError(f"-o {out}: lookup tables are Parquet files; use a .parquet name")
    merged = merge([(str(p), LatencyTable.load(p)) for p in tables])
    merged.save(out)
    typer.echo(f"wrote {out}: {len(merged)} entries from {len(tables)} tables")


@command("spaces")
def spaces_cmd(fmt: FormatOpt = None) -> None:
    """List the built-in search spaces (for build-lut --space)."""
    from latprof.lut.spaces import describe

    emit_rows(describe(), fmt, "Built-in search spaces")


def lut_rows(table: Any, by: str) -> list[dict[str, Any]]:
    """Entry rows, or one row per op (category) with entry counts and total time."""
    rows = [{c: r.get(c) for c in LUT_COLUMNS} for r in table.rows.values()]
    if by != "category":
        return rows
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(
            r["op"],
            {
                "category": r["op"],
                "entries": 0,
                "failed": 0,
                "time_us_median_sum": 0.0,
                "macs": 0.0,
                "noisy": 0,
            },
        )
        g["entries"] += 1
        if r["status"] != "ok":
            g["failed"] += 1
            continue
        g["time_us_median_sum"] += r["time_us_median"]
        g["macs"] += r["macs"] or 0.0
        g["noisy"] += bool(r["noisy"])
    return sorted(groups.values(), key=lambda g: g["time_us_median_sum"], reverse=True)


def report_lut(path: Path, by: str, fmt: str | None, out: Path | None) -> None:
    from latprof.io.atomic import write_text
    from latprof.lut.table import LatencyTable
    from latprof.render import text

    table = LatencyTable.load(path)
    rows = lut_rows(table, by)
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    if out is not None and file_fmt is not None:
        if file_fmt == "parquet":
            table.save(out)
        else:
            render = {"csv": text.to_csv, "markdown": text.to_markdown}.get(file_fmt)
            if render is None:
                raise UsageError(
                    f"a lookup table renders as csv, markdown or parquet, not {file_fmt}"
                )
            write_text(out, render(rows))
        typer.echo(f"latprof: wrote {out}", err=True)
    if stdout_fmt == "table":
        m = table.meta
        console().print(
            f"[bold]{path}[/bold]  {m.get('space') or 'models'}  ·  "
            f"{m.get('device_name')}  ·  batch {m.get('batch')}  ·  {m.get('dtype')}"
            f"  ·  {len(table)} entries"
        )
        shown = (
            rows
            if by == "category"
            else [
                {k: r[k] for k in ("key", "time_us_median", "time_us_iqr", "macs", "status")}
                for r in rows
            ]
        )
        emit_rows(shown, "table", "Lookup table")
    elif stdout_fmt is not None:
        emit_rows(rows, stdout_fmt, "Lookup table")
    sys.stdout.flush()
