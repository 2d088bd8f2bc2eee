"""Commands that use lookup tables and search spaces: arch, predict, validate, compare."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from latprof.cli.app import (
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    OutOpt,
    ProgressView,
    ThreadsOpt,
    command,
    console,
    fail,
    set_threads,
    warn,
)
from latprof.cli.output import emit_rows, resolve_formats, write_rows, wrote
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
ArchArg = Annotated[
    str, typer.Argument(help="zoo:NAME (e.g. zoo:tfnas-a) or an arch .json/.toml file.")
]
ArchFormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", help="json, toml, table, csv or markdown.")
]
ArchOutOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to FILE (.json or .toml).")
]
TargetArg = Annotated[
    str,
    typer.Argument(
        help="An architecture (zoo:tfnas-a, arch.json/.toml) for a space table, or any "
        "MODEL (model.py, zoo:, torchvision:) for a layer table (build-lut --models)."
    ),
]
TargetsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Architectures (zoo:NAME, .json/.toml) or, for a layer table, MODELs. "
        "Default: every zoo arch of the table's space (or the table's models)."
    ),
]
TargetDeviceOpt = Annotated[
    str | None, typer.Option("--device", help="Target device; must match the table's.")
]
TargetDtypeOpt = Annotated[
    str | None, typer.Option("--dtype", help="Target dtype; must match the table's.")
]
TargetBatchOpt = Annotated[
    int | None, typer.Option("--batch-size", help="Target batch; must match the table's.")
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", help="Also validate N random archs of the space.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for --samples.")]
RecalOpt = Annotated[
    int,
    typer.Option(
        "--recalibrate",
        help="Measure K reference archs (the build's fit archs; at most as many as it kept) "
        "now and scale every prediction by their median time now / time at build, the "
        "machine's drift (a table without those times: time now / prediction). 0: off.",
    ),
]
VWarmupOpt = Annotated[
    int | None, typer.Option("--warmup", help="Warm-up passes. Default: the table's.")
]
VTrialsOpt = Annotated[
    int | None, typer.Option("--trials", help="Timed passes. Default: the table's.")
]
CSpaceOpt = Annotated[str, typer.Option("--space", help="Built-in space or .toml file.")]
CSamplesOpt = Annotated[int, typer.Option("--samples", help="Random architectures.")]
CSeedOpt = Annotated[int, typer.Option("--seed", help="Sampling seed (reproducible).")]
CLutOpt = Annotated[
    Path | None,
    typer.Option("--lut", help="A lookup table of the same space: adds the lut predictor."),
]
CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        help="Peak MAC/s and bandwidth from `latprof env --calibrate --save FILE`. "
        "Default: measured now.",
    ),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", help="Write a predicted-vs-measured scatter (needs matplotlib)."),
]
DetailsOpt = Annotated[
    Path | None,
    typer.Option("--details", help="Write the per-architecture numbers (.csv/.json/...)."),
]
CBatchOpt = Annotated[int, typer.Option("--batch-size", help="Batch size.")]
CWarmupOpt = Annotated[int, typer.Option("--warmup", help="Warm-up passes per arch.")]
CTrialsOpt = Annotated[int, typer.Option("--trials", help="Timed passes per arch.")]


def _load_table(path: Path, threads: int | None, allow: bool) -> Any:
    """The table, with torch set to its thread count; refuses another machine unless allowed."""
    from latprof.lut.table import LatencyTable, machine_differences

    table = LatencyTable.load(path)
    set_threads(threads if threads is not None else table.meta.get("threads") or None)
    diffs = table.check_target(allow, threads=threads) + machine_differences(table.meta)
    if diffs and not allow:
        raise UsageError(
            f"{path} was measured elsewhere ({'; '.join(diffs)}); rebuild it here or pass "
            "--allow-mismatch"
        )
    for d in diffs:
        typer.echo(f"latprof: warning: environment differs: {d}", err=True)
    return table


@command("arch")
def arch_cmd(spec: ArchArg, fmt: ArchFormatOpt = None, out: ArchOutOpt = None) -> None:
    """Print an architecture (one chosen op per slot) to edit and use with predict/validate."""
    from latprof.space import arch as archmod

    arch = archmod.load(spec)
    blocks = archmod.resolve(arch, archmod.space_of(arch))
    if out is not None:
        from latprof.io.atomic import check_writable, write_text

        kind = {".json": "json", ".toml": "toml"}.get(out.suffix)
        if kind is None:
            raise UsageError(f"-o {out}: write an architecture as .json or .toml")
        if fmt not in (None, kind):
            raise UsageError(
                f"-o {out} writes the architecture as {kind}, and -f {fmt} asks for "
                f"{fmt}: drop -f (the file's suffix sets its format)"
            )
        check_writable(out)
        write_text(out, arch.to_json() if kind == "json" else arch.to_toml())
        wrote(out)
        return
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    if fmt in ("json", "toml"):
        sys.stdout.write(arch.to_json() if fmt == "json" else arch.to_toml())
        return
    emit_rows(archmod.block_rows(blocks), fmt, f"{arch.name} (space {arch.space})")


@command("predict")
def predict_cmd(
    target: TargetArg,
    lut: LutOpt,
    device: TargetDeviceOpt = None,
    dtype: TargetDtypeOpt = None,
    batch_size: TargetBatchOpt = None,
    threads: ThreadsOpt = None,
    allow_mismatch: AllowOpt = False,
    measure_misses: MeasureOpt = False,
    exact: ExactOpt = False,
    recalibrate: RecalOpt = 0,
    fmt: FormatOpt = None,
    out: OutOpt = None,
) -> None:
    """Predict latency as a sum of lookup-table entries, with a per-block breakdown."""
    from latprof.config import parse_device
    from latprof.lut.table import LatencyTable, trust_problem
    from latprof.lut.validate import prediction_for

    resolve_formats(fmt, out)  # a bad -o fails before any measuring
    device = parse_device(device) if device is not None else None
    table = LatencyTable.load(lut)
    diffs = table.check_target(
        allow_mismatch, device=device, dtype=dtype, batch=batch_size, threads=threads
    )
    for d in diffs:  # only reached with --allow-mismatch
        warn(f"environment differs: {d}")
    problem = trust_problem(table.meta)
    if problem:
        warn(problem)
    set_threads(int(threads or table.meta.get("threads") or 1))
    if recalibrate < 0:
        raise UsageError(f"--recalibrate must be 0 or more, got {recalibrate}")
    factor = None
    if recalibrate:
        from latprof.lut.recalibrate import describe
        from latprof.lut.validate import recalibration

        info = recalibration(table, recalibrate, allow_mismatch=allow_mismatch)
        typer.echo(describe(info), err=True)
        factor = info["factor"]
    on_miss = "measure" if measure_misses or exact else "report"
    pred, network = prediction_for(table, target, on_miss, exact)  # type: ignore[arg-type]
    if factor is not None:
        pred.scale = factor  # this prediction only: the table (and its file) keep theirs
    if measure_misses and any(b.source == "measured-now" for b in pred.blocks):
        table.save(lut)
        typer.echo(f"latprof: added the entries measured now to {lut}", err=True)
    write_rows(pred.rows(), fmt, out, f"{pred.name} on {lut.name}")
    line = _predict_line(table, target, pred, network, differs=bool(diffs))
    typer.echo(line, err=not sys.stdout.isatty())
    if pred.misses:
        listed = "; ".join(pred.misses[:5]) + (" ..." if len(pred.misses) > 5 else "")
        how = (
            "pass --measure-misses, or build a table with --models of this model too"
            if table.meta.get("source") == "models"
            else "Add them with build-lut --resume or pass --measure-misses"
        )
        fail(
            f"{len(pred.misses)} entries are not in {lut} ({listed}); the total leaves them "
            f"out. {how}"
        )


def _predict_line(table: Any, target: str, pred: Any, network: Any, differs: bool = False) -> str:
    """The summary line; for a MODEL, also how much of its measured time no leaf holds."""
    from latprof.config import BUILD_TRIALS, MeasureSettings
    from latprof.lut.validate import is_model_target, measure_end_to_end

    interpolated = sum(b.source == "interpolated" for b in pred.blocks)
    changes = []
    if pred.correction is not None and not pred.misses:
        changes.append("corrected by the table's fit")
    if pred.scale != 1.0 and not pred.misses:
        changes.append(f"×{pred.scale:.3f} recalibrated")
    how = f" (sum of entries {pred.sum_us:,.1f} µs, {', '.join(changes)})" if changes else ""
    found = len(pred.blocks) - len(pred.misses)
    head = (
        f"no prediction for {pred.name}: only {found} of {len(pred.blocks)} blocks are in the "
        f"table (they sum to {pred.sum_us:,.1f} µs)"
        if pred.misses
        else f"predicted {pred.total_us:,.1f} µs for {pred.name}{how}"
    )
    line = (
        f"{head}: {len(pred.blocks)} blocks, {interpolated} interpolated over mid width, "
        f"{pred.macs / 1e6:,.1f} M MACs"
    )
    if not is_model_target(table, target) or pred.misses:
        return line
    # at least BUILD_TRIALS passes: a table built with few trials still gets a steady figure
    trials = max(int(table.meta.get("trials") or BUILD_TRIALS), BUILD_TRIALS)
    measured, _ = measure_end_to_end(*network(), MeasureSettings.of_table(table.meta, None, trials))
    whole = float(getattr(measured, table.statistic))
    gap = whole - pred.total_us
    units = table.meta.get("units") or []
    where = "leaf layer (residual adds, concatenations, other tensor ops)"
    if units:
        where = (
            f"leaf layer or unit ({', '.join(units)}): residual adds, concatenations and "
            "other tensor ops outside the units"
        )
    m = table.meta
    built = (
        f", as the table was built (batch {m.get('batch')}, {m.get('dtype')}, "
        f"{m.get('device')}), not as the target"
        if differs
        else ""
    )
    said = f"; measured end to end {whole:,.1f} µs ({table.statistic}{built}), so "
    if gap >= 0:
        return line + f"{said}{gap:,.1f} µs ({100 * gap / whole:.1f} %) is not in any {where}"
    return line + (
        f"{said}the entries sum to {-gap:,.1f} µs ({-100 * gap / whole:.1f} %) more than the "
        "network took: they ran slower where the table measured them than in it"
    )


@command("validate")
def validate_cmd(
    lut: LutOpt,
    targets: TargetsArg = None,
    samples: SamplesOpt = 0,
    seed: SeedOpt = 0,
    warmup: VWarmupOpt = None,
    trials: VTrialsOpt = None,
    threads: ThreadsOpt = None,
    allow_mismatch: AllowOpt = False,
    exact: ExactOpt = False,
    recalibrate: RecalOpt = 0,
    fmt: FormatOpt = None,
    out: OutOpt = None,
) -> None:
    """Measure architectures end to end and compare with the table's prediction."""
    from latprof.config import MeasureSettings, check_warmup
    from latprof.lut import validate as val

    if warmup is not None:
        check_warmup(warmup)
    if trials is not None and trials < 1:
        raise UsageError("--trials must be at least 1")
    if samples < 0:
        raise UsageError(f"--samples must be 0 or more, got {samples}")
    if recalibrate < 0:
        raise UsageError(f"--recalibrate must be 0 or more, got {recalibrate}")
    resolve_formats(fmt, out)  # a bad -o fails before any measuring
    table = _load_table(lut, threads, allow_mismatch)
    if recalibrate:
        from latprof.lut.recalibrate import check_seed

        check_seed(table.meta, seed, samples)
    chosen = [*(targets or []), *val.sampled_targets(table, samples, seed)]
    settings = MeasureSettings.of_table(table.meta, warmup, trials)
    view = ProgressView(f"validating {lut.name}", delay_s=0.0)
    try:
        rows, info = val.measure(
            table, chosen or val.default_targets(table), settings,
            "measure" if exact else "report",
            progress=lambda d, t: view("trials, round-robin", d, t), exact=exact,
            reference=recalibrate,
        )  # fmt: skip
    finally:
        view.close()
    if exact:
        table.save(lut)
        typer.echo(f"latprof: exact widths measured and added to {lut}", err=True)
    write_rows(rows, fmt, out, f"LUT prediction vs measured, {lut.name}")
    _summaries(table, rows, info)
    missing = [r["arch"] for r in rows if r["misses"]]
    if missing:
        fail(
            f"{len(missing)} architectures have entries missing from {lut} "
            f"({', '.join(missing[:5])}); see `latprof predict ARCH --lut {lut}`"
        )


