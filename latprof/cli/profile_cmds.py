"""Commands about one model: profile, report, zoo, env."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from latprof.cli.app import (
    ByOpt,
    CudnnBenchmarkOpt,
    DepthOpt,
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    LeavesOnlyOpt,
    ListFormatOpt,
    ModuleOpt,
    OutOpt,
    ProgressView,
    ReportByOpt,
    Tf32Opt,
    ThreadsOpt,
    TopOpt,
    command,
    cuda_conditions,
    set_threads,
    warn,
)
from latprof.cli.output import emit_profile, emit_rows, resolve_formats, wrote
from latprof.errors import UsageError

ModelArg = Annotated[
    str,
    typer.Argument(help="path/model.py[:NAME], zoo:NAME (see `latprof zoo`) or torchvision:NAME."),
]
ShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        help="Input tensor shape, e.g. 1,3,224,224; repeat for several "
        "inputs. Overrides the model's own.",
    ),
]
BatchOpt = Annotated[
    int | None,
    typer.Option("--batch-size", help="Override the batch dimension of every input."),
]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="Warm-up passes, never sampled.")]
TrialsOpt = Annotated[
    int, typer.Option("--trials", help="Timed passes (each with and without the layer timers).")
]
CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        help="From `latprof env --calibrate --save FILE`: adds intensity, achieved MAC/s, "
        "roofline bound and fraction of it reached.",
    ),
]
AllocatorOpt = Annotated[
    str,
    typer.Option(
        "--allocator",
        help="Host allocator condition: system (the process as you run it) or steady "
        "(glibc's trim threshold fixed and mmap off, as lookup tables are built).",
    ),
]
AllocatorCheckOpt = Annotated[
    bool | None,
    typer.Option(
        "--allocator-check/--no-allocator-check",
        help="Also time end-to-end passes under both allocator conditions in fresh child "
        "processes (two system, one steady; rounds interleaved). Default: on for CPU, off for "
        "CUDA.",
    ),
]
SavedFileArg = Annotated[
    Path,
    typer.Argument(
        help="A profile saved as .parquet or .json, or a lookup table (.parquet) from build-lut."
    ),
]
CalibrateOpt = Annotated[
    bool,
    typer.Option(
        "--calibrate",
        help="Also measure peak MAC/s (a large matmul) and memory bandwidth (a large copy).",
    ),
]
CalDtypeOpt = Annotated[str, typer.Option("--dtype", help="dtype of --calibrate.")]
SaveOpt = Annotated[
    Path | None,
    typer.Option(
        "--save",
        help="With --calibrate: write the calibration as JSON, for profile --calibration "
        "and compare --calibration.",
    ),
]


VIEWS = ("category", "layer", "module", "op")


def check_by(by: str, depth: int | None = None, module: str | None = None) -> None:
    if by not in VIEWS:
        raise UsageError(f"--by {by!r} is unknown; use category, layer, module or op")
    if depth is not None and (by != "module" or depth < 0):
        raise UsageError("--depth goes with --by module and is 0 or more, e.g. --depth 2")
    if module is not None and by != "op":
        raise UsageError("--module NAME goes with --by op: add --by op")


@command("profile")
def profile_cmd(
    model: ModelArg,
    input_shape: ShapeOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    warmup: WarmupOpt = 10,
    trials: TrialsOpt = 20,
    by: ByOpt = "category",
    fmt: FormatOpt = None,
    out: OutOpt = None,
    top: TopOpt = 10,
    depth: DepthOpt = None,
    module: ModuleOpt = None,
    leaves_only: LeavesOnlyOpt = False,
    calibration: CalibrationOpt = None,
    allocator: AllocatorOpt = "system",
    allocator_check: AllocatorCheckOpt = None,
    tf32: Tf32Opt = None,
    cudnn_benchmark: CudnnBenchmarkOpt = None,
) -> None:
    """Time every module of MODEL (leaves, and the self time of their parents); aggregate per
    layer category."""
    from latprof.config import ProfileConfig, parse_shape
    from latprof.measure.allocator import check_condition

    check_by(by, depth, module)
    if by == "op" and module is None:
        raise UsageError("--by op needs --module NAME (a name from --by module)")
    shapes = [parse_shape(s) for s in input_shape or []]
    config = ProfileConfig(
        device=device,
        dtype=dtype,
        threads=threads,
        warmup=warmup,
        trials=trials,
        allocator=check_condition(allocator),
        scope="leaves" if leaves_only else "modules",
        op_module=module,
        **cuda_conditions(tf32, cudnn_benchmark),
    )
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if top < 0:
        raise UsageError(f"--top must be 0 or more, got {top}")
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    set_threads(threads)
    prof = _measure(model, shapes, batch_size, config, calibration)
    if allocator_check if allocator_check is not None else config.device == "cpu":
        _allocator_check(prof, model, shapes, batch_size, config)
    emit_profile(prof, stdout_fmt, file_fmt, out, by, top, depth)
    if by == "module" and leaves_only:  # after the output, like every warning
        warn("--leaves-only times no parents: the module tree is the leaves, flat")


def _measure(
    model: str, shapes: list, batch_size: int | None, config: Any, calibration: Path | None
) -> Any:
    from latprof.loading import load_model
    from latprof.measure.device import check_device
    from latprof.profiler import profile

    check_device(config.device)
    cal = _calibration(calibration, config) if calibration is not None else None
    loaded = load_model(model, shapes, batch_size)
    view = ProgressView(f"profiling {model}")
    try:
        prof = profile(
            loaded.module, loaded.args, loaded.kwargs, config, name=loaded.name, progress=view
        )
    finally:
        view.close()
    prof.calibration = cal
    return prof


def _allocator_check(
    prof: Any, model: str, shapes: list, batch_size: int | None, config: Any
) -> None:
    from latprof import conditions

    request = {"model": model, "shapes": shapes, "batch_size": batch_size}
    prof.allocator_check = conditions.measure_both(request, config)
    for notice in (
        conditions.notice_of(prof.allocator_check),
        conditions.history_notice(prof.allocator_check, prof.e2e_us, prof.e2e_faults_per_pass),
    ):
        if notice is not None:
            prof.notices.append(notice)


def _calibration(path: Path, config: Any) -> Any:
    from latprof.calibrate import load

    cal = load(path)
    if (cal.device, cal.dtype) != (config.device, config.dtype):
        raise UsageError(
            f"--calibration {path} is for {cal.device} {cal.dtype}, not "
            f"{config.device} {config.dtype}; calibrate with "
            f"`latprof env --calibrate --device {config.device} --dtype {config.dtype} --save`"
        )
    return cal


@command("report")
def report_cmd(
    file: SavedFileArg,
    by: ReportByOpt = "category",
    fmt: FormatOpt = None,
    out: OutOpt = None,
    top: TopOpt = 10,
    depth: DepthOpt = None,
) -> None:
    """Render a saved profile or lookup table again, in any format.

    Lookup tables (from build-lut): --by category sums per op, --by layer lists entries.
    """
    from latprof.io import profile_file

    check_by(by, depth)
    is_parquet = file.suffix == ".parquet" and file.exists()
    if is_parquet and profile_file.read_parquet_meta(file).get("kind") == "lut":
        from latprof.cli.lut_cmds import report_lut

        if by not in ("category", "layer"):
            raise UsageError(f"--by {by} is for profiles; a lookup table has category or layer")
        report_lut(file, by, fmt, out)
        return
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    prof = profile_file.load(file)
    if by == "op" and prof.ops is None:
        raise UsageError(
            f"{file} has no op view; profile again with --by op --module NAME to record one"
        )
    if by == "module" and prof.config.scope == "leaves":
        warn(f"{file} timed leaves only (--leaves-only, or saved before modules were timed)")
    emit_profile(prof, stdout_fmt, file_fmt, out, by, top, depth)


@command("zoo")
def zoo_cmd(fmt: ListFormatOpt = None) -> None:
    """List the built-in models (MODEL = zoo:NAME)."""
    from latprof.zoo import describe

    emit_rows(describe(), fmt, "Built-in models")


@command("env")
def env_cmd(
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    fmt: ListFormatOpt = None,
    calibrate: CalibrateOpt = False,
    dtype: CalDtypeOpt = "float32",
    save: SaveOpt = None,
) -> None:
    """Print the measuring environment, as recorded in every output file."""
    from latprof.calibrate import environment_rows
    from latprof.config import parse_device
    from latprof.measure.device import DTYPES, check_device

    dev = parse_device(device)
    if save is not None and not calibrate:
        raise UsageError("--save writes a calibration: add --calibrate")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is unknown; use {', '.join(DTYPES)}")
    if save is not None:
        from latprof.io.atomic import check_writable

        check_writable(save, "--save")
    set_threads(threads)
    check_device(dev)
    data = environment_rows(dev, dtype if calibrate else None, save)
    if save is not None:
        wrote(save)
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(dict(data), indent=2) + "\n")
    else:
        emit_rows([{"key": k, "value": v} for k, v in data.items()], fmt, "Measuring environment")
