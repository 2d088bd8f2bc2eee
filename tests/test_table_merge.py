"""Merging lookup tables and their shard metadata (latprof/lut/table.py): the refusals in full
and the machine check's device, the cases mutation testing found untested. The build-and-merge
path is in test_lut.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from latprof.errors import FileFormatError, UsageError
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