def _summaries(table: Any, rows: list[dict[str, Any]], info: dict[str, Any] | None) -> None:
    """validate's summary lines: the recalibration, then one line per population."""
    from latprof.lut import validate as val
    from latprof.lut.recalibrate import describe

    if info:
        typer.echo(describe(info), err=True)
    elif table.meta.get("recalibration"):
        saved = describe(table.meta["recalibration"], saved=True)
        typer.echo(f"latprof: the table carries a recalibration, applied: {saved}", err=True)
    m = table.meta
    for population, s in val.summaries(rows).items():
        if not s:
            continue
        tau = "n/a" if s["kendall_tau"] != s["kendall_tau"] else f"{s['kendall_tau']:.2f}"
        msg = (
            f"{population}: median |error| {s['median_abs_error_pct']:.1f} %, max "
            f"{s['max_abs_error_pct']:.1f} %, Kendall τ {tau} over {s['n']} "
            f"architecture{'' if s['n'] == 1 else 's'} (on the {table.statistic} of the passes; "
            f"{m.get('device_name')}, batch {m.get('batch')}, {m.get('threads')} "
            f"thread{'' if m.get('threads') == 1 else 's'})"
        )
        console().print(msg) if sys.stdout.isatty() else typer.echo(msg, err=True)
        own = ceiling_line(s, s["n"])
        if own:
            own = f"{population}: {own}"
            console().print(own) if sys.stdout.isatty() else typer.echo(own, err=True)
    hint = drift_hint(table, rows) if not info else None
    if hint:
        warn(hint)


