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
    layers: Sequence[Any],
    modules: Sequence[Any],
    e2e_us: float,
    depth: int | None = None,
    edges: Sequence[Sequence[Any]] = (),
) -> list[dict[str, Any]]:
    """Depth-first rows of every timed module (leaves: self = total), down to `depth`.

    `macs` is what the module's own forward ran; `macs_total` adds what the modules it
    called ran, each callee's `macs_total` in proportion to the calls it made of it
    (`edges`: caller, callee, calls per forward), so a module shared by two parents counts
    toward each by its calls. Without edges (older files) the tree by name is summed."""
    records = {r.name: r for r in [*modules, *layers]}
    listed = {c for m in modules for c in m.children}
    roots = [m.name for m in modules if m.name not in listed]
    roots += [r.name for r in layers if r.name not in listed]
    callees: dict[str, list[tuple[str, float]]] = {}
    for caller, callee, calls in edges:
        if caller != callee and caller in records and callee in records:
            callees.setdefault(caller, []).append((callee, float(calls)))
    totals: dict[str, float | None] = {}

    def macs_total(name: str, open_: frozenset[str]) -> float | None:
        if name in totals:
            return totals[name]
        record = records[name]
        counted = [] if record.macs is None else [record.macs]
        if edges:
            parts = [
                (c, calls / records[c].calls if records[c].calls else 0.0)
                for c, calls in callees.get(name, [])
            ]
        else:
            parts = [(c, 1.0) for c in getattr(record, "children", []) if c in records]
        for child, share in parts:
            if child not in open_:  # mutual recursion: counted once
                below = macs_total(child, open_ | {name})
                if below is not None:
                    counted.append(below * share)
        totals[name] = float(sum(counted)) if counted else None
        return totals[name]

    def visit(name: str, level: int, parent: str) -> None:
        record = records[name]
        if depth is None or level <= depth:
            row = _row(record, level, parent, e2e_us)
            row["macs_total"] = macs_total(name, frozenset())
            rows.append(row)
        for child in getattr(record, "children", []):
            if child in records:
                visit(child, level + 1, name)

    rows: list[dict[str, Any]] = []
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
