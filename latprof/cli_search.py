"""CLI commands that reuse lookup tables: arch, predict, validate (part of the CLI layer)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from latprof.cli import (
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    OutOpt,
    ProgressView,
    ThreadsOpt,
    command,
    console,
    emit_rows,
    fail,
)
from latprof.errors import UsageError

LutOpt = Annotated[Path, typer.Option("--lut", help="A lookup table built by build-lut.")]
AllowOpt = Annotated[
    bool,
    typer.Option(
        "--allow-mismatch",
        help="Use the table even if it was measured on another device, dtype, batch, "
        "thread count, CPU/GPU or torch version.",
    ),
]
ExactOpt = Annotated[
    bool,
    typer.Option(
        "--exact",
        help="Measure mid widths the table would interpolate (adds them to the table file).",
    ),
]
MeasureOpt = Annotated[
    bool,
    typer.Option(
        "--measure-misses",
        help="Measure entries missing from the table on the spot and add them to it.",
    ),
]


def _write_rows(rows: list[dict[str, Any]], fmt: str | None, out: Path | None, title: str) -> None:
    """Rows to stdout (terminal table / CSV on a pipe / fmt) and to `out` by its extension."""
    from latprof.cli import resolve_formats

    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    if out is not None and file_fmt is not None:
        _save_rows(rows, out, file_fmt)
        typer.echo(f"latprof: wrote {out}", err=True)
    if stdout_fmt is not None:
        if stdout_fmt == "parquet":
            raise UsageError("parquet goes to a file: add -o FILE.parquet")
        emit_rows(rows, stdout_fmt, title)


def _save_rows(rows: list[dict[str, Any]], out: Path, fmt: str) -> None:
    import json

    from latprof.io.atomic import write_text, write_with
    from latprof.render import text

    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows)
        write_with(out, lambda tmp: pq.write_table(table, tmp))
    elif fmt == "json":
        write_text(out, json.dumps(rows, indent=2) + "\n")
    elif fmt == "csv":
        write_text(out, text.to_csv(rows))
    else:
        write_text(out, text.to_markdown(rows))


def _load_table(path: Path, threads: int | None, allow: bool) -> Any:
    """The table, with torch set to its thread count; refuses another machine unless allowed."""
    import torch

    from latprof.lut.predict import this_machine
    from latprof.lut.table import LatencyTable

    table = LatencyTable.load(path)
    target_threads = threads if threads is not None else table.meta.get("threads")
    if target_threads:
        torch.set_num_threads(int(target_threads))
    diffs = table.check_target(allow, threads=threads)
    here = this_machine(table.meta)
    for name, value in here.items():
        if table.meta.get(name) != value:
            diffs.append(f"{name}: table {table.meta.get(name)!r}, here {value!r}")
    if diffs and not allow:
        raise UsageError(
            f"{path} was measured elsewhere ({'; '.join(diffs)}); rebuild it here or pass "
            "--allow-mismatch"
        )
    for d in diffs:
        typer.echo(f"latprof: warning: environment differs: {d}", err=True)
    return table


def _space_ref(table: Any) -> str:
    return table.meta.get("space_file") or table.meta["space"]


# ---------------------------------------------------------------------- arch


@command("arch")
def arch_cmd(
    spec: Annotated[
        str, typer.Argument(help="zoo:NAME (e.g. zoo:tfnas-a) or an arch .json/.toml file.")
    ],
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="json, toml, table, csv or markdown."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE (.json or .toml)."),
    ] = None,
) -> None:
    """Print an architecture (one chosen op per slot) to edit and use with predict/validate."""
    from latprof.io.atomic import check_writable, write_text
    from latprof.lut import arch as archmod

    arch = archmod.load(spec)
    blocks = archmod.resolve(arch, archmod.space_of(arch))
    if out is not None:
        kind = {".json": "json", ".toml": "toml"}.get(out.suffix)
        if kind is None:
            raise UsageError(f"-o {out}: write an architecture as .json or .toml")
        check_writable(out)
        write_text(out, arch.to_json() if kind == "json" else arch.to_toml())
        typer.echo(f"latprof: wrote {out}", err=True)
        if fmt is None:
            return
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    if fmt == "json":
        sys.stdout.write(arch.to_json())
        return
    if fmt == "toml":
        sys.stdout.write(arch.to_toml())
        return
    rows = [
        {
            "slot": b.slot.name,
            "op": "skip" if b.entry is None else b.entry.op,
            "kernel": b.entry.kernel if b.entry else None,
            "mid": b.entry.mid if b.entry else None,
            "se": b.entry.se if b.entry else None,
            "act": b.entry.act if b.entry else None,
            "c_in": b.slot.c_in,
            "c_out": b.slot.c_out,
            "input": f"{b.slot.h}x{b.slot.w}",
            "stride": b.slot.stride,
        }
        for b in blocks
    ]
    emit_rows(rows, fmt, f"{arch.name} (space {arch.space})")


# ---------------------------------------------------------------------- predict


@command("predict")
def predict_cmd(
    target: Annotated[
        str,
        typer.Argument(
            help="An architecture (zoo:tfnas-a, arch.json/.toml) for a space table, or any "
            "MODEL (model.py, zoo:, torchvision:) for a layer table (build-lut --models)."
        ),
    ],
    lut: LutOpt,
    device: Annotated[
        str | None, typer.Option("--device", help="Target device; must match the table's.")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="Target dtype; must match the table's.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Target batch; must match the table's.")
    ] = None,
    threads: ThreadsOpt = None,
    allow_mismatch: AllowOpt = False,
    measure_misses: MeasureOpt = False,
    exact: ExactOpt = False,
    fmt: FormatOpt = None,
    out: OutOpt = None,
) -> None:
    """Predict latency as a sum of lookup-table entries, with a per-block breakdown."""
    from latprof.lut import arch as archmod
    from latprof.lut.predict import predict_arch, predict_model
    from latprof.lut.table import LatencyTable

    table = LatencyTable.load(lut)
    table.check_target(
        allow_mismatch, device=device, dtype=dtype, batch=batch_size, threads=threads
    )
    on_miss = "measure" if measure_misses or exact else "report"
    measured = None
    if table.meta.get("source") == "models" and Path(target).suffix not in (".json", ".toml"):
        import torch

        from latprof.loading import load_model
        from latprof.lut.validate import Settings, measure_end_to_end

        torch.set_num_threads(int(threads or table.meta.get("threads") or 1))
        loaded = load_model(target, batch_size=int(table.meta["batch"]))
        pred = predict_model(
            table,
            target,
            loaded.module,
            loaded.args,
            loaded.kwargs,
            on_miss,  # type: ignore[arg-type]
        )
        if not pred.misses:
            measured, _ = measure_end_to_end(
                loaded.module, loaded.args, loaded.kwargs, Settings.of(table, None, None)
            )
    else:
        pred = predict_arch(
            table,
            archmod.load(target),
            on_miss=on_miss,  # type: ignore[arg-type]
            exact=exact,
        )
    if measure_misses and any(b.source == "measured-now" for b in pred.blocks):
        table.save(lut)
        typer.echo(f"latprof: added the entries measured now to {lut}", err=True)
    _write_rows(pred.rows(), fmt, out, f"{pred.name} on {lut.name}")
    interpolated = sum(b.source == "interpolated" for b in pred.blocks)
    line = (
        f"predicted {pred.total_us:,.1f} µs for {pred.name}: {len(pred.blocks)} blocks, "
        f"{interpolated} interpolated over mid width, {pred.macs / 1e6:,.1f} M MACs"
    )
    if measured is not None:
        whole = float(getattr(measured, table.statistic))
        gap = whole - pred.total_us
        line += (
            f"; measured end to end {whole:,.1f} µs ({table.statistic}), so {gap:,.1f} µs "
            f"({100 * gap / whole:.1f} %) is not in any leaf layer (residual adds, "
            "concatenations, other tensor ops)"
        )
    typer.echo(line, err=not sys.stdout.isatty())
    if pred.misses:
        listed = "; ".join(pred.misses[:5]) + (" ..." if len(pred.misses) > 5 else "")
        fail(
            f"{len(pred.misses)} entries are not in {lut} ({listed}); the total leaves them "
            "out. Add them with build-lut --resume or pass --measure-misses"
        )


# ---------------------------------------------------------------------- validate


@command("validate")
def validate_cmd(
    lut: LutOpt,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Architectures (zoo:NAME, .json/.toml) or, for a layer table, MODELs. "
            "Default: every zoo arch of the table's space (or the table's models)."
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", help="Also validate N random archs of the space.")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --samples.")] = 0,
    warmup: Annotated[
        int | None, typer.Option("--warmup", help="Warm-up passes. Default: the table's.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", help="Timed passes. Default: the table's.")
    ] = None,
    threads: ThreadsOpt = None,
    allow_mismatch: AllowOpt = False,
    exact: ExactOpt = False,
    fmt: FormatOpt = None,
    out: OutOpt = None,
) -> None:
    """Measure architectures end to end and compare with the table's prediction."""
    import random

    from latprof.lut import arch as archmod
    from latprof.lut import validate as val

    for name, value in (("--warmup", warmup), ("--trials", trials)):
        if value is not None and value < (0 if name == "--warmup" else 1):
            raise UsageError(f"{name} must be at least {0 if name == '--warmup' else 1}")
    if samples < 0:
        raise UsageError(f"--samples must be 0 or more, got {samples}")
    table = _load_table(lut, threads, allow_mismatch)
    chosen: list[Any] = list(targets or [])
    if samples:
        space = table.space()
        rng = random.Random(seed)
        chosen += [
            replace(archmod.sample(space, rng, f"sample-{seed}-{i}"), space=_space_ref(table))
            for i in range(samples)
        ]
    if not chosen:
        chosen = list(val.default_targets(table))
    settings = val.Settings.of(table, warmup, trials)
    view = ProgressView(f"validating {lut.name}", delay_s=0.0)
    try:
        rows = val.validate(
            table,
            chosen,
            settings,
            "measure" if exact else "report",
            progress=lambda d, t: view("trials, round-robin", d, t),
            exact=exact,
        )
    finally:
        view.close()
    if exact:
        table.save(lut)
        typer.echo(f"latprof: exact widths measured and added to {lut}", err=True)
    _write_rows(rows, fmt, out, f"LUT prediction vs measured, {lut.name}")
    s = val.summary(rows)
    if s:
        msg = (
            f"median |error| {s['median_abs_error_pct']:.1f} %, max {s['max_abs_error_pct']:.1f} %"
            f" over {s['n']} architectures (on the {table.statistic} of the passes; "
            f"{table.meta.get('device_name')}, batch "
            f"{table.meta.get('batch')}, {table.meta.get('threads')} threads)"
        )
        if sys.stdout.isatty():
            console().print(msg)
        else:
            typer.echo(msg, err=True)
    missing = [r["arch"] for r in rows if r["misses"]]
    if missing:
        fail(
            f"{len(missing)} architectures have entries missing from {lut} "
            f"({', '.join(missing[:5])}); see `latprof predict ARCH --lut {lut}`"
        )


