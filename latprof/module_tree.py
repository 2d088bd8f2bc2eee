"""The module tree of a profile: who is whose parent, and the `--by module` rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from latprof.measure import ROOT_NAME


def parent_of(name: str, present: set[str]) -> str | None:
    """The nearest registration ancestor of `name` among `present` (the root last)."""
    if name == ROOT_NAME:
        return None
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in present:
            return candidate
    return ROOT_NAME if ROOT_NAME in present else None


def children_of(names: Sequence[str]) -> dict[str, list[str]]:
    """Each name's direct children among `names`, in the order given (first calls)."""
    present = set(names)
    out: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        parent = parent_of(name, present)
        if parent is not None:
            out[parent].append(name)
    return out


def tree_rows(
    layers: Sequence[Any], modules: Sequence[Any], e2e_us: float, depth: int | None = None
) -> list[dict[str, Any]]:
    """Depth-first rows of every timed module (leaves: self = total), down to `depth`.

    `macs` is what the module's own forward ran; `macs_total` adds its subtree's."""
    records = {r.name: r for r in [*modules, *layers]}
    listed = {c for m in modules for c in m.children}
    roots = [m.name for m in modules if m.name not in listed]
    roots += [r.name for r in layers if r.name not in listed]
    rows: list[dict[str, Any]] = []

    def visit(name: str, level: int, parent: str) -> float | None:
        record = records[name]
        row = _row(record, level, parent, e2e_us)
        if depth is None or level <= depth:
            rows.append(row)
        counted = [] if record.macs is None else [record.macs]
        for child in getattr(record, "children", []):
            if child in records:
                below = visit(child, level + 1, name)
                if below is not None:
                    counted.append(below)
        row["macs_total"] = float(sum(counted)) if counted else None
        return row["macs_total"]

    for root in roots:
        visit(root, 0, "")
    return rows


def _share(us: float, e2e_us: float) -> float:
    return us / e2e_us if e2e_us else float("nan")


def _row(record: Any, level: int, parent: str, e2e_us: float) -> dict[str, Any]:
    own = record.stats.mean
    total = record.total_stats.mean if hasattr(record, "total_stats") else own
    return {
        "module": record.name,
        "class": record.category,
        "parent": parent,
        "depth": level,
        "calls": record.calls,
        "time_us": total,
        "self_us": own,
        "share": _share(total, e2e_us),
        "self_share": _share(own, e2e_us),
        "macs": record.macs,
        "macs_total": None,
        "macs_by": record.macs_by,
        "params": record.params,
    }
