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

    The tree is the call tree (`edges`: caller, callee, calls per forward): a module called
    by two parents is listed under each with the calls that parent made, its times and MACs
    in proportion to those calls (its parameters where it is first listed), so every row's
    total is its self time plus its children's. `macs` is what the module's own forward ran;
    `macs_total` adds what the modules it called ran. Without edges (older files) the tree
    by name."""
    records = {r.name: r for r in [*modules, *layers]}
    callees: dict[str, list[tuple[str, float]]] = {}
    for caller, callee, calls in edges:
        if caller != callee and caller in records and callee in records:
            callees.setdefault(caller, []).append((callee, float(calls)))
    if edges:
        below = callees
    else:
        below = {
            m.name: [(c, float(records[c].calls)) for c in m.children if c in records]
            for m in modules
        }
    # calls from other modules: a recursive module's calls of itself are inside its total
    incoming: dict[str, float] = {}
    for kids in below.values():
        for child, calls in kids:
            incoming[child] = incoming.get(child, 0.0) + calls
    roots = [name for name in records if name not in incoming]
    totals: dict[str, float | None] = {}

    def macs_total(name: str, open_: frozenset[str]) -> float | None:
        if name in totals:
            return totals[name]
        record = records[name]
        counted = [] if record.macs is None else [record.macs]
        for child, calls in below.get(name, []):
            if child not in open_:  # mutual recursion: counted once
                inner = macs_total(child, open_ | {name})
                if inner is not None:
                    counted.append(inner * _part(calls, incoming[child]))
        totals[name] = float(sum(counted)) if counted else None
        return totals[name]

    listed_once: set[str] = set()

    def visit(name: str, level: int, parent: str, scale: float, path: frozenset[str]) -> None:
        record = records[name]
        if depth is None or level <= depth:
            row = _row(record, level, parent, e2e_us)
            row["macs_total"] = macs_total(name, frozenset())
            if scale != 1.0:
                for key in ("calls", "time_us", "self_us", "share", "self_share", "macs"):
                    row[key] = None if row[key] is None else row[key] * scale
                if row["macs_total"] is not None:
                    row["macs_total"] *= scale
            if name in listed_once:
                row["params"] = None
            listed_once.add(name)
            rows.append(row)
        for child, calls in below.get(name, []):
            if child not in path:
                share = scale * _part(calls, incoming[child])
                visit(child, level + 1, name, share, path | {child})

    rows: list[dict[str, Any]] = []
    for root in roots:
        visit(root, 0, "", 1.0, frozenset({root}))
    return rows


def _part(calls: float, of: float) -> float:
    """The share of a module's calls from other modules (and of its time) one caller made."""
    return calls / of if of else 0.0


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
