"""Predict a network's latency as a sum of lookup-table entries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from latprof.config import MeasureSettings
from latprof.errors import LookupMissError, SpaceError
from latprof.lut.table import scale_of

if TYPE_CHECKING:
    from latprof.lut.table import LatencyTable
    from latprof.measure.clocks import Clock
    from latprof.space.arch import Arch
    from latprof.space.model import Entry, SearchSpace

OnMiss = Literal["raise", "measure", "report"]


@dataclass(frozen=True)
class BlockTime:
    """One block of a prediction; ``source`` is measured, interpolated, measured-now or missing."""

    slot: str
    key: str
    time_us: float | None
    source: str
    macs: float | None = None


@dataclass
class Prediction:
    """Total (sum of the blocks found) and the per-block breakdown; misses listed by key."""

    name: str
    blocks: list[BlockTime]
    misses: list[str] = field(default_factory=list)
    correction: dict[str, Any] | None = None  # the table's fitted correction, if any
    scale: float = 1.0  # a recalibration's factor (lut/recalibrate.py), if any

    @property
    def sum_us(self) -> float:
        """The raw sum of the entries found."""
        return sum(b.time_us for b in self.blocks if b.time_us is not None)

    @property
    def total_us(self) -> float:
        """The prediction: the sum, corrected when the table carries a correction, times the
        factor of a recalibration."""
        if self.misses:
            return self.sum_us
        return self.scale * self.unscaled_us

    @property
    def unscaled_us(self) -> float:
        """The prediction before any recalibration (the sum, or its correction)."""
        if self.correction is None:
            return self.sum_us
        from latprof.lut.table import corrected

        return corrected(self.correction, self.sum_us, len(self.blocks))

    @property
    def macs(self) -> float:
        return sum(b.macs or 0.0 for b in self.blocks)

    def rows(self) -> list[dict[str, Any]]:
        total = self.sum_us
        return [
            {
                "block": b.slot,
                "key": b.key,
                "time_us": b.time_us,
                "share": (b.time_us / total) if b.time_us is not None and total else None,
                "source": b.source,
                "macs": b.macs,
            }
            for b in self.blocks
        ]


# ---------------------------------------------------------------------- space tables


def _require_space_table(table: LatencyTable) -> None:
    if table.meta.get("source") != "space":
        raise SpaceError(
            "this lookup table was built from models (--models), not a search space; "
            "predict a model with it instead of an architecture"
        )


def table_space(table: LatencyTable, arch: Arch, space: SearchSpace | None) -> SearchSpace:
    """The space both `arch` and `table` belong to; SpaceError when they don't agree."""
    from latprof.space.arch import space_of

    _require_space_table(table)
    meta = table.meta
    if space is None and meta.get("space_file") and arch.space in (meta["space"], None):
        from latprof.space.builtin import space_of_table

        space = space_of_table(meta)  # a TOML space: the file the table was built from
    space = space_of(arch, space)
    want = table.meta.get("space_hash")
    if not table.is_for_space(space):
        raise SpaceError(
            f"the lookup table is for space {table.meta.get('space')!r} (hash {want}), but "
            f"arch {arch.name!r} is for {space.name!r} (hash {space.hash()}); "
            "build a table for that space"
        )
    return space


def _lookup(
    table: LatencyTable,
    key: str,
    on_miss: OnMiss,
    measure: Callable[[], dict[str, Any]] | None = None,
    exact: bool = False,
) -> tuple[float | None, str, float | None]:
    """(µs, source, MACs) of one key; with on_miss "measure", a miss is measured by `measure`
    (None: the caller measured its misses beforehand)."""
    row = table.rows.get(key)
    if row is not None and row["status"] == "ok":
        return table.time_of(row), "measured", row["macs"]
    value = None if exact and on_miss == "measure" and row is None else table.get(key)
    if value is not None:
        return value, "interpolated", None
    if on_miss == "measure":
        if row is not None:  # a failed entry: measuring again would fail again
            raise LookupMissError(f"entry {key} failed when the table was built: {row['error']}")
        if measure is None:
            return None, "missing", None
        new = measure()
        table.rows[key] = new
        if new["status"] != "ok":
            raise LookupMissError(f"entry {key} failed to run: {new['error']}")
        return table.time_of(new), "measured-now", new["macs"]
    return None, "missing", None