# ---------------------------------------------------------------------- compare


@command("compare")
def compare_cmd(
    space: Annotated[str, typer.Option("--space", help="Built-in space or .toml file.")] = "mbv2",
    samples: Annotated[int, typer.Option("--samples", help="Random architectures.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed (reproducible).")] = 0,
    lut: Annotated[
        Path | None,
        typer.Option("--lut", help="A lookup table of the same space: adds the lut predictor."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="Peak MAC/s and bandwidth from `latprof env --calibrate --save FILE`. "
            "Default: measured now.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write a predicted-vs-measured scatter (needs matplotlib)."),
    ] = None,
    details: Annotated[
        Path | None,
        typer.Option("--details", help="Write the per-architecture numbers (.csv/.json/...)."),
    ] = None,
    device: DeviceOpt = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 1,
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up passes per arch.")] = 10,
    trials: Annotated[int, typer.Option("--trials", help="Timed passes per arch.")] = 20,
    allow_mismatch: AllowOpt = False,
    fmt: FormatOpt = None,
    out: OutOpt = None,
) -> None:
    """Rank random architectures by FLOPs, roofline, systolic model and LUT vs measured."""
    import time

    import torch

    from latprof.config import ProfileConfig, parse_device
    from latprof.lut.spaces import get_space
    from latprof.lut.validate import Settings
    from latprof.predictors import compare as cmp
    from latprof.profiler import check_device

    device = parse_device(device)
    ProfileConfig(device=device, dtype=dtype, threads=threads, warmup=warmup, trials=trials)
    check_device(device)
    if samples < 2:
        raise UsageError(f"--samples must be at least 2 to rank anything, got {samples}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if plot is not None and plot.suffix != ".png":
        raise UsageError(f"--plot {plot}: write a .png file")
    the_space = get_space(space)
    table = None
    if lut is not None:
        from latprof.lut.table import LatencyTable

        table = LatencyTable.load(lut)
        if table.meta.get("space_hash") != the_space.hash():
            raise UsageError(
                f"{lut} is a table of space {table.meta.get('space')!r}, not {the_space.name!r}"
            )
        table.check_target(
            allow_mismatch, device=device, batch=batch_size, dtype=dtype, threads=threads
        )
    if threads is not None:
        torch.set_num_threads(threads)
    from latprof import calibrate

    started = time.monotonic()
    if calibration is not None:
        cal = calibrate.load(calibration)
    else:
        cal = calibrate.measure(device, dtype)
    archs = cmp.sample_archs(the_space, samples, seed)
    view = ProgressView(f"comparing on {the_space.name}", delay_s=0.0)
    try:
        result = cmp.compare(
            the_space,
            archs,
            Settings(device, dtype, warmup, trials),
            batch_size,
            calibration=cal,
            table=table,
            progress=lambda d, t: view("trials, round-robin", d, t),
        )
    finally:
        view.close()
    if details is not None:
        from latprof.cli import resolve_formats

        _, detail_fmt = resolve_formats(None, details)
        _save_rows(result.archs, details, detail_fmt or "csv")
        typer.echo(f"latprof: wrote {details}", err=True)
    if plot is not None:
        cmp.plot(result, plot)
        typer.echo(f"latprof: wrote {plot}", err=True)
    _write_rows(result.metric_rows(), fmt, out, f"Predictors vs measured, {samples} archs")
    typer.echo(
        f"{samples} architectures of {the_space.name} measured in "
        f"{time.monotonic() - started:.1f} s ({device}, batch {batch_size}, {dtype}, "
        f"{torch.get_num_threads()} threads); calibration: "
        f"{cal.peak_macs_per_s / 1e9:.1f} GMAC/s, {cal.bandwidth_bytes_per_s / 1e9:.1f} GB/s"
        + ("" if table is not None else "; no --lut, so no lut predictor"),
        err=True,
    )