def _note(line: str | None) -> None:
    if line:
        typer.echo(line, err=True)


CEILING_MIN_NETWORKS = 10
"""Fewer networks than this get no ceiling line: τ over them is too coarse (SE ~0.2 at 10)."""


def ceiling_line(split: dict[str, float], n: int) -> str | None:
    """'the measurement against itself ...' (rank_metrics.split_half), or None below
    CEILING_MIN_NETWORKS networks or without halves."""
    tau = split.get("split_half_tau", float("nan"))
    if n < CEILING_MIN_NETWORKS or not math.isfinite(tau):
        return None
    return (
        f"the measurement against itself (even vs odd rounds, {n} networks): Kendall τ "
        f"{tau:.2f}, the halves differ by a median of {split['split_half_diff_pct']:.1f} %; "
        f"a prediction could reach at most about τ {split['tau_ceiling']:.2f} against it "
        "(this process's noise only)"
    )


def drift_hint(table: Any, rows: list[dict[str, Any]]) -> str | None:
    """A hint to recalibrate when a space table's signed errors have a median beyond
    DRIFT_HINT_PCT (most of them share one sign)."""
    errors = [r["error_pct"] for r in rows if r["error_pct"] is not None]
    if table.meta.get("source") != "space" or len(errors) < 3:
        return None
    mid = statistics.median(errors)
    if abs(mid) <= DRIFT_HINT_PCT:
        return None
    how = "over" if mid > 0 else "under"
    return (
        f"the table {how}-predicts by {abs(mid):.1f} % (median): this machine may run at "
        "another speed than when the table was measured; --recalibrate 10 measures that"
    )