def predict_arch(
    table: LatencyTable,
    arch: Arch,
    space: SearchSpace | None = None,
    on_miss: OnMiss = "raise",
    exact: bool = False,
) -> Prediction:
    """Sum of the table's entries along `arch`. Misses raise LookupMissError unless
    ``on_miss`` is ``"measure"`` (measured now, the way the table was built, and added to
    `table`) or ``"report"``. With ``exact`` (and ``on_miss="measure"``) widths that would be
    interpolated are measured instead."""
    from latprof.space.arch import entries

    space = table_space(table, arch, space)
    batch, dtype = int(table.meta["batch"]), str(table.meta["dtype"])
    placed = [(slot, entry, entry.key(batch, dtype)) for slot, entry in entries(arch, space)]
    now: set[str] = set()
    if on_miss == "measure":
        now = _measure_missing(table, [(e, k) for _, e, k in placed], exact)
        for key in sorted(now):
            if table.rows[key]["status"] != "ok":
                raise LookupMissError(f"entry {key} failed to run: {table.rows[key]['error']}")
    blocks = []
    misses = []
    for slot, _, key in placed:
        t, source, macs = _lookup(table, key, on_miss, exact=exact)
        if t is None:
            misses.append(key)
        elif key in now:
            source = "measured-now"
        blocks.append(BlockTime(slot, key, t, source, macs))
    _raise_misses(misses, on_miss, arch.name)
    return Prediction(arch.name, blocks, misses, table.meta.get("correction"), scale_of(table.meta))


def predict(
    table: LatencyTable,
    arch: Arch | str | Path,
    space: SearchSpace | None = None,
    on_miss: OnMiss = "raise",
    exact: bool = False,
) -> Prediction:
    """:func:`predict_arch` for an Arch, ``zoo:NAME`` or an arch .json/.toml file."""
    from latprof.space.arch import load

    _require_space_table(table)  # before loading `arch`: a model name is no arch
    if isinstance(arch, str | Path):
        arch = load(str(arch))
    return predict_arch(table, arch, space, on_miss, exact)


def _measure_missing(table: LatencyTable, chain: list[tuple[Entry, str]], exact: bool) -> set[str]:
    """Measure the entries of `chain` (an arch's blocks, in order) the table lacks (and, with
    `exact`, those it would interpolate), the way the table was built: in the context of this
    very network, or alone. Adds their rows; returns their keys."""
    from latprof.lut.jobs import entry_jobs

    batch, dtype = int(table.meta["batch"]), str(table.meta["dtype"])
    wanted = [
        e for e, k in dict(chain).items() if k not in table.rows and (exact or table.get(k) is None)
    ]
    if not wanted:
        return set()
    settings, clock = _settings(table)
    todo = entry_jobs(wanted, batch, dtype)
    if table.meta.get("context") == "networks":
        from latprof.lut.in_network import measure

        slots = [entry_jobs([e], batch, dtype) for e, _ in chain]
        rows = measure(todo, slots, settings, clock)
    else:
        from latprof.lut.measurement import measure_jobs

        rows = measure_jobs(todo, settings, clock)
    for row in rows:
        table.rows[row["key"]] = row
    return {row["key"] for row in rows}


def _raise_misses(misses: list[str], on_miss: OnMiss, name: str) -> None:
    if misses and on_miss == "raise":
        raise LookupMissError(
            f"{len(misses)} entries of {name} are not in the table (first: {misses[0]}); "
            "build them (latprof build-lut ... --resume) or measure them on the spot"
        )


