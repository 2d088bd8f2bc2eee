"""CSV and Markdown from flat rows (lists of dicts with the same keys)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any


def cell(value: Any) -> str:
    """A value as it appears in CSV/Markdown: empty for missing, short exact floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e4:
            return str(int(value))
        if 1e-12 < abs(value) < 1e-3:  # a scale such as 4.73e-05: 4 significant digits
            return repr(float(f"{value:.4g}"))
        return repr(round(value, 4))
    return str(value)


INTEGER_COLUMNS = frozenset({"macs", "macs_total"})
"""Columns of counts kept as floats in memory (NaN or None where unknown) and written as
integers: `38633472`, `0`, empty where unknown."""


def column_cell(column: str, value: Any) -> str:
    """`cell`, except that counts (INTEGER_COLUMNS) are whole numbers."""
    if column in INTEGER_COLUMNS and isinstance(value, float) and math.isfinite(value):
        return str(round(value))
    return cell(value)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([column_cell(c, row.get(c)) for c in columns])
    return out.getvalue()


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(column_cell(c, row.get(c)).replace("|", "\\|") for c in columns)
            + " |"
        )
    return "\n".join(lines) + "\n"


def notice_plain(notice: Any) -> str:
    """A notice (records.Notice) as plain text lines for stderr, ending in a newline."""
    text = f"Warning: {notice.message}\n"
    if notice.hint:
        text += f"  hint: {notice.hint}\n"
    return text


def conditions_line(p: Any, sep: str) -> str:
    """What a profile measured and under which conditions, the parts joined by `sep`: the
    header line of the terminal and Markdown reports (after the model's name)."""
    c, e = p.config, p.environment
    parts = [
        f"input {', '.join(p.input_shapes)}",
        f"{c.device} ({e.device_name})",
        c.dtype,
        f"{e.intra_op_threads} thread(s)",
        f"allocator {c.allocator}",
    ]
    if e.cuda:  # the CUDA conditions as recorded
        onoff = {True: "on", False: "off"}
        parts.append(f"TF32 {onoff.get(e.cuda.get('tf32_matmul'), '?')}")
        parts.append(f"cudnn.benchmark {onoff.get(e.cuda.get('cudnn_benchmark'), '?')}")
        if e.cuda.get("deterministic"):
            parts.append("deterministic")
    parts.append(f"warm-up {c.warmup}, trials {c.trials}")
    return sep.join(parts)
