"""Lookup tables: builder (resume, shards, merge), schema and interpolation, on a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from latprof.errors import FileFormatError, LookupMissError, UsageError
from latprof.lut import builder
from latprof.lut.builder import BuildSettings, Job
from latprof.lut.space import Candidate, SearchSpace, Slot
from latprof.lut.table import COLUMNS, LatencyTable, merge
from latprof.measure.clocks import FakeClock

SETTINGS = BuildSettings(warmup=1, trials=3, flush_every=2)
META = {
    "kind": "lut",
    "source": "space",
    "space_hash": "h",
    "batch": 1,
    "dtype": "float32",
    "device": "cpu",
    "device_name": "test",
    "torch": "x",
    "threads": 1,
    "warmup": 1,
    "trials": 3,
    "width_step": 4,
}


class Work(nn.Module):
    def __init__(self, clock: FakeClock, ns: int) -> None:
        super().__init__()
        self.clock, self.ns = clock, ns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(self.ns)
        return x


def space() -> SearchSpace:
    # one searchable slot: mbinvres with mid widths 8..16 (expansion 1-2 of c_in 8)
    slot = Slot(
        "s0", 8, 8, 4, 4, 1, "relu", (Candidate("mbinvres", 3, (1.0, 2.0)), Candidate("identity"))
    )
    return SearchSpace("tiny", "test space", (slot,)).validate()


def fake_jobs(clock: FakeClock, width_step: int, fail_at: str | None = None) -> list[Job]:
    """The space's jobs, but each 'runs' for mid x 1 µs of fake time."""
    out = []
    for job in builder.space_jobs(space(), 1, "float32", width_step):
        ns = max(job.columns["mid"], 1) * 1000

        def make(ns: int = ns, key: str = job.key) -> tuple[nn.Module, tuple]:
            if key == fail_at:
                raise KeyboardInterrupt
            return Work(clock, ns), (torch.zeros(1, 8, 4, 4),)

        out.append(Job(job.key, job.columns, make))
    return out


def test_width_step_and_exact_interpolation(tmp_path: Path) -> None:
    clock = FakeClock()
    jobs = fake_jobs(clock, width_step=4)
    assert [j.columns["mid"] for j in jobs] == [8, 12, 16, 0]  # both ends kept
    out = tmp_path / "t.parquet"
    builder.build(jobs, SETTINGS, out, META, clock=clock)
    table = LatencyTable.load(out)
    key12 = jobs[1].key
    assert table.lookup(key12) == 12.0
    # mid 10 was not measured: linear between 8 (8 µs) and 12 (12 µs)
    key10 = key12.replace("|m12|", "|m10|")
    assert table.lookup(key10) == pytest.approx(10.0)
    with pytest.raises(LookupMissError, match="no entry"):
        table.lookup(key12.replace("|m12|", "|m40|"))


def test_interrupt_then_resume_reuses_and_never_duplicates(tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "t.parquet"
    jobs = fake_jobs(clock, width_step=1)  # mids 8..16 (9) + identity = 10 entries
    assert len(jobs) == 10
    with pytest.raises(KeyboardInterrupt):
        builder.build(fake_jobs(clock, 1, fail_at=jobs[5].key), SETTINGS, out, META, clock=clock)
    saved = LatencyTable.load(out)
    assert len(saved) == 4  # two full batches of 2 flushed; the batch in flight is lost
    with pytest.raises(UsageError, match="already exists; pass --resume"):
        builder.build(jobs, SETTINGS, out, META, clock=clock)
    result = builder.build(jobs, SETTINGS, out, META, resume=True, clock=clock)
    assert (result.reused, result.measured) == (4, 6)
    keys = pq.read_table(out).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == 10


def test_resume_refuses_another_environment(tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "t.parquet"
    builder.build(fake_jobs(clock, 4), SETTINGS, out, META, clock=clock)
    other = {**META, "batch": 8, "space_hash": "zz"}
    with pytest.raises(UsageError, match=r"another space or environment \(space_hash"):
        builder.build(fake_jobs(clock, 4), SETTINGS, out, other, resume=True, clock=clock)


def test_shards_partition_and_merge(tmp_path: Path) -> None:
    clock = FakeClock()
    jobs = fake_jobs(clock, 1)
    parts = []
    for i in range(3):
        shard = [j for j in jobs if builder.in_shard(j.key, (i, 3))]
        path = tmp_path / f"s{i}.parquet"
        builder.build(shard, SETTINGS, path, {**META, "shard": [i, 3]}, clock=clock)
        parts.append((str(path), LatencyTable.load(path)))
    sizes = [len(t) for _, t in parts]
    assert sum(sizes) == len(jobs)
    merged = merge(parts)
    assert set(merged.rows) == {j.key for j in jobs}
    assert "shard" not in merged.meta
    with pytest.raises(UsageError, match="conflicting key"):
        merge([parts[0], ("copy.parquet", parts[0][1])])
    odd = LatencyTable({**META, "dtype": "bfloat16"})
    with pytest.raises(UsageError, match=r"environments differ .*dtype"):
        merge([parts[0], ("odd.parquet", odd)])


@pytest.mark.parametrize("text", ["3/2", "0/0", "a/b", "1", "-1/2"])
def test_bad_shards(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        builder.parse_shard(text)


def test_failed_entry_is_recorded_and_build_goes_on(tmp_path: Path) -> None:
    good = Job("good", {"op": "conv"}, lambda: (nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),)))
    bad = Job("bad", {"op": "conv"}, lambda: (nn.Conv2d(5, 4, 3), (torch.zeros(1, 3, 8, 8),)))
    out = tmp_path / "t.parquet"
    result = builder.build([bad, good], SETTINGS, out, META)
    assert result.failed and result.failed[0].startswith("bad: RuntimeError")
    table = LatencyTable.load(out)
    assert table.rows["bad"]["status"] == "failed" and table.rows["good"]["status"] == "ok"
    assert table.rows["good"]["macs"] == 6 * 6 * 4 * 3 * 3 * 3
    with pytest.raises(LookupMissError):
        table.lookup("bad")


def test_schema_and_metadata(tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "t.parquet"
    builder.build(fake_jobs(clock, 4), SETTINGS, out, META, clock=clock)
    schema = pq.read_schema(out)
    assert tuple(schema.names) == COLUMNS
    meta = json.loads(schema.metadata[b"latprof"])
    assert meta == META
    row = pq.read_table(out).to_pylist()[0]
    assert row["n"] == 3 and len(row["samples_us"]) == 3 and row["time_us_median"] == 8.0


def test_load_rejects_profiles_and_foreign_files(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(FileFormatError, match="not a latprof one"):
        LatencyTable.load(path)


def test_real_block_entries_build_and_measure(tmp_path: Path) -> None:
    out = tmp_path / "real.parquet"
    jobs = builder.space_jobs(space(), 2, "float32", 8)
    builder.build(jobs, BuildSettings(warmup=1, trials=2), out, META)
    table = LatencyTable.load(out)
    assert all(r["status"] == "ok" and r["time_us_median"] > 0 for r in table.rows.values())
    assert {r["input_shape"] for r in table.rows.values()} == {"2x8x4x4"}