def _settings(table: LatencyTable) -> tuple[MeasureSettings, Clock]:
    """The settings and clock of the table's measuring environment."""
    from latprof.measure.clocks import clock_for

    settings = MeasureSettings.of_table(table.meta)
    return settings, clock_for(settings.device)


def _measure_jobs(table: LatencyTable, jobs: list[Any]) -> dict[str, Any]:
    from latprof.lut.measurement import measure_jobs

    settings, clock = _settings(table)
    return measure_jobs(jobs, settings, clock)[0]


# ---------------------------------------------------------------------- layer tables


def predict_model(
    table: LatencyTable,
    name: str,
    module: Any,
    args: tuple,
    kwargs: dict,
    on_miss: OnMiss = "raise",
) -> Prediction:
    """Sum of a layer-level table's entries over one forward pass: every call of a unit
    (a module of a class in the table's `units`) and every leaf call outside units."""
    from latprof.lut.model_layers import entry_calls
    from latprof.measure.hooks import ROOT_NAME

    if table.meta.get("source") != "models":
        raise SpaceError(
            "this lookup table holds search-space blocks; predict an architecture with it "
            "(zoo:tfnas-a, arch.json) or build a layer table with build-lut --models"
        )
    batch, dtype = int(table.meta["batch"]), str(table.meta["dtype"])
    names = {id(m): n or ROOT_NAME for n, m in module.named_modules()}
    calls = entry_calls(module, args, kwargs, table.meta.get("units") or [])
    keys = [call.key(batch, dtype) for call in calls]
    in_model = table.meta.get("context") == "models"
    now: set[str] = set()
    if on_miss == "measure" and in_model:
        missing = {k: c for k, c in zip(keys, calls, strict=True) if k not in table.rows}
        if missing:
            jobs = {k: c.job(batch, dtype) for k, c in missing.items()}
            now = _measure_in_model(table, (module, args, kwargs), jobs, name)
    blocks = []
    misses = []
    for call, key in zip(calls, keys, strict=True):
        alone = None if in_model else (lambda c=call: _measure_jobs(table, [c.job(batch, dtype)]))
        t, source, macs = _lookup(table, key, on_miss, alone)
        if t is None:
            misses.append(key)
        elif key in now:
            source = "measured-now"
        blocks.append(BlockTime(names.get(id(call.module), "?"), key, t, source, macs))
    _raise_misses(misses, on_miss, name)
    return Prediction(name, blocks, misses, scale=scale_of(table.meta))


def _measure_in_model(
    table: LatencyTable, network: tuple, jobs: dict[str, Any], name: str
) -> set[str]:
    """Measure `jobs` (entries the table lacks) inside the model they come from, as a
    `--context models` table was built: in the model itself when it is on the table's
    device and dtype already (eval mode and no autograd leave it as it was), else in a
    copy. Adds their rows; returns their keys."""
    import copy

    from latprof.lut.in_model import measure_model
    from latprof.measure.device import DTYPES, already_on

    settings, clock = _settings(table)
    model, args, kwargs = network
    if not already_on(model, settings.device, DTYPES[settings.dtype]):
        try:
            model = copy.deepcopy(model)
        except Exception as exc:  # a model may hold what cannot be copied (locks, handles)
            raise LookupMissError(
                f"{name} cannot be copied to measure its {len(jobs)} missing entries on the "
                f"table's device and dtype ({settings.device}, {settings.dtype}): "
                f"{type(exc).__name__}: {exc}; pass the model on them, or add the entries "
                "with latprof build-lut --models ... --resume"
            ) from None
    units = table.meta.get("units") or []
    rows = measure_model(model, args, kwargs, units, jobs, settings, clock)
    for key, row in rows.items():
        if row["status"] != "ok":
            raise LookupMissError(f"entry {key} failed to run in its model: {row['error']}")
        table.rows[key] = row
    return set(rows)
