"""The typer app: the only place that prints, exits or reads argv.

Heavy imports (torch, pandas, pyarrow) happen inside commands so `--help` stays fast.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from latprof.errors import LatprofError, UsageError

app = typer.Typer(
    name="latprof",
    help="Per-layer latency profiles and latency lookup tables for PyTorch models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FORMATS = ("table", "csv", "json", "markdown", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    ".parquet": "parquet",
    ".txt": "table",
}
STATE = {"debug": False}

DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32, float16 or bfloat16.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", help="torch intra-op threads (set before any torch work)."),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="table, csv, json, markdown or parquet. Default: table on a terminal, CSV on a pipe.",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to FILE; the format comes from the extension (.csv .json .md .parquet).",
    ),
]
ByOpt = Annotated[str, typer.Option("--by", help="category or layer.")]
TopOpt = Annotated[int, typer.Option("--top", help="Slowest layers shown on a terminal.")]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"latprof: error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """One-line errors and an exit code instead of tracebacks (unless --debug)."""
    try:
        yield
    except LatprofError as exc:
        if STATE["debug"]:
            raise
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("latprof: interrupted", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if STATE["debug"]:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (re-run with --debug for a traceback)", 1)


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """app.command() whose body runs inside errors_as_messages()."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(fn)
        def run(*a: Any, **k: Any) -> Any:
            with errors_as_messages():
                return fn(*a, **k)

        return app.command(*args, **kwargs)(run)

    return wrap


