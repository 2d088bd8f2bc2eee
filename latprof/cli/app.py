"""The typer app and what every command shares: errors -> exit codes, common options,
progress, notices, the entry point. The only layer that prints, exits or reads argv.

Heavy imports (torch, pandas, pyarrow) happen inside commands so `--help` stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from latprof.errors import LatprofError, LatprofWarning, UsageError

app = typer.Typer(
    name="latprof",
    help="Per-layer latency profiles and latency lookup tables for PyTorch models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
ListFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="table, csv, json or markdown. Default: table on a terminal, CSV on a pipe.",
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
Tf32Opt = Annotated[
    str | None,
    typer.Option(
        "--tf32", help="CUDA: TF32 for matmul and cuDNN, on or off. Default: PyTorch's own."
    ),
]
CudnnBenchmarkOpt = Annotated[
    str | None,
    typer.Option(
        "--cudnn-benchmark", help="CUDA: cudnn.benchmark, on or off. Default: PyTorch's own."
    ),
]
ByOpt = Annotated[
    str,
    typer.Option(
        "--by", help="category, layer, module (the module tree) or op (with --module NAME)."
    ),
]
ReportByOpt = Annotated[
    str,
    typer.Option(
        "--by", help="category, layer, module (the module tree) or op (the op view saved with it)."
    ),
]
DepthOpt = Annotated[
    int | None,
    typer.Option("--depth", help="--by module: show the tree down to this depth (model = 0)."),
]
ModuleOpt = Annotated[
    str | None,
    typer.Option(
        "--module",
        help="--by op: time the aten ops inside this module (a name from --by module).",
    ),
]
LeavesOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--leaves-only",
        help="Time leaf modules only; work in parent modules' own forwards is unattributed.",
    ),
]
TopOpt = Annotated[int, typer.Option("--top", help="Slowest layers shown on a terminal.")]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"latprof: error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"latprof: warning: {message}", err=True)


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """One-line errors and an exit code instead of tracebacks (unless --debug). The
    library's LatprofWarnings are silenced: commands print the ones that matter themselves."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatprofWarning)
            yield
    except LatprofError as exc:
        if STATE["debug"]:  # the traceback, then the same message and exit code as without
            traceback.print_exc(file=sys.stderr)
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("latprof: interrupted", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if STATE["debug"]:
            raise
        fail(
            f"unexpected {type(exc).__name__}: {exc} (re-run as latprof --debug COMMAND "
            "... for a traceback, and please report it)",
            1,
        )


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """app.command() whose body runs inside errors_as_messages()."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
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


def on_off(value: str | None, name: str) -> bool | None:
    """'on' -> True, 'off' -> False, None -> None (leave the setting alone)."""
    if value is None:
        return None
    if value not in ("on", "off"):
        raise UsageError(f"{name} {value!r}: use on or off")
    return value == "on"


def cuda_conditions(tf32: str | None, cudnn_benchmark: str | None) -> dict[str, bool | None]:
    """--tf32 and --cudnn-benchmark as ProfileConfig/plan keyword arguments."""
    return {
        "tf32": on_off(tf32, "--tf32"),
        "cudnn_benchmark": on_off(cudnn_benchmark, "--cudnn-benchmark"),
    }


def set_threads(n: int | None) -> None:
    """torch intra-op threads, as the user asked (--threads); nothing when not asked."""
    if n is not None:
        import torch

        torch.set_num_threads(n)


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
            self._start(total)
        self.progress.update(
            self.task, completed=done, total=total, description=f"{self.description} ({phase})"
        )

    def _start(self, total: int) -> None:
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


MULTI_VALUE = ("--models", "--archs", "--unit")


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


GLOBAL_OPTIONS = ("--debug", "--version")


def one_line_usage_error(exc: Any) -> None:
    """click's usage errors (unknown option, bad value, missing argument) as one line on
    stderr, like latprof's own, instead of a multi-line panel."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments: the help is the answer
        text = exc.format_message()  # empty when rich has printed the help already
        if text.strip():
            sys.stderr.write(text.rstrip() + "\n")
        return
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    option = getattr(exc, "option_name", None)
    if option in GLOBAL_OPTIONS and ctx is not None and ctx.parent is not None:
        where = f"; {option} goes before the command: latprof {option} {ctx.info_name} ..."
    sys.stderr.write(f"latprof: error: {message}{where}\n")


def run_cli(argv: list[str] | None = None) -> NoReturn:
    """Run the app on argv (default sys.argv[1:]); raises SystemExit like any click app,
    with click's usage errors as one line."""
    # click's base class, whether typer vendors click or uses it
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    args = expand_multi(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=args, prog_name="latprof", standalone_mode=False)
    except click_error as exc:
        one_line_usage_error(exc)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)


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
    else:  # pragma: no cover - run_cli always raises SystemExit
        code = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # reader went away, or stream closed
            pass
        except OSError:
            code = code or 1
    os._exit(code)
