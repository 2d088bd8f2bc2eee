"""Where a command's result goes: stdout (rich table on a terminal, CSV on a pipe, or --format)
and -o FILE (format from the extension). Text comes from latprof.io.export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from latprof.cli.app import console, print_notices
from latprof.errors import UsageError

FORMATS = ("table", "csv", "json", "markdown", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    ".parquet": "parquet",
    ".txt": "table",
}


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def resolve_formats(
    fmt: str | None, out: Path | None, option: str = "-o"
) -> tuple[str | None, str | None]:
    """(stdout format or None, file format or None), validated before any measuring."""
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    if out is None:
        chosen = fmt or ("table" if stdout_is_terminal() else "csv")
        if chosen == "parquet":
            raise UsageError("parquet is a binary format; write it to a file with -o FILE.parquet")
        return chosen, None
    from latprof.io.atomic import check_writable

    named_by = EXTENSIONS.get(out.suffix.lower())
    if fmt is not None and named_by is not None and named_by != fmt:
        raise UsageError(
            f"{option} {out}: the extension says {named_by}, --format says {fmt}; name the "
            f"file for its format (e.g. {out.with_suffix(_suffix(fmt)).name}) or drop --format"
        )
    file_fmt = fmt or named_by
    if file_fmt is None:
        named = ", or name the format with --format" if option == "-o" else ""
        raise UsageError(
            f"{option} {out}: unknown extension {out.suffix or '(none)'!r}; use .csv, .json, "
            f".md, .markdown, .txt or .parquet{named}"
        )
    check_writable(out, option)
    return ("table" if stdout_is_terminal() else None), file_fmt


def _suffix(fmt: str) -> str:
    return next(ext for ext, f in EXTENSIONS.items() if f == fmt)


def wrote(path: Path) -> None:
    typer.echo(f"latprof: wrote {path}", err=True)


def emit_rows(rows: list[dict[str, Any]], fmt: str | None, title: str) -> None:
    """Flat rows to stdout: a rich table on a terminal, CSV on a pipe, or `fmt`."""
    fmt = fmt or ("table" if stdout_is_terminal() else "csv")
    if fmt == "table":
        from latprof.render.terminal import Column, laid_out
        from latprof.render.text import cell

        names = list(rows[0]) if rows else []
        cells = {name: [cell(r.get(name)) for r in rows] for name in names}
        # the first column names the row and text columns wrap; the others are shown whole
        # and dropped from the right while the table does not fit
        text = {n for i, n in enumerate(names) if i and any(" " in c for c in cells[n])}
        columns = [
            Column(
                name,
                cells[name],
                "left",
                drop=None if i == 0 or name in text else len(names) - i,
                wraps=i == 0 or name in text,
                squeeze=30 if name in text else None,
            )
            for i, name in enumerate(names)
        ]
        out = console()
        out.print(laid_out(title, columns, width=out.width))
        return
    if fmt not in ("csv", "markdown", "json"):
        raise UsageError(
            f"--format {fmt!r} is not available here; use table, csv, markdown or json"
        )
    from latprof.io.export import rows_text

    sys.stdout.write(rows_text(rows, fmt))


def write_rows(rows: list[dict[str, Any]], fmt: str | None, out: Path | None, title: str) -> None:
    """Rows to stdout (terminal table / CSV on a pipe / fmt) and to `out` by its extension."""
    stdout_fmt, file_fmt = resolve_formats(fmt, out)
    if out is not None and file_fmt is not None:
        from latprof.io.export import write_rows as save

        save(rows, out, file_fmt if file_fmt != "table" else "markdown")
        wrote(out)
    if stdout_fmt is not None:
        if stdout_fmt == "parquet":
            raise UsageError("parquet goes to a file: add -o FILE.parquet")
        emit_rows(rows, stdout_fmt, title)


def emit_profile(
    prof: Any,
    stdout_fmt: str | None,
    file_fmt: str | None,
    out: Path | None,
    by: str,
    top: int,
    depth: int | None = None,
) -> None:
    from latprof.io import export

    if out is not None and file_fmt is not None:
        export.write_profile(prof, out, file_fmt, by, top, depth)
    if stdout_fmt == "table":
        from latprof.render.terminal import profile_view

        console().print(profile_view(prof, by=by, top=top, depth=depth))
    elif stdout_fmt is not None:
        sys.stdout.write(export.profile_text(prof, stdout_fmt, by, depth))
    print_notices(prof.notices)  # always, whatever stdout is
    if out is not None:
        wrote(out)