def _version(value: bool) -> None:
    if value:
        from latprof._version import __version__

        typer.echo(f"latprof {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    STATE["debug"] = debug


# ---------------------------------------------------------------- output plumbing


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def resolve_formats(fmt: str | None, out: Path | None) -> tuple[str | None, str | None]:
    """(stdout format or None, file format or None), validated before any measuring."""
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    if out is None:
        chosen = fmt or ("table" if stdout_is_terminal() else "csv")
        if chosen == "parquet":
            raise UsageError("parquet is a binary format; write it to a file with -o FILE.parquet")
        return chosen, None
    from latprof.io.atomic import check_writable

    file_fmt = fmt or EXTENSIONS.get(out.suffix.lower())
    if file_fmt is None:
        raise UsageError(
            f"-o {out}: unknown extension {out.suffix or '(none)'!r}; use .csv, .json, .md or "
            ".parquet, or name the format with --format"
        )
    check_writable(out)
    return ("table" if stdout_is_terminal() else None), file_fmt


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class ProgressView:
    """Progress bar on stderr, shown only once a run has taken more than a second."""

    def __init__(self, description: str, delay_s: float = 1.0) -> None:
        self.description = description
        self.delay_s = delay_s
        self.started = time.monotonic()
        self.progress: Any = None
        self.task: Any = None
        self.enabled = sys.stderr.isatty()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            if time.monotonic() - self.started < self.delay_s:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total)
        self.progress.update(
            self.task, completed=done, total=total, description=f"{self.description} ({phase})"
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_notices(notices: list[Any]) -> None:
    """Warnings to stderr: styled on a terminal, plain text (no colour codes) otherwise."""
    if not notices:
        return
    if not sys.stderr.isatty():
        from latprof.render.text import notice_plain

        sys.stdout.flush()  # keep the order of stdout and stderr when both go to one file
        sys.stderr.write("".join(notice_plain(n) for n in notices))
        sys.stderr.flush()
        return
    from latprof.render.terminal import notice_text

    err = console(stderr=True)
    for n in notices:
        err.print(notice_text(n))


def render_profile(prof: Any, fmt: str, by: str, top: int) -> str | Any:
    """A profile as text in `fmt` (or a rich renderable for 'table').

    Renderers are imported per format: CSV and Markdown need neither rich nor pyarrow.
    """
    if fmt == "table":
        from latprof.render.terminal import profile_view

        return profile_view(prof, by=by, top=top)
    if fmt == "json":
        from latprof.io.profile_file import dumps_json

        return dumps_json(prof)
    from latprof.render import text

    rows = prof.layer_rows() if by == "layer" else prof.category_rows()
    return text.to_csv(rows) if fmt == "csv" else text.to_markdown(rows)


def write_profile(prof: Any, path: Path, fmt: str, by: str, top: int) -> None:
    from latprof.io.atomic import write_text

    if fmt == "parquet":
        from latprof.io import profile_file

        profile_file.save_parquet(prof, path)
        return
    rendered = render_profile(prof, fmt, by, top)
    if not isinstance(rendered, str):
        rendered = plain_text(rendered)
    write_text(path, rendered)


def plain_text(renderable: Any) -> str:
    from rich.console import Console

    c = Console(record=True, width=140, file=open("/dev/null", "w"))  # noqa: SIM115
    c.print(renderable)
    return c.export_text()


def emit_profile(
    prof: Any, stdout_fmt: str | None, file_fmt: str | None, out: Path | None, by: str, top: int
) -> None:
    if out is not None and file_fmt is not None:
        write_profile(prof, out, file_fmt, by, top)
    if stdout_fmt == "table":
        console().print(render_profile(prof, "table", by, top))
    elif stdout_fmt is not None:
        sys.stdout.write(render_profile(prof, stdout_fmt, by, top))
    print_notices(prof.notices)  # always, whatever stdout is
    if out is not None:
        typer.echo(f"latprof: wrote {out}", err=True)


def check_by(by: str) -> None:
    if by not in ("category", "layer"):
        raise UsageError(f"--by {by!r} is unknown; use category or layer")


# ---------------------------------------------------------------- commands


@command("profile")
def profile_cmd(
    model: Annotated[
        str,
        typer.Argument(
            help="path/model.py[:NAME], zoo:NAME (see `latprof zoo`) or torchvision:NAME."
        ),
    ],
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            help="Input tensor shape, e.g. 1,3,224,224; repeat for several "
            "inputs. Overrides the model's own.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Override the batch dimension of every input."),
    ] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up passes, never sampled.")] = 10,
    trials: Annotated[
        int, typer.Option("--trials", help="Timed passes (each with and without the layer timers).")
    ] = 20,
    by: ByOpt = "category",
    fmt: FormatOpt = None,
    out: OutOpt = None,
    top: TopOpt = 10,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="From `latprof env --calibrate --save FILE`: adds intensity, achieved MAC/s, "
            "roofline bound and fraction of it reached.",
        ),
    ] = None,
) -> None:
    """Time every leaf layer of MODEL; aggregate per layer category."""
    from latprof.config import ProfileConfig, parse_shape

    check_by(by)
    shapes = [parse_shape(s) for s in input_shape or []]
    config = ProfileConfig(
        device=device, dtype=dtype, threads=threads, warmup=warmup, trials=trials
    )
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if top < 0:
        raise UsageError(f"--top must be 0 or more, got {top}")
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    from latprof.loading import load_model
    from latprof.profiler import check_device, profile

    check_device(config.device)
    cal = None
    if calibration is not None:
        from latprof.calibrate import load as load_calibration

        cal = load_calibration(calibration)
        if (cal.device, cal.dtype) != (config.device, config.dtype):
            raise UsageError(
                f"--calibration {calibration} is for {cal.device} {cal.dtype}, not "
                f"{config.device} {config.dtype}; calibrate with "
                f"`latprof env --calibrate --device {config.device} --dtype {config.dtype} --save`"
            )
    loaded = load_model(model, shapes, batch_size)
    view = ProgressView(f"profiling {model}")
    try:
        prof = profile(
            loaded.module, loaded.args, loaded.kwargs, config, name=loaded.name, progress=view
        )
    finally:
        view.close()
    prof.calibration = cal
    emit_profile(prof, stdout_fmt, file_fmt, out, by, top)


@command("report")
def report_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="A profile saved as .parquet or .json, or a lookup table (.parquet) from "
            "build-lut."
        ),
    ],
    by: ByOpt = "category",
    fmt: FormatOpt = None,
    out: OutOpt = None,
    top: TopOpt = 10,
) -> None:
    """Render a saved profile or lookup table again, in any format.

    Lookup tables (from build-lut): --by category sums per op, --by layer lists entries.
    """
    from latprof.io import profile_file

    check_by(by)
    is_parquet = file.suffix == ".parquet" and file.exists()
    if is_parquet and profile_file.read_parquet_meta(file).get("kind") == "lut":
        from latprof.cli_lut import report_lut

        report_lut(file, by, fmt, out)
        return
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    prof = profile_file.load(file)
    emit_profile(prof, stdout_fmt, file_fmt, out, by, top)


@command("zoo")
def zoo_cmd(fmt: FormatOpt = None) -> None:
    """List the built-in models (MODEL = zoo:NAME)."""
    from latprof.zoo import ZOO

    rows = [
        {
            "name": f"zoo:{e.name}",
            "input_shape": ",".join(map(str, e.input_shape)),
            "description": e.description,
        }
        for e in ZOO.values()
    ]
    emit_rows(rows, fmt, "Built-in models")


