"""LatencyTable: the LUT Parquet schema, load/save/merge and lookup, in one place.

Rows are entries (a block of a search space, or a model's leaf layer, at an input shape);
`key` is unique. The measuring environment sits in the schema metadata under `latprof`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from latprof.errors import FileFormatError, LookupMissError, UsageError
from latprof.io.atomic import write_with
from latprof.io.profile_file import META_KEY, read_parquet_meta

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
        return table

    # ------------------------------------------------------------------ checks

    def differences(self, other_meta: dict[str, Any]) -> list[str]:
        """'field: a != b' for every compatibility field that differs."""
        out = []
        for name in COMPATIBLE:
            a, b = self.meta.get(name), other_meta.get(name)
            if a != b:
                out.append(f"{name}: {a!r} != {b!r}")
        return out

    # ------------------------------------------------------------------ lookup

    def lookup(self, key: str) -> float:
        """Median µs of an entry; interpolates over mid-channel widths; raises on a miss."""
        value = self.get(key)
        if value is None:
            raise LookupMissError(f"no entry for {key}")
        return value

    def get(self, key: str) -> float | None:
        row = self.rows.get(key)
        if row is not None and row["status"] == "ok":
            return float(row["time_us_median"])
        return self._interpolate(key)

    def _interpolate(self, key: str) -> float | None:
        parts = key.split("|")
        if len(parts) < 4 or not parts[3].startswith("m"):
            return None
        try:
            mid = int(parts[3][1:])
        except ValueError:
            return None
        if mid == 0:
            return None
        prefix, suffix = "|".join(parts[:3]), "|".join(parts[4:])
        known: list[tuple[int, float]] = []
        for row in self.ok_rows():
            rp = row["key"].split("|")
            if "|".join(rp[:3]) == prefix and "|".join(rp[4:]) == suffix:
                known.append((int(row["mid"]), float(row["time_us_median"])))
        lower = max((k for k in known if k[0] <= mid), default=None)
        upper = min((k for k in known if k[0] >= mid), default=None)
        if lower is None or upper is None:
            return None
        if lower[0] == upper[0]:
            return lower[1]
        t = (mid - lower[0]) / (upper[0] - lower[0])
        return lower[1] + t * (upper[1] - lower[1])


def merge(tables: list[tuple[str, LatencyTable]]) -> LatencyTable:
    """Union of shard tables; refuses mismatched environments or conflicting keys."""
    if not tables:
        raise UsageError("merge needs at least one table")
    first_name, first = tables[0]
    meta = {k: v for k, v in first.meta.items() if k != "shard"}
    out = LatencyTable(meta)
    owner: dict[str, str] = {}
    for name, table in tables:
        diffs = first.differences(table.meta)
        if diffs:
            raise UsageError(
                f"cannot merge {name} with {first_name}: environments differ ({'; '.join(diffs)})"
            )
        for key, row in table.rows.items():
            if key in owner:
                raise UsageError(
                    f"conflicting key {key!r} in both {owner[key]} and {name}; "
                    "shards must not overlap"
                )
            owner[key] = name
            out.rows[key] = row
    return out
