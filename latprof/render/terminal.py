"""Rich renderables for a profile: category table with bars, slowest layers, summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.constrain import Constrain
from rich.table import Table
from rich.text import Text

from latprof.records import Notice, Profile
from latprof.render.text import conditions_line

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult

BAR_WIDTH = 20
WIDEN = "widen the terminal or use --format csv"


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
    return Text.assemble((p.model, "bold"), "  " + conditions_line(p, "  ·  "))


@dataclass(eq=False)  # compared by identity: two columns may hold the same cells
class Column:
    """A column before it is laid out: its cells as text, and how it gives way to width.

    `drop`: the order in which columns are dropped when the table does not fit (0 first);
    None: always shown. `wraps`: a name column, which wraps (folds) once no column is left
    to drop; any other column is shown whole (numbers are never cut)."""

    header: str
    cells: list[str]
    justify: JustifyMethod = "right"
    drop: int | None = None
    wraps: bool = False
    label: str = ""  # its name in the "columns dropped" line, when the header is empty
    squeeze: int | None = None  # a text column: counted this narrow (it wraps) when fitting

    @property
    def full(self) -> int:
        return max([cell_len(self.header), *(cell_len(c) for c in self.cells)])

    @property
    def fit(self) -> int:
        """The width it needs: whole, or at most `squeeze` for a text column."""
        return min(self.full, self.squeeze) if self.squeeze else self.full


def table_width(columns: list[Column]) -> int:
    """Characters of a table of these columns, every cell whole (edges, borders, padding)."""
    return sum(c.fit for c in columns) + 3 * len(columns) + 1


def fit_columns(columns: list[Column], width: int | None) -> tuple[list[Column], list[Column]]:
    """(kept, dropped): columns dropped by their `drop` order until the table fits `width`
    with every cell whole. Names wrap only when even that is too wide."""
    kept = list(columns)
    droppable = sorted((c for c in columns if c.drop is not None), key=lambda c: c.drop or 0)
    while width is not None and table_width(kept) > width and droppable:
        kept.remove(droppable.pop(0))
    return kept, [c for c in columns if c not in kept]


def laid_out(
    title: str,
    columns: list[Column],
    styles: list[str | None] | None = None,
    width: int | None = None,
) -> Table:
    """A table of the columns that fit `width`, saying which were dropped."""
    kept, dropped = fit_columns(columns, width)
    caption = None
    if dropped:
        names = ", ".join(c.header or c.label for c in dropped)
        caption = f"columns dropped for width: {names}; {WIDEN}"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for c in kept:
        if c.wraps:  # rich narrows only these columns, folding long names
            table.add_column(c.header, justify=c.justify, overflow="fold")
        else:  # never cut: no wrapping, and never narrower than its widest cell
            table.add_column(c.header, justify=c.justify, no_wrap=True, min_width=c.full)
    rows = len(columns[0].cells) if columns else 0
    for i in range(rows):
        table.add_row(*(c.cells[i] for c in kept), style=styles[i] if styles else None)
    return table


Layout = tuple[str, list[Column], list[str | None] | None]
"""A table before it is laid out: title, columns, row styles."""


def category_layout(p: Profile) -> Layout:
    """Time per category. Never dropped: category, time µs, share."""
    rows = p.category_rows()
    columns = [
        Column("category", [r["category"] for r in rows], "left", wraps=True),
        Column("calls", [f"{r['calls']:g}" for r in rows], drop=4),
        Column("time µs", [us(r["time_us"]) for r in rows]),
        Column("share", [f"{r['share']:.1%}" for r in rows]),
        Column("", [bar(r["share"]) for r in rows], "left", drop=0, label="share bar"),
        Column("MACs", [count(r["macs"]) if r["layers"] else "" for r in rows], drop=3),
        Column("params", [count(r["params"]) if r["layers"] else "" for r in rows], drop=1),
    ]
    if p.calibration is not None:
        achieved = [r.get("achieved_macs_per_s") for r in rows]
        columns.append(Column("MAC/s", [count(a) if a else "" for a in achieved], drop=2))
    title = "Time per layer category (means over trials, per forward pass)"
    return title, columns, ["dim" if not r["layers"] else None for r in rows]


def layer_layout(p: Profile, top: int | None = None) -> Layout:
    """Layers (all, or the `top` slowest). Never dropped: layer, time µs, share."""
    rows = p.layer_rows()
    title = "All layers"
    if top is not None:
        rows = sorted(rows, key=lambda r: r["time_us"], reverse=True)[:top]
        title = f"Slowest {len(rows)} layers"
    columns = [
        Column("layer", [r["layer"] for r in rows], "left", wraps=True),
        Column("category", [r["category"] for r in rows], "left", drop=8, wraps=True),
        Column("calls", [f"{r['calls']:g}" for r in rows], drop=7),
        Column("time µs", [us(r["time_us"]) for r in rows]),
        Column("median µs", [us(r["time_us_median"]) for r in rows], drop=1),
        Column("share", [f"{r['share']:.1%}" for r in rows]),
        Column("MACs", [count(r["macs"]) for r in rows], drop=4),
    ]
    if p.calibration is not None:
        achieved = [r["achieved_macs_per_s"] for r in rows]
        intensity = [f"{r['intensity']:.1f}" if r["intensity"] else "" for r in rows]
        fractions = [r["roofline_fraction"] for r in rows]
        columns += [
            Column("MAC/s", [count(a) if a else "" for a in achieved], drop=3),
            Column("MAC/B", intensity, drop=2),
            Column("bound", [r["bound"] or "" for r in rows], drop=5),
            Column("of roof", [f"{f:.0%}" if f is not None else "" for f in fractions], drop=6),
        ]
    shapes = [f"{r['input_shape']} → {r['output_shape']}" for r in rows]
    columns.append(Column("input → output", shapes, "left", drop=0))
    return title, columns, None


def module_layout(p: Profile, depth: int | None = None) -> Layout:
    """The module tree, names indented by depth. Never dropped: module, time µs, self µs."""
    rows = p.module_rows(depth)
    names = ["  " * r["depth"] + r["module"] for r in rows]  # whole names: --module takes them
    columns = [
        Column("module", names, "left", wraps=True),
        Column("class", [r["class"] for r in rows], "left", drop=6, wraps=True),
        Column("calls", [f"{r['calls']:g}" for r in rows], drop=5),
        Column("time µs", [us(r["time_us"]) for r in rows]),
        Column("self µs", [us(r["self_us"]) for r in rows]),
        Column("share", [f"{r['share']:.1%}" for r in rows], drop=2),
        Column("self share", [f"{r['self_share']:.1%}" for r in rows], drop=1),
        Column("MACs", [count(r["macs_total"]) for r in rows], drop=4),
        Column("self MACs", [count(r["macs"]) for r in rows], drop=3),
    ]
    below = "" if depth is None else f", down to depth {depth}"
    title = f"Module tree: total and self time (means over trials, per forward{below})"
    return title, columns, [None if r["depth"] else "bold" for r in rows]


def op_layout(p: Profile) -> Layout:
    """The aten ops inside one module (--by op --module NAME)."""
    rows = p.ops or []
    columns = [
        Column("op", [r["op"] for r in rows], "left", wraps=True),
        Column("calls", [f"{r['calls']:g}" for r in rows], drop=2),
        Column("time µs", [us(r["time_us"]) for r in rows]),
        Column("median µs", [us(r["time_us_median"]) for r in rows], drop=1),
        Column("MACs", [count(r["macs"]) for r in rows], drop=3),
    ]
    title = f"Aten ops inside {p.config.op_module} (separate passes under a dispatch mode)"
    return title, columns, None


def category_table(p: Profile, width: int | None = None) -> Table:
    """The category table; at `width` columns, lower-priority columns give way, and only
    then names wrap (None: every column)."""
    return laid_out(*category_layout(p), width=width)


def layer_table(p: Profile, top: int | None = None, width: int | None = None) -> Table:
    """The layer table (all, or the `top` slowest), fitted to `width` like category_table."""
    return laid_out(*layer_layout(p, top), width=width)


def summary_line(p: Profile) -> Text:
    s = p.summary
    e2e = s.e2e
    share = s.unattributed_us / e2e.mean if e2e.mean else float("nan")
    return Text.assemble(
        ("end-to-end ", "bold"),
        f"{us(e2e.mean)} µs (median {us(e2e.median)}, IQR {us(e2e.iqr)}, n={e2e.n}"
        + (
            f", {p.e2e_faults_per_pass:,.0f} page faults/pass"
            if p.e2e_faults_per_pass is not None
            else ""
        )
        + ")  ·  ",
        ("leaf sum ", "bold"),
        f"{us(s.leaf_sum_us)} µs  ·  ",
        *((("self times ", "bold"), f"{us(s.self_sum_us)} µs  ·  ") if p.modules else ()),
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

    def figure(run: dict[str, Any]) -> str:
        return f"{us(run['median_us'])} µs ({run['faults_per_pass']:,.0f} faults/pass)"

    system = f"system {figure(check['system'])}" + "".join(
        f", another system process {figure(run)}" for run in check.get("system_more", [])
    )
    ratio = check.get("ratio_steady_to_system")
    return (
        f"\nallocator check (fresh processes, plain passes, medians): {system} vs steady "
        + figure(check["steady"])
        + (f", steady/system {ratio:.3f}" if ratio else "")
    )


def notice_text(n: Notice) -> Text:
    text = Text.assemble(("Warning: ", "bold yellow"), n.message)
    if n.hint:
        text.append(f"\n  hint: {n.hint}", style="dim")
    return text


class ProfileView:
    """A profile as the terminal shows it: header, tables, summary. The tables fit `width`
    (None: the console's width when printed) by dropping lower-priority columns, said in
    a line under the table, and only then by wrapping names; a number is never cut."""

    def __init__(
        self, p: Profile, by: str, top: int, width: int | None, depth: int | None = None
    ) -> None:
        self.p, self.width = p, width
        if by == "layer":
            self.layouts = [layer_layout(p)]
        elif by == "module":
            self.layouts = [module_layout(p, depth)]
        elif by == "op":
            self.layouts = [op_layout(p)]
        else:
            self.layouts = [category_layout(p)]
            if top > 0 and p.layers:
                self.layouts.append(layer_layout(p, top))

    def full_width(self) -> int:
        """Characters the widest table needs with every column and whole names."""
        return max(table_width(columns) for _, columns, _ in self.layouts)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = min(self.width or options.max_width, options.max_width)
        parts: list[Any] = [header(self.p)]
        parts += [laid_out(title, cols, styles, width) for title, cols, styles in self.layouts]
        parts.append(summary_line(self.p))
        for part in parts:
            yield Constrain(part, width)


def profile_view(
    p: Profile,
    by: str = "category",
    top: int = 10,
    width: int | None = None,
    depth: int | None = None,
) -> ProfileView:
    """The terminal view of a profile, its tables fitted to `width` (None: the console's)."""
    return ProfileView(p, by, top, width, depth)


def plain_text(renderable: Any, width: int = 140) -> str:
    """A rich renderable as plain text (for a .txt file)."""
    import io

    from rich.console import Console

    c = Console(record=True, width=width, file=io.StringIO())
    c.print(renderable)
    return c.export_text()
