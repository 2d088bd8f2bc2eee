"""Merging lookup tables and their shard metadata (latprof/lut/table.py): the refusals in full
and the machine check's device, the cases mutation testing found untested. The build-and-merge
path is in test_lut.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from latprof.errors import FileFormatError, UsageError
from latprof.io.profile_file import META_KEY
from latprof.lut import table as tablemod
from latprof.lut.table import LatencyTable, merge, shard_of
from tests.test_lut import META


def tbl(shard: list[Any] | None = None, keys: tuple[str, ...] = (), **meta: Any) -> LatencyTable:
    table = LatencyTable({**META, **meta, **({"shard": shard} if shard is not None else {})})
    for key in keys:
        table.add({"key": key, "status": "ok", "time_us_median": 1.0})
    return table


def refused(tables: list[tuple[str, LatencyTable]], message: str) -> None:
    with pytest.raises(UsageError, match="^" + re.escape(message) + "$"):
        merge(tables)


def test_merge_refusals_in_full() -> None:
    refused([], "merge needs at least one table")
    refused(
        [("a", tbl()), ("odd", tbl(batch=8, dtype="bfloat16"))],
        "cannot merge odd with a: environments differ "
        "(batch: 1 != 8; dtype: 'float32' != 'bfloat16')",
    )
    refused(
        [("a", tbl(keys=("k0", "k1"))), ("b", tbl(keys=("k1",)))],
        "conflicting key 'k1' in both a and b; shards must not overlap",
    )


@pytest.mark.parametrize("shard", [[0, 2, 5], [0.5, 2], [True, 2], [1, 1], [2, 2]])
def test_malformed_shard_metadata(shard: list[Any]) -> None:
    message = f"t.parquet: malformed shard metadata {shard!r} (expected [I, N])"
    with pytest.raises(FileFormatError, match="^" + re.escape(message) + "$"):
        shard_of("t.parquet", tbl(shard))
    with pytest.raises(FileFormatError, match="^" + re.escape(message) + "$"):
        merge([("t.parquet", tbl(shard))])  # the file is named in the merge too
    assert shard_of("t.parquet", tbl([1, 2])) == (1, 2)


def test_shard_refusals_name_the_shards() -> None:
    refused(
        [("s.parquet", tbl([1, 2])), ("w.parquet", tbl())],
        "w.parquet is not a shard (no shard metadata) but s.parquet is shard 1 of 2; merge "
        "either all shards of one build or whole tables",
    )
    refused(
        [("a", tbl([0, 2])), ("b", tbl([1, 3]))],
        "the shards come from different splits (a is shard 0 of 2, b is shard 1 of 3); "
        "merge one split",
    )
    # shards 0 and 1 of 3 twice each, shard 2 missing
    refused(
        [(f"p{i}", tbl([s, 3])) for i, s in enumerate([0, 0, 1, 1])],
        "not one table per shard: shard 2 of 3 is missing; shards 0, 1 of 3 are given more "
        "than once; merge every shard 0..2 of 3 exactly once (build the missing ones with "
        "build-lut --shard I/3)",
    )


def test_machine_fields_are_read_for_the_tables_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import latprof.env

    seen = []

    class Env:
        def to_dict(self) -> dict[str, Any]:
            return {"device_name": "GPU 9", "torch": "9.9"}

    def capture(device: str = "cpu") -> Env:
        seen.append(device)
        return Env()

    monkeypatch.setattr(latprof.env, "capture", capture)
    assert tablemod.this_machine({"device": "cuda:1"}) == {"device_name": "GPU 9", "torch": "9.9"}
    tablemod.this_machine({})
    assert seen == ["cuda:1", "cpu"]  # a table without a device was measured on the CPU


def write(path: Path, columns: dict[str, list[Any]], meta: dict[str, Any]) -> Path:
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    pq.write_table(table, path)
    return path


def test_load_refusals_name_what_is_wrong(tmp_path: Path) -> None:
    nokind = write(tmp_path / "a.parquet", {"key": ["k"]}, {"x": 1})
    message = f"{nokind} is a latprof 'unknown' file, not a lookup table"
    with pytest.raises(FileFormatError, match="^" + re.escape(message) + "$"):
        LatencyTable.load(nokind)
    # one of the three required columns missing: it is named
    partial = write(tmp_path / "b.parquet", {"key": ["k"], "status": ["ok"]}, dict(META))
    message = f"{partial}: not a latprof lookup table (no time_us_median column)"
    with pytest.raises(FileFormatError, match="^" + re.escape(message) + "$"):
        LatencyTable.load(partial)
    # a table from a newer latprof is refused by name, not misread
    columns = {"key": ["k"], "status": ["ok"], "time_us_median": [1.0]}
    newer = write(tmp_path / "c.parquet", columns, {**META, "format_version": 99})
    with pytest.raises(FileFormatError, match="format_version 99, newer than this latprof"):
        LatencyTable.load(newer)


def test_a_profile_from_a_newer_latprof_is_refused(tmp_path: Path) -> None:
    from latprof.io.profile_file import load

    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "profile", "format_version": 2, "layers": []}))
    with pytest.raises(
        FileFormatError, match=r"format_version 2, newer than this latprof reads \(1\)"
    ):
        load(path)
    for odd in ("2", 1.0, True, 0):
        path.write_text(json.dumps({"kind": "profile", "format_version": odd, "layers": []}))
        with pytest.raises(FileFormatError, match="unknown format_version"):
            load(path)


CHECK = {"k": 20, "population": "random", "kendall_tau": 0.9, "seed": 1}


def test_trust_problem_thresholds_are_strict() -> None:
    assert tablemod.trust_problem({"self_check": {"k": 0, "population": "random"}}) == (
        "self-check: no random architecture could be predicted"
    )
    at_limits = {**CHECK, "median_abs_error_pct": 3.0, "max_abs_error_pct": 8.0}
    assert tablemod.trust_problem({"self_check": at_limits}) is None
    over = {**CHECK, "median_abs_error_pct": 3.5, "max_abs_error_pct": 8.0}
    assert tablemod.trust_problem({"self_check": over}) == (
        "this table's self-check: median |error| 3.5 %, max 8.0 %, Kendall τ 0.90 over 20 "
        "random architectures, seed 1: median above 3 %; treat its sums with care"
    )
    both = {**CHECK, "median_abs_error_pct": 3.5, "max_abs_error_pct": 8.1}
    assert "seed 1: median above 3 % and max above 8 %; treat" in (
        tablemod.trust_problem({"self_check": both}) or ""
    )
    merged = tablemod.trust_problem({"merged_from": 2})
    assert merged is not None and "no self-check (merged from shards" in merged
    assert "before latprof had one" in (tablemod.trust_problem({}) or "")


def test_a_table_whose_data_is_corrupt_is_named(tmp_path: Path) -> None:
    # the footer (schema, metadata) stays readable; the first data page is overwritten
    columns = {"key": ["k" * 50] * 200, "time_us_median": [1.0] * 200, "status": ["ok"] * 200}
    path = write(tmp_path / "c.parquet", columns, {"kind": "lut"})
    data = bytearray(path.read_bytes())
    data[4:200] = b"\xff" * 196
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="^" + re.escape(f"{path}: cannot read the table (")):
        LatencyTable.load(path)
