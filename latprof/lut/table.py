"""LatencyTable: the LUT Parquet schema, load/save/merge and lookup, in one place.

Rows are entries (a block of a search space, or a model's leaf layer, at an input shape);
`key` is unique. The measuring environment sits in the schema metadata under `latprof`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from latprof.errors import FileFormatError, LatprofWarning, LookupMissError, UsageError
from latprof.io.atomic import write_with
from latprof.io.profile_file import META_KEY, check_format_version, read_parquet_meta

KIND = "lut"
FORMAT_VERSION = 1

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("op", pa.string()),
        ("kernel", pa.int64()),
        ("stride", pa.int64()),
        ("mid", pa.int64()),
        ("se", pa.int64()),
        ("act", pa.string()),
        ("dilation", pa.int64()),
        ("c_in", pa.int64()),
        ("c_out", pa.int64()),
        ("h", pa.int64()),
        ("w", pa.int64()),
        ("batch", pa.int64()),
        ("dtype", pa.string()),
        ("signature", pa.string()),
        ("input_shape", pa.string()),
        ("time_us_median", pa.float64()),
        ("time_us_mean", pa.float64()),
        ("time_us_std", pa.float64()),
        ("time_us_min", pa.float64()),
        ("time_us_p10", pa.float64()),
        ("time_us_iqr", pa.float64()),
        ("n", pa.int64()),
        ("outliers", pa.int64()),
        ("noisy", pa.bool_()),
        ("macs", pa.float64()),
        ("params", pa.int64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("samples_us", pa.list_(pa.float64())),
    ]
)
COLUMNS = tuple(SCHEMA.names)
STATISTICS = {
    "p10": "time_us_p10",
    "median": "time_us_median",
    "mean": "time_us_mean",
    "min": "time_us_min",
}
"""What a lookup returns, by the table's `statistic` (tables without one: median)."""
OLDER_DEFAULTS = {
    "context": "alone",
    "statistic": "median",
    "allocator": "glibc mmap_threshold=33554432 trim_threshold=1073741824",
}
"""What older tables (without these fields) did: measured alone, medians, mmap still on."""
EMPTY_WHEN_ABSENT = ("units",)
"""List fields that older tables (and space tables) lack: absent means empty."""
# metadata fields that must agree for two tables to be merged or resumed
COMPATIBLE = (
    "kind",
    "source",
    "space_hash",
    "batch",
    "dtype",
    "device",
    "device_name",
    "torch",
    "threads",
    "warmup",
    "trials",
    "width_step",
    "units",
    "context",
    "statistic",
    "tf32",
    "cudnn_benchmark",
    "allocator",
)