DRIFT_HINT_PCT = 3.0


@command("compare")
def compare_cmd(
    space: CSpaceOpt = "mbv2",
    samples: CSamplesOpt = 30,
    seed: CSeedOpt = 0,
    lut: CLutOpt = None,
    calibration: CalibrationOpt = None,
    plot: PlotOpt = None,
    details: DetailsOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: CBatchOpt = 1,
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    warmup: CWarmupOpt = 10,
    trials: CTrialsOpt = 20,
    allow_mismatch: AllowOpt = False,
    fmt: FormatOpt = None,
    out: OutOpt = None,
) -> None:
    """Rank random architectures by FLOPs, roofline, systolic model and LUT vs measured."""
    import time

    import torch

    from latprof.config import MeasureSettings, ProfileConfig, parse_device
    from latprof.measure.device import check_device
    from latprof.predictors import compare as cmp
    from latprof.space.arch import sample_archs

    device = parse_device(device)
    ProfileConfig(device=device, dtype=dtype, threads=threads, warmup=warmup, trials=trials)
    check_device(device)
    _check_compare(samples, batch_size, plot)
    _check_outputs(fmt, out, details, plot)
    target = {"device": device, "batch": batch_size, "dtype": dtype, "threads": threads}
    the_space, table = cmp.space_and_table(space, lut, allow_mismatch, **target)
    for d in table.check_target(True, **target) if table is not None else []:
        warn(f"environment differs: {d}")  # only reached with --allow-mismatch
    set_threads(threads)
    started = time.monotonic()
    cal = cmp.calibration(calibration, device, dtype)
    view = ProgressView(f"comparing on {the_space.name}", delay_s=0.0)
    try:
        result = cmp.compare(
            the_space, sample_archs(the_space, samples, seed),
            MeasureSettings(device=device, dtype=dtype, warmup=warmup, trials=trials),
            batch_size, calibration=cal, table=table,
            progress=lambda d, t: view("trials, round-robin", d, t),
        )  # fmt: skip
    finally:
        view.close()
    _compare_outputs(result, details, plot)
    write_rows(result.metric_rows(), fmt, out, f"Predictors vs measured, {samples} archs")
    typer.echo(
        f"{samples} architectures of {the_space.name} measured in "
        f"{time.monotonic() - started:.1f} s ({device}, batch {batch_size}, {dtype}, "
        f"{torch.get_num_threads()} threads); calibration: "
        f"{cal.peak_macs_per_s / 1e9:.1f} GMAC/s, {cal.bandwidth_bytes_per_s / 1e9:.1f} GB/s"
        + ("" if table is not None else "; no --lut, so no lut predictor"),
        err=True,
    )
    _note(ceiling_line(result.ceiling(), len(result.archs)))


def _check_outputs(
    fmt: str | None, out: Path | None, details: Path | None, plot: Path | None
) -> None:
    """Every file compare writes, checked before its minutes of measuring."""
    from latprof.io.atomic import check_writable

    resolve_formats(fmt, out)
    if details is not None:
        resolve_formats(None, details, "--details")
    if plot is not None:
        check_writable(plot, "--plot")


def _check_compare(samples: int, batch_size: int, plot: Path | None) -> None:
    if samples < 2:
        raise UsageError(f"--samples must be at least 2 to rank anything, got {samples}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if plot is not None and plot.suffix != ".png":
        raise UsageError(f"--plot {plot}: write a .png file")


def _compare_outputs(result: Any, details: Path | None, plot: Path | None) -> None:
    from latprof.predictors import compare as cmp

    if details is not None:
        from latprof.io.export import write_rows as save

        _, detail_fmt = resolve_formats(None, details, "--details")
        detail_fmt = detail_fmt or "csv"
        save(result.archs, details, "markdown" if detail_fmt == "table" else detail_fmt)
        wrote(details)
    if plot is not None:
        cmp.plot(result, plot)
        wrote(plot)