def emit_rows(rows: list[dict[str, Any]], fmt: str | None, title: str) -> None:
    """Flat rows to stdout: a rich table on a terminal, CSV on a pipe, or `fmt`."""
    from latprof.render import text

    fmt = fmt or ("table" if stdout_is_terminal() else "csv")
    if fmt == "table":
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in rows[0] if rows else []:
            table.add_column(col)
        for r in rows:
            table.add_row(*(text.cell(v) for v in r.values()))
        console().print(table)
    elif fmt == "csv":
        sys.stdout.write(text.to_csv(rows))
    elif fmt == "markdown":
        sys.stdout.write(text.to_markdown(rows))
    elif fmt == "json":
        import json

        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        raise UsageError(
            f"--format {fmt!r} is not available here; use table, csv, markdown or json"
        )


@command("env")
def env_cmd(
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    fmt: FormatOpt = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Also measure peak MAC/s (a large matmul) and memory bandwidth (a large copy).",
        ),
    ] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="dtype of --calibrate.")] = "float32",
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            help="With --calibrate: write the calibration as JSON, for profile --calibration "
            "and compare --calibration.",
        ),
    ] = None,
) -> None:
    """Print the measuring environment, as recorded in every output file."""
    import torch

    from latprof.config import parse_device
    from latprof.env import capture
    from latprof.profiler import DTYPES, check_device

    dev = parse_device(device)
    if save is not None and not calibrate:
        raise UsageError("--save writes a calibration: add --calibrate")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is unknown; use {', '.join(DTYPES)}")
    if save is not None:
        from latprof.io.atomic import check_writable

        check_writable(save)
    if threads is not None:
        torch.set_num_threads(threads)
    check_device(dev)
    data = capture(dev).to_dict()
    cuda = data.pop("cuda")
    data.update({f"cuda.{k}": v for k, v in cuda.items()})
    if calibrate:
        from latprof import calibrate as cal

        result = cal.measure(dev, dtype)
        data.update(
            {
                "calibration.dtype": dtype,
                "calibration.peak_macs_per_s": result.peak_macs_per_s,
                "calibration.bandwidth_bytes_per_s": result.bandwidth_bytes_per_s,
                "calibration.ridge_point_macs_per_byte": result.ridge_point,
                "calibration.matmul_n": result.matmul_n,
                "calibration.copy_bytes": result.copy_bytes,
            }
        )
        if save is not None:
            result.save(save)
            typer.echo(f"latprof: wrote {save}", err=True)
    rows = [{"key": k, "value": v} for k, v in data.items()]
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(dict(data), indent=2) + "\n")
    else:
        emit_rows(rows, fmt, "Measuring environment")


MULTI_VALUE = ("--models", "--archs")


def expand_multi(argv: list[str]) -> list[str]:
    """`--models a b c` -> `--models a --models b --models c` (click options take one value)."""
    out: list[str] = []
    current = None
    for arg in argv:
        if arg in MULTI_VALUE:
            current = arg
            continue
        if current and not arg.startswith("-"):
            out += [current, arg]
            continue
        current = None
        out.append(arg)
    return out


def run_cli(argv: list[str] | None = None) -> None:
    """Run the app on argv (default sys.argv[1:]); raises SystemExit like any click app."""
    app(args=expand_multi(sys.argv[1:] if argv is None else argv), prog_name="latprof")


def exit_code(code: object) -> int:
    """The process exit status for a SystemExit code (None -> 0, text -> printed, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def main() -> NoReturn:
    """Console-script entry point (also `python -m latprof`).

    After the command has finished and both streams are flushed, the process ends with
    os._exit: that skips the interpreter's teardown of torch (about 0.25 s). Exceptions
    other than SystemExit (tracebacks with --debug) take Python's normal path. Tests call
    the typer `app` (or run_cli) in-process and never reach os._exit.
    """
    try:
        run_cli()
    except SystemExit as exc:
        code = exit_code(exc.code)
    else:  # pragma: no cover - click's standalone mode always raises SystemExit
        code = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # reader went away, or stream closed
            pass
        except OSError:
            code = code or 1
    os._exit(code)


import latprof.cli_lut  # noqa: E402  (registers the lookup-table commands)
import latprof.cli_search  # noqa: E402, F401  (registers arch, predict, validate)

if __name__ == "__main__":
    main()
