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

    The tree is the call tree (`edges`: caller, callee, calls per forward and, in files since
    2026-12-07, the callee's total µs in those calls): a module called by two parents is
    listed under each with the calls that parent made and the time they took (older files:
    in proportion to the calls), its MACs in proportion to the calls, its parameters where
    first listed, so every row's total is its self time plus its children's. `macs` is what
    the module's own forward ran; `macs_total` adds what the modules it called ran. Without
    edges (older files still) the tree by name."""
    records = {r.name: r for r in [*modules, *layers]}
    below: dict[str, list[tuple[str, float, float | None]]] = {}
    if edges:
        for caller, callee, calls, *took in edges:
            if caller != callee and caller in records and callee in records:
                below.setdefault(caller, []).append((callee, float(calls), _us(took)))
    else:
        for m in modules:
            below[m.name] = [(c, float(records[c].calls), None) for c in m.children if c in records]
    # calls from other modules: a recursive module's calls of itself are inside its total
    incoming: dict[str, float] = {}
    callers: dict[str, int] = {}
    for kids in below.values():
        for child, calls, _ in kids:
            incoming[child] = incoming.get(child, 0.0) + calls
            callers[child] = callers.get(child, 0) + 1
    roots = [name for name in records if name not in incoming]
    totals: dict[str, float | None] = {}

    def macs_total(name: str, open_: frozenset[str]) -> float | None:
        if name in totals:
            return totals[name]
        record = records[name]
        counted = [] if record.macs is None else [record.macs]
        for child, calls, _ in below.get(name, []):
            if child not in open_:  # mutual recursion: counted once
                inner = macs_total(child, open_ | {name})
                if inner is not None:
                    counted.append(inner * _part(calls, incoming[child]))
        totals[name] = float(sum(counted)) if counted else None
        return totals[name]

    listed_once: set[str] = set()

    def visit(name: str, level: int, parent: str, part: tuple[float, float], path: frozenset):
        record, (of_calls, of_time) = records[name], part
        if depth is None or level <= depth:
            row = _row(record, level, parent, e2e_us)
            row["macs_total"] = macs_total(name, frozenset())
            for key, scale in (("calls", of_calls), ("macs", of_calls), ("macs_total", of_calls)):
                if row[key] is not None:
                    row[key] *= scale
            for key in ("time_us", "self_us", "share", "self_share"):
                row[key] *= of_time
            if name in listed_once:
                row["params"] = None
            listed_once.add(name)
            rows.append(row)
        for child, calls, took in below.get(name, []):
            if child not in path:
                calls_part = _part(calls, incoming[child])
                whole = _total(records[child])
                shared = callers[child] > 1 and took is not None and whole
                time_part = took / whole if shared else calls_part  # one caller: all of it
                visit(child, level + 1, name, (of_calls * calls_part, of_time * time_part),
                      path | {child})  # fmt: skip

    rows: list[dict[str, Any]] = []
    for root in roots:
        visit(root, 0, "", (1.0, 1.0), frozenset({root}))
    return rows


def _us(took: list[Any]) -> float | None:
    return float(took[0]) if took and took[0] is not None else None


def _total(record: Any) -> float:
    stats = record.total_stats if hasattr(record, "total_stats") else record.stats
    return stats.mean


def _part(calls: float, of: float) -> float:
    """The share of a module's calls from other modules that one caller made."""
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
