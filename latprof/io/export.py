"""One export path: any result (a profile, or flat rows of a table, validation or comparison)
as CSV, JSON, Markdown or Parquet. Pure text functions, plus atomic writers to files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latprof.errors import UsageError
from latprof.io.atomic import write_text, write_with

ROW_FORMATS = ("csv", "json", "markdown")


def rows_text(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """Flat rows as CSV, JSON or Markdown text."""
    from latprof.render import text

    if fmt == "csv":
        return text.to_csv(rows)
    if fmt == "markdown":
        return text.to_markdown(rows)
    if fmt == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    raise UsageError(f"--format {fmt!r} is not available here; use csv, markdown or json")


def write_rows(rows: Sequence[dict[str, Any]], path: Path, fmt: str) -> None:
    """Flat rows to a file, atomically; Parquet as a plain table of the rows."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = _typed_nulls(pa.Table.from_pylist(list(rows)))
        write_with(path, lambda tmp: pq.write_table(table, tmp))
        return
    write_text(path, rows_text(rows, fmt))


def _typed_nulls(table: Any) -> Any:
    """Columns named *_us or *_pct (microseconds, percent) as float64 even when every row holds
    None (validate's half_a_us with --trials 2), so files from two runs concatenate."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type) and field.name.endswith(("_us", "_pct")):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
    return table


def profile_text(prof: Any, fmt: str, by: str, depth: int | None = None) -> str:
    """A profile as JSON (the whole file schema), or the rows of one view (category, layer,
    module down to `depth`, op) as CSV/Markdown."""
    if fmt == "json":
        from latprof.io.profile_file import dumps_json

        return dumps_json(prof)
    from latprof.render import text

    rows = prof.rows(by, depth)
    allocator = prof.config.allocator
    if fmt == "csv":
        return text.to_csv([{**r, "allocator": allocator} for r in rows])
    return f"{markdown_header(prof)}\n\n{text.to_markdown(rows)}"


def markdown_header(prof: Any) -> str:
    """The Markdown report's header line: what was measured, under which conditions."""
    from latprof.render.text import conditions_line

    return f"**{prof.model}** {conditions_line(prof, ' · ')}"


def write_profile(
    prof: Any, path: Path, fmt: str, by: str, top: int, depth: int | None = None
) -> None:
    """A profile to a file in `fmt` (parquet, json, csv, markdown, or table as plain text)."""
    if fmt == "parquet":
        from latprof.io import profile_file

        profile_file.save_parquet(prof, path)
        return
    if fmt == "table":
        from latprof.render.terminal import plain_text, profile_view

        view = profile_view(
            prof, by=by, top=top, depth=depth
        )  # a file is as wide as its tables need
        write_text(path, plain_text(view, max(140, view.full_width())))
        return
    write_text(path, profile_text(prof, fmt, by, depth))