@dataclass
class LatencyTable:
    """Rows keyed by `key` plus the metadata describing how they were measured."""

    meta: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: dict[str, Any]) -> None:
        if row["key"] in self.rows:
            raise UsageError(f"duplicate key {row['key']!r}")
        self.rows[row["key"]] = {c: row.get(c) for c in COLUMNS}

    @property
    def statistic(self) -> str:
        return str(self.meta.get("statistic") or OLDER_DEFAULTS["statistic"])

    def time_of(self, row: dict[str, Any]) -> float:
        """An entry's latency in µs by the table's statistic."""
        value = row.get(STATISTICS[self.statistic])
        if value is None:
            raise FileFormatError(
                f"entry {row['key']} has no {STATISTICS[self.statistic]} (the table's "
                f"statistic is {self.statistic!r}); rebuild the table"
            )
        return float(value)

    def ok_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] == "ok"]

    def failed_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] != "ok"]

    # ------------------------------------------------------------------ files

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the previous file intact."""
        table = pa.Table.from_pylist(list(self.rows.values()), schema=SCHEMA)
        table = table.replace_schema_metadata({META_KEY: json.dumps(self.meta).encode()})
        write_with(Path(path), lambda tmp: pq.write_table(table, tmp))

    @classmethod
    def load(cls, path: Path | str) -> LatencyTable:
        path = Path(path)
        if not path.exists():
            raise FileFormatError(f"{path} does not exist")
        meta = read_parquet_meta(path)
        if meta.get("kind") != KIND:
            raise FileFormatError(
                f"{path} is a latprof {meta.get('kind', 'unknown')!r} file, not a lookup table"
            )
        check_format_version(meta, FORMAT_VERSION, str(path))
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as exc:
            raise FileFormatError(f"{path}: cannot read the table ({exc})") from exc
        missing = [c for c in ("key", "time_us_median", "status") if rows and c not in rows[0]]
        if missing:
            raise FileFormatError(f"{path}: not a latprof lookup table (no {missing[0]} column)")
        table = cls(meta)
        for row in rows:
            table.rows[row["key"]] = {c: row.get(c) for c in COLUMNS}
        problem = trust_problem(meta)
        if problem:
            warnings.warn(f"{path}: {problem}", LatprofWarning, stacklevel=2)
        return table

    # ------------------------------------------------------------------ checks

    def differences(self, other_meta: dict[str, Any]) -> list[str]:
        """'field: a != b' for every compatibility field that differs."""
        out = []
        for name in COMPATIBLE:
            a, b = self.meta.get(name), other_meta.get(name)
            if name in OLDER_DEFAULTS:
                a, b = a or OLDER_DEFAULTS[name], b or OLDER_DEFAULTS[name]
            elif name in EMPTY_WHEN_ABSENT:
                a, b = a or [], b or []
            if a != b and name == "space_hash":  # name what differs, not two digests
                out.append(_space_difference(self.meta, other_meta, a, b))
            elif a != b:
                out.append(f"{name}: {a!r} != {b!r}")
        # tables from before width_align interpolate linearly: they resume and merge either way
        a, b = self.meta.get("width_align"), other_meta.get("width_align")
        if a is not None and b is not None and a != b:
            out.append(f"width_align: {a!r} != {b!r}")
        return out

    def is_for_space(self, space: Any) -> bool:
        """Whether the table holds entries of `space` (by its hash)."""
        return self.meta.get("space_hash") == space.hash()

    def check_target(self, allow_mismatch: bool = False, **target: Any) -> list[str]:
        """Compare device, dtype, batch, threads (those given) with the table's; raise
        UsageError listing every difference unless `allow_mismatch`."""
        return check_target(self.meta, allow_mismatch, **target)

    # ------------------------------------------------------------------ lookup

    def lookup(self, key: str) -> float:
        """An entry's µs (by the table's statistic); interpolates over mid-channel widths;
        raises on a miss."""
        value = self.get(key)
        if value is None:
            raise LookupMissError(f"no entry for {key}")
        return value

    def get(self, key: str) -> float | None:
        row = self.rows.get(key)
        if row is not None and row["status"] == "ok":
            return self.time_of(row)
        return self._interpolate(key)

    def _interpolate(self, key: str) -> float | None:
        """An unmeasured mid width's µs, from the measured widths below and above it.

        Neighbours agree with `key` on every field except mid and se (an SE width may follow
        mid, e.g. se = mid // 4); se = 0 only matches se = 0, se > 0 only se > 0. Where two
        rows share a mid, the one whose se is closest to the query's is used. With the
        table's `width_align` A (tables built since it was recorded), widths that are
        multiples of A and widths that are not are interpolated only from their own kind
        (see `interpolate_aligned`).
        """
        parts = key.split("|")
        if len(parts) < 5 or not parts[3].startswith("m") or not parts[4].startswith("se"):
            return None
        try:
            mid, se = int(parts[3][1:]), int(parts[4][2:])
        except ValueError:
            return None
        if mid == 0:
            return None
        head, tail = parts[:3], parts[5:]
        best: dict[int, tuple[int, float]] = {}  # mid -> (|se - query se|, µs)
        for row in self.ok_rows():
            rp = row["key"].split("|")
            if len(rp) != len(parts) or rp[:3] != head or rp[5:] != tail:
                continue
            try:
                row_mid, row_se = int(rp[3][1:]), int(rp[4][2:])
            except ValueError:
                continue
            if row_mid == 0 or (row_se > 0) != (se > 0):
                continue
            candidate = (abs(row_se - se), self.time_of(row))
            if row_mid not in best or candidate < best[row_mid]:
                best[row_mid] = candidate
        times = {m: t for m, (_, t) in best.items()}
        align = int(self.meta.get("width_align") or 0)
        if align > 1:
            return interpolate_aligned(times, mid, align)
        return interpolate_linear(times, mid)


VECTOR_BYTES = {"AVX512": 64, "AVX2": 32, "SVE256": 32}
"""Bytes per vector register by ATen's CPU capability; others (DEFAULT: NEON, SSE): 16."""
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def default_width_align(device: str, dtype: str, capability: str | None) -> int | None:
    """Elements per vector register of the CPU that measures (16 float32 on AVX-512):
    mid widths that are multiples of it run faster than the widths around them. None off
    the CPU (not measured there)."""
    if not device.startswith("cpu") or capability is None:
        return None
    return max(1, VECTOR_BYTES.get(capability, 16) // DTYPE_BYTES.get(dtype, 4))


def interpolate_linear(times: dict[int, float], mid: int) -> float | None:
    """`times` (µs by mid width) at `mid`, linear between the nearest widths around it."""
    lower = max((m for m in times if m <= mid), default=None)
    upper = min((m for m in times if m >= mid), default=None)
    if lower is None or upper is None:
        return None
    if lower == upper:
        return times[lower]
    t = (mid - lower) / (upper - lower)
    return times[lower] + t * (times[upper] - times[lower])


def interpolate_aligned(times: dict[int, float], mid: int, align: int) -> float | None:
    """`times` at `mid`, where widths that are multiples of `align` (the CPU's vector width
    in elements) run faster than the widths around them.

    A width is interpolated from measured widths of its own kind (multiples of `align`, or
    not). Where its kind has no measured width on one side, the nearest one of its kind
    gives its ratio to the other kind's interpolation there, applied to the other kind's
    interpolation at `mid`; where that is not possible either, linear over all widths.
    """
    aligned = mid % align == 0
    own = {m: t for m, t in times.items() if (m % align == 0) == aligned}
    value = interpolate_linear(own, mid)
    if value is not None:
        return value
    other = {m: t for m, t in times.items() if (m % align == 0) != aligned}
    base = interpolate_linear(other, mid)
    if base is not None and own:
        nearest = min(own, key=lambda m: (abs(m - mid), m))
        there = interpolate_linear(other, nearest)
        if there:
            return base * own[nearest] / there
    return interpolate_linear(times, mid)


TARGET_FIELDS = ("device", "dtype", "batch", "threads")


def target_differences(meta: dict[str, Any], **target: Any) -> list[str]:
    """'field: table X, target Y' for every given target field the table differs on."""
    out = []
    for name, wanted in target.items():
        if wanted is None:
            continue
        have = meta.get(name)
        if have != wanted:
            out.append(f"{name}: table {have!r}, target {wanted!r}")
    return out


def _space_difference(mine: dict[str, Any], other: dict[str, Any], a: Any, b: Any) -> str:
    """The space (or the models of a layer table) two tables were built for, by name."""
    for name in ("space", "models"):
        x, y = mine.get(name), other.get(name)
        if x != y and (x or y):
            return f"{name}: {x!r} != {y!r}"
    return f"space_hash: {a!r} != {b!r} (the same space name, edited candidates)"


def check_target(meta: dict[str, Any], allow_mismatch: bool = False, **target: Any) -> list[str]:
    """Raise UsageError listing the differences unless `allow_mismatch`; return them."""
    diffs = target_differences(meta, **target)
    if diffs and not allow_mismatch:
        raise UsageError(
            "the lookup table was measured in another environment ("
            + "; ".join(diffs)
            + "); rebuild it for this target or pass --allow-mismatch"
        )
    return diffs


def machine_differences(meta: dict[str, Any]) -> list[str]:
    """'field: table X, here Y' for the machine fields (device name, torch) that differ."""
    return [
        f"{name}: table {meta.get(name)!r}, here {value!r}"
        for name, value in this_machine(meta).items()
        if meta.get(name) != value
    ]


def this_machine(meta: dict[str, Any]) -> dict[str, Any]:
    """The current machine's values of the fields a table records (device name, torch)."""
    from latprof.env import capture

    env = capture(meta.get("device") or "cpu").to_dict()
    return {"device_name": env["device_name"], "torch": env["torch"]}


def corrected(correction: dict[str, Any], sum_us: Any, blocks: Any) -> Any:
    """A table's fitted correction a·Σ + b·blocks + c (floats or torch tensors alike)."""
    a, b, c = correction["coef"]
    return a * sum_us + b * blocks + c


def scale_of(meta: dict[str, Any]) -> float:
    """The factor of a recalibration (lut/recalibrate.py) the table carries, else 1."""
    return float((meta.get("recalibration") or {}).get("factor") or 1.0)


POOR_MEDIAN_PCT = 3.0
POOR_MAX_PCT = 8.0
"""A table whose self-check exceeds either figure gets a warning when loaded or used."""


def describe(check: dict[str, Any] | None) -> str:
    """One line: what the self-check found (or that there is none)."""
    if not check:
        return "no self-check"
    if not check.get("k"):
        return f"self-check: no {check.get('population')} architecture could be predicted"
    tau = check.get("kendall_tau")
    seed = f", seed {check['seed']}" if check.get("seed") is not None else ""
    one = check["k"] == 1
    what = (
        ("model" if one else "models")
        if check["population"] == "models"
        else f"{check['population']} architecture{'' if one else 's'}"
    )
    own, ceiling = check.get("split_half_tau"), check.get("tau_ceiling")
    repeat = (
        f"; the measurement against itself (even vs odd rounds): τ {own:.2f}, the halves "
        f"differ by a median of {check['split_half_diff_pct']:.1f} %, a prediction could "
        f"reach at most about τ {ceiling:.2f}"
        if own is not None and ceiling is not None and check.get("split_half_diff_pct") is not None
        else ""
    )
    raw_median, raw_max = check.get("raw_median_abs_error_pct"), check.get("raw_max_abs_error_pct")
    raw = (
        f" (raw sum of entries: {raw_median:.1f} %, {raw_max:.1f} %)"
        if raw_median is not None and raw_max is not None
        else ""
    )
    return (
        f"self-check: median |error| {check['median_abs_error_pct']:.1f} %, max "
        f"{check['max_abs_error_pct']:.1f} %{raw}, Kendall τ "
        f"{'n/a' if tau is None else f'{tau:.2f}'} over {check['k']} {what}{seed}{repeat}"
    )


def trust_problem(meta: dict[str, Any]) -> str | None:
    """Why a table's sums should not be trusted blindly, or None."""
    check = meta.get("self_check")
    if not check:
        if meta.get("source") == "models" and not meta.get("merged_from"):
            return (
                "this table carries no self-check (built with --self-check 0, or before latprof "
                "had one): run `latprof validate MODEL --lut TABLE` on the models it was built "
                "from before trusting its sums"
            )
        if meta.get("merged_from"):
            why = "merged from shards, whose builds skip it"
            fix = "`latprof build-lut` with the build's options and `--resume -o TABLE` adds it"
        else:
            why = "built with --self-check 0, from --archs or a shard, or before latprof had one"
            fix = "run `latprof validate ARCH --lut TABLE` on the archs it was built for"
        return (
            f"this table carries no self-check ({why}): {fix}, or `latprof validate --lut "
            "TABLE --samples 20` for a whole-space table, before trusting its sums"
        )
    if not check.get("k"):
        return describe(check)
    median, worst = check["median_abs_error_pct"], check["max_abs_error_pct"]
    over = [
        f"{name} above {limit:g} %"
        for name, value, limit in (
            ("median", median, POOR_MEDIAN_PCT),
            ("max", worst, POOR_MAX_PCT),
        )
        if value > limit
    ]
    if over:
        return f"this table's {describe(check)}: {' and '.join(over)}; treat its sums with care"
    return None


def merge(tables: list[tuple[str, LatencyTable]]) -> LatencyTable:
    """Union of shard tables; refuses mismatched environments, conflicting keys and sets of
    shards that are not every shard of one split exactly once."""
    if not tables:
        raise UsageError("merge needs at least one table")
    first_name, first = tables[0]
    meta = {k: v for k, v in first.meta.items() if k != "shard"}
    if first.meta.get("shard"):
        meta["merged_from"] = len(tables)  # shards: no fit, no self-check
    out = LatencyTable(meta)
    for name, table in tables:
        diffs = first.differences(table.meta)
        if diffs:
            raise UsageError(
                f"cannot merge {name} with {first_name}: environments differ ({'; '.join(diffs)})"
            )
    aligns = sorted({t.meta.get("width_align") for _, t in tables} - {None})
    if len(aligns) > 1:
        raise UsageError(
            f"cannot merge tables of CPUs with different vector widths (width_align "
            f"{', '.join(map(str, aligns))}); build every shard with the same ATen CPU capability"
        )
    meta["width_align"] = aligns[0] if aligns else None
    check_shards(tables)
    owner: dict[str, str] = {}
    for name, table in tables:
        for key, row in table.rows.items():
            if key in owner:
                raise UsageError(
                    f"conflicting key {key!r} in both {owner[key]} and {name}; "
                    "shards must not overlap"
                )
            owner[key] = name
            out.rows[key] = row
    return out


def shard_of(name: str, table: LatencyTable) -> tuple[int, int] | None:
    """A table's `shard: [I, N]` metadata (None for a whole table)."""
    shard = table.meta.get("shard")
    if shard is None:
        return None
    ok = (
        isinstance(shard, list)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        and 0 <= shard[0] < shard[1]
    )
    if not ok:
        raise FileFormatError(f"{name}: malformed shard metadata {shard!r} (expected [I, N])")
    return shard[0], shard[1]


def check_shards(tables: list[tuple[str, LatencyTable]]) -> None:
    """Shard tables must be every shard 0..N-1 of one split, each once; whole tables (no
    shard metadata) are merged as they are, but not mixed with shards."""
    shards = [(name, shard_of(name, t)) for name, t in tables]
    sharded = [(name, s) for name, s in shards if s is not None]
    if not sharded:
        return
    whole = [name for name, s in shards if s is None]
    if whole:
        raise UsageError(
            f"{whole[0]} is not a shard (no shard metadata) but {sharded[0][0]} is shard "
            f"{sharded[0][1][0]} of {sharded[0][1][1]}; merge either all shards of one build "
            "or whole tables"
        )
    counts = sorted({s[1] for _, s in sharded})
    if len(counts) > 1:
        listed = ", ".join(f"{name} is shard {s[0]} of {s[1]}" for name, s in sharded)
        raise UsageError(f"the shards come from different splits ({listed}); merge one split")
    n = counts[0]
    seen = [s[0] for _, s in sharded]
    missing = [i for i in range(n) if i not in seen]
    twice = sorted({i for i in seen if seen.count(i) > 1})
    problems = []
    if missing:
        problems.append(_shard_list(missing, n, "is missing", "are missing"))
    if twice:
        problems.append(_shard_list(twice, n, "is given twice", "are given more than once"))
    if problems:
        raise UsageError(
            f"not one table per shard: {'; '.join(problems)}; merge every shard 0..{n - 1} "
            f"of {n} exactly once (build the missing ones with build-lut --shard I/{n})"
        )


def _shard_list(indexes: list[int], n: int, one: str, several: str) -> str:
    if len(indexes) == 1:
        return f"shard {indexes[0]} of {n} {one}"
    return f"shards {', '.join(map(str, indexes))} of {n} {several}"


REPORT_COLUMNS = (
    "key",
    "op",
    "kernel",
    "stride",
    "mid",
    "se",
    "act",
    "c_in",
    "c_out",
    "h",
    "w",
    "batch",
    "dtype",
    "time_us_median",
    "time_us_p10",
    "time_us_mean",
    "time_us_std",
    "time_us_iqr",
    "n",
    "outliers",
    "noisy",
    "macs",
    "params",
    "status",
    "error",
)
"""The columns `latprof report TABLE` shows of each entry."""


def report_rows(table: LatencyTable, by: str) -> list[dict[str, Any]]:
    """Entry rows (by layer), or one row per op (by category) with entry counts and time."""
    rows = [{c: r.get(c) for c in REPORT_COLUMNS} for r in table.rows.values()]
    if by != "category":
        return rows
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(
            r["op"],
            {
                "category": r["op"],
                "entries": 0,
                "failed": 0,
                "time_us_median_sum": 0.0,
                "macs": 0.0,
                "noisy": 0,
            },
        )
        g["entries"] += 1
        if r["status"] != "ok":
            g["failed"] += 1
            continue
        g["time_us_median_sum"] += r["time_us_median"]
        g["macs"] += r["macs"] or 0.0
        g["noisy"] += bool(r["noisy"])
    return sorted(groups.values(), key=lambda g: g["time_us_median_sum"], reverse=True)
