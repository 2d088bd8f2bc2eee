"""Rich renderables for a profile: category table with bars, slowest layers, summary."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from latprof.records import Notice, Profile
from latprof.render.text import cuda_conditions

BAR_WIDTH = 20


def us(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.1f}"


def count(value: float | None) -> str:
    if value is None or value != value:
        return "not counted"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


def bar(share: float) -> str:
    share = max(0.0, min(1.0, share if share == share else 0.0))
    full = share * BAR_WIDTH
    return "█" * int(full) + ("▌" if full - int(full) >= 0.5 else "")


def header(p: Profile) -> Text:
    c, e = p.config, p.environment
    threads = f"{e.intra_op_threads} thread(s)"
    return Text.assemble(
        (p.model, "bold"),
        f"  input {', '.join(p.input_shapes)}  ·  {c.device} ({e.device_name})"
        f"  ·  {c.dtype}  ·  {threads}  ·  allocator {c.allocator}{cuda_conditions(e.cuda)}"
        f"  ·  warm-up {c.warmup}, trials {c.trials}",
    )


def category_table(p: Profile) -> Table:
    table = Table(
        title="Time per layer category (means over trials, per forward pass)", title_justify="left"
    )
    for name, justify in [
        ("category", "left"),
        ("calls", "right"),
        ("time µs", "right"),
        ("share", "right"),
        ("", "left"),
        ("MACs", "right"),
        ("params", "right"),
    ]:
        table.add_column(name, justify=justify)
    roof = p.calibration is not None
    if roof:
        table.add_column("MAC/s", justify="right")
    for row in p.category_rows():
        achieved = row.get("achieved_macs_per_s")
        extra = [count(achieved) if achieved else ""]
        table.add_row(
            row["category"],
            f"{row['calls']:g}",
            us(row["time_us"]),
            f"{row['share']:.1%}",
            bar(row["share"]),
            count(row["macs"]) if row["layers"] else "",
            count(row["params"]) if row["layers"] else "",
            *(extra if roof else []),
            style="dim" if not row["layers"] else None,
        )
    return table


def layer_table(p: Profile, top: int | None = None) -> Table:
    rows = p.layer_rows()
    title = "All layers"
    if top is not None:
        rows = sorted(rows, key=lambda r: r["time_us"], reverse=True)[:top]
        title = f"Slowest {len(rows)} layers"
    table = Table(title=title, title_justify="left")
    table.add_column("layer", no_wrap=True, ratio=3)
    table.add_column("category", no_wrap=True)
    roof = p.calibration is not None
    for name in ("calls", "time µs", "median µs", "share", "MACs"):
        table.add_column(name, justify="right", no_wrap=True)
    if roof:
        for name in ("MAC/s", "MAC/B", "bound", "of roof"):
            table.add_column(name, justify="right", no_wrap=True)
    table.add_column("input → output", no_wrap=True, ratio=2)
    for r in rows:
        extra = []
        if roof:
            fraction = r["roofline_fraction"]
            extra = [
                count(r["achieved_macs_per_s"]) if r["achieved_macs_per_s"] else "",
                f"{r['intensity']:.1f}" if r["intensity"] else "",
                r["bound"] or "",
                f"{fraction:.0%}" if fraction is not None else "",
            ]
        table.add_row(
            r["layer"],
            r["category"],
            f"{r['calls']:g}",
            us(r["time_us"]),
            us(r["time_us_median"]),
            f"{r['share']:.1%}",
            count(r["macs"]),
            *extra,
            f"{r['input_shape']} → {r['output_shape']}",
        )
    return table


def summary_line(p: Profile) -> Text:
    s = p.summary
    e2e = s.e2e
    share = s.unattributed_us / e2e.mean if e2e.mean else float("nan")
    return Text.assemble(
        ("end-to-end ", "bold"),
        f"{us(e2e.mean)} µs (median {us(e2e.median)}, IQR {us(e2e.iqr)}, n={e2e.n})  ·  ",
        ("leaf sum ", "bold"),
        f"{us(s.leaf_sum_us)} µs  ·  ",
        ("unattributed ", "bold"),
        f"{us(s.unattributed_us)} µs ({share:.1%})  ·  ",
        ("timer overhead ", "bold"),
        f"{s.overhead_per_call_us:.2f} µs/call "
        f"({us(s.overhead_us)} µs/pass; bias {s.bias_us:.2f} µs/call subtracted)",
        allocator_line(p),
    )


def allocator_line(p: Profile) -> str:
    """Both allocator conditions' end-to-end medians and faults, when they were measured."""
    check = p.allocator_check
    if not check:
        return ""
    parts = [
        f"{name} {us(check[name]['median_us'])} µs ({check[name]['faults_per_pass']:.0f} "
        "faults/pass)"
        for name in ("system", "steady")
    ]
    ratio = check.get("ratio_steady_to_system")
    return (
        "\nallocator check (fresh processes, plain passes, medians): "
        + " vs ".join(parts)
        + (f", steady/system {ratio:.3f}" if ratio else "")
    )


def notice_text(n: Notice) -> Text:
    text = Text.assemble(("Warning: ", "bold yellow"), n.message)
    if n.hint:
        text.append(f"\n  hint: {n.hint}", style="dim")
    return text


def profile_view(p: Profile, by: str = "category", top: int = 10) -> Group:
    parts = [header(p)]
    if by == "layer":
        parts.append(layer_table(p))
    else:
        parts.append(category_table(p))
        if top > 0 and p.layers:
            parts.append(layer_table(p, top))
    parts.append(summary_line(p))
    return Group(*parts)


def plain_text(renderable: Any, width: int = 140) -> str:
    """A rich renderable as plain text (for a .txt file)."""
    import io

    from rich.console import Console

    c = Console(record=True, width=width, file=io.StringIO())
    c.print(renderable)
    return c.export_text()
