"""Lookup tables: builder (resume, shards, merge), schema and interpolation, on a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.errors import FileFormatError, LookupMissError, UsageError
from latprof.lut import build
from latprof.lut import jobs as jobsmod
from latprof.lut.jobs import Job
from latprof.lut.table import COLUMNS, LatencyTable, merge
from latprof.measure.clocks import FakeClock
from latprof.space.model import Candidate, SearchSpace, Slot
from tests.helpers import Work

SETTINGS = MeasureSettings(warmup=1, trials=3, flush_every=2)
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


def space() -> SearchSpace:
    # one searchable slot: mbinvres with mid widths 8..16 (expansion 1-2 of c_in 8)
    slot = Slot(
        "s0", 8, 8, 4, 4, 1, "relu", (Candidate("mbinvres", 3, (1.0, 2.0)), Candidate("identity"))
    )
    return SearchSpace("tiny", "test space", (slot,)).validate()


def fake_jobs(clock: FakeClock, width_step: int, fail_at: str | None = None) -> list[Job]:
    """The space's jobs, but each 'runs' for mid x 1 µs of fake time."""
    out = []
    for job in jobsmod.space_jobs(space(), 1, "float32", width_step):
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
    build.build(jobs, SETTINGS, out, META, clock=clock)
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
        build.build(fake_jobs(clock, 1, fail_at=jobs[5].key), SETTINGS, out, META, clock=clock)
    saved = LatencyTable.load(out)
    assert len(saved) == 4  # two full batches of 2 flushed; the batch in flight is lost
    with pytest.raises(UsageError, match="already exists; pass --resume"):
        build.build(jobs, SETTINGS, out, META, clock=clock)
    result = build.build(jobs, SETTINGS, out, META, resume=True, clock=clock)
    assert (result.reused, result.measured) == (4, 6)
    keys = pq.read_table(out).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == 10


def test_resume_refuses_another_environment(tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "t.parquet"
    build.build(fake_jobs(clock, 4), SETTINGS, out, META, clock=clock)
    other = {**META, "batch": 8, "space_hash": "zz"}
    with pytest.raises(UsageError, match=r"another space or environment \(space_hash"):
        build.build(fake_jobs(clock, 4), SETTINGS, out, other, resume=True, clock=clock)
    # another space by name: the names, not two digests
    named = {**META, "space": "mbv2", "space_hash": "zz"}
    with pytest.raises(UsageError, match=r"\(space: None != 'mbv2'"):
        build.build(fake_jobs(clock, 4), SETTINGS, out, named, resume=True, clock=clock)


def test_resume_of_a_table_with_other_trials_says_which_to_pass(tmp_path: Path) -> None:
    """A table built with 40 trials resumes only with --trials 40: the error says so."""
    clock = FakeClock()
    out = tmp_path / "t.parquet"
    build.build(fake_jobs(clock, 4), SETTINGS, out, {**META, "trials": 40}, clock=clock)
    with pytest.raises(UsageError, match=r"trials: 40 != 20\); to continue it pass --trials 40$"):
        build.build(
            fake_jobs(clock, 4), SETTINGS, out, {**META, "trials": 20}, resume=True, clock=clock
        )


def test_shards_partition_and_merge(tmp_path: Path) -> None:
    clock = FakeClock()
    jobs = fake_jobs(clock, 1)
    parts = []
    for i in range(3):
        shard = [j for j in jobs if jobsmod.in_shard(j.key, (i, 3))]
        path = tmp_path / f"s{i}.parquet"
        build.build(shard, SETTINGS, path, {**META, "shard": [i, 3]}, clock=clock)
        parts.append((str(path), LatencyTable.load(path)))
    sizes = [len(t) for _, t in parts]
    assert sum(sizes) == len(jobs)
    merged = merge(parts)
    assert set(merged.rows) == {j.key for j in jobs}
    assert "shard" not in merged.meta
    with pytest.raises(UsageError, match="shard 0 of 3 is given twice"):
        merge([*parts, ("copy.parquet", parts[0][1])])
    with pytest.raises(UsageError, match="shard 2 of 3 is missing"):
        merge(parts[:2])
    whole = [(n, LatencyTable({k: v for k, v in t.meta.items() if k != "shard"}, t.rows))
             for n, t in parts]  # fmt: skip
    with pytest.raises(UsageError, match="conflicting key"):
        merge([whole[0], ("copy.parquet", whole[0][1])])
    odd = LatencyTable({**META, "dtype": "bfloat16"})
    with pytest.raises(UsageError, match=r"environments differ .*dtype"):
        merge([parts[0], ("odd.parquet", odd)])


@pytest.mark.parametrize("text", ["3/2", "0/0", "a/b", "1", "-1/2"])
def test_bad_shards(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        jobsmod.parse_shard(text)


def test_failed_entry_is_recorded_and_build_goes_on(tmp_path: Path) -> None:
    good = Job("good", {"op": "conv"}, lambda: (nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),)))
    bad = Job("bad", {"op": "conv"}, lambda: (nn.Conv2d(5, 4, 3), (torch.zeros(1, 3, 8, 8),)))
    out = tmp_path / "t.parquet"
    result = build.build([bad, good], SETTINGS, out, META)
    assert result.failed and result.failed[0].startswith("bad: RuntimeError")
    table = LatencyTable.load(out)
    assert table.rows["bad"]["status"] == "failed" and table.rows["good"]["status"] == "ok"
    assert table.rows["good"]["macs"] == 6 * 6 * 4 * 3 * 3 * 3
    with pytest.raises(LookupMissError):
        table.lookup("bad")


def test_schema_and_metadata(tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "t.parquet"
    build.build(fake_jobs(clock, 4), SETTINGS, out, META, clock=clock)
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
    jobs = jobsmod.space_jobs(space(), 2, "float32", 8)
    build.build(jobs, MeasureSettings(warmup=1, trials=2), out, META)
    table = LatencyTable.load(out)
    assert all(r["status"] == "ok" and r["time_us_median"] > 0 for r in table.rows.values())
    assert {r["input_shape"] for r in table.rows.values()} == {"2x8x4x4"}


def fake_table(rows: dict[str, float]) -> LatencyTable:
    """A table of hand-made ok rows: key -> median µs (mid parsed from the key)."""
    table = LatencyTable(dict(META))
    for key, us in rows.items():
        table.add(
            {
                "key": key,
                "mid": int(key.split("|")[3][1:]),
                "status": "ok",
                "time_us_median": us,
            }
        )
    return table


def entry_key(mid: int, se: int, c_in: int = 16) -> str:
    return f"mbinvres|k3|s1|m{mid}|se{se}|relu|d1|{c_in}>{c_in}|8x8|b1|float32"


def test_interpolation_across_mid_dependent_se() -> None:
    # se rule "quarter": se = mid // 4, so measured neighbours have other se fields
    table = fake_table({entry_key(32, 8): 32.0, entry_key(40, 10): 40.0, entry_key(64, 16): 64.0})
    assert table.get(entry_key(36, 9)) == pytest.approx(36.0)
    assert table.get(entry_key(48, 12)) == pytest.approx(48.0)
    assert table.get(entry_key(40, 10)) == 40.0  # exact
    assert table.get(entry_key(36, 0)) is None  # no SE: only se = 0 rows qualify
    assert table.get(entry_key(70, 17)) is None  # outside the measured widths
    # other fields must agree: another c_in, kernel or activation never matches
    assert table.get(entry_key(36, 9, c_in=24)) is None
    assert table.get(entry_key(36, 9).replace("|k3|", "|k5|")) is None
    assert table.get(entry_key(36, 9).replace("|relu|", "|relu6|")) is None


def test_interpolation_fixed_se_and_no_se_kept_apart() -> None:
    # se rule "c_in": se fixed at c_in = 16; no-SE rows of the same op must not be mixed in
    table = fake_table(
        {
            entry_key(32, 16): 30.0,
            entry_key(64, 16): 50.0,
            entry_key(32, 0): 10.0,
            entry_key(64, 0): 20.0,
        }
    )
    assert table.get(entry_key(48, 16)) == pytest.approx(40.0)
    assert table.get(entry_key(48, 0)) == pytest.approx(15.0)
    # two SE rows at one width (rules c_in and quarter): the closer se wins
    table.add({"key": entry_key(32, 8), "mid": 32, "status": "ok", "time_us_median": 99.0})
    assert table.get(entry_key(48, 16)) == pytest.approx(40.0)


QUARTER_SPACE = """
name = "quarter"
input = [8, 4, 4]
[defaults]
se = "quarter"
[[stage]]
c_out = 8
ops = ["mbinvres_k3_e1-3", "mbinvres_k3_e2_se-none", "identity"]
"""


def test_toml_space_with_quarter_se_interpolates_every_width(tmp_path: Path) -> None:
    from latprof.space.toml_file import loads_toml_space

    space = loads_toml_space(QUARTER_SPACE)
    clock = FakeClock()
    jobs = []
    for job in jobsmod.space_jobs(space, 1, "float32", width_step=5):
        ns = max(job.columns["mid"], 1) * 1000 + job.columns["se"] * 100
        jobs.append(Job(job.key, job.columns, lambda ns=ns: (Work(clock, ns), (torch.zeros(1),))))
    assert [j.columns["mid"] for j in jobs] == [8, 13, 18, 23, 24, 16, 0]
    out = tmp_path / "q.parquet"
    build.build(jobs, SETTINGS, out, META, clock=clock)
    table = LatencyTable.load(out)
    full = space.entries(1)
    assert len(full) > len(jobs)
    for entry in full:
        key = entry.key(1, "float32")
        value = table.get(key)
        assert value is not None, key
        if entry.mid and entry.se:
            # linear between measured neighbours whose se (= mid // 4) differs
            lo = max(j.columns["mid"] for j in jobs[:5] if j.columns["mid"] <= entry.mid)
            hi = min(j.columns["mid"] for j in jobs[:5] if j.columns["mid"] >= entry.mid)
            times = {m: m + (m // 4) / 10 for m in (lo, hi)}
            t = 0 if hi == lo else (entry.mid - lo) / (hi - lo)
            assert value == pytest.approx(times[lo] + t * (times[hi] - times[lo]))


def test_cost_proxy_by_hand() -> None:
    e = jobsmod.ELEMENT_WEIGHT
    # mbinvres 8 -> 8, mid 16, k3, stride 2, 4x4 -> 2x2, SE 4: expand 8*16*16 MACs, depthwise
    # 9*16*4, project 16*8*4, SE 2*16*4; elements: x 128, expand 2*256, dw 2*64, out 2*32,
    # SE 2*64
    cols = {"op": "mbinvres", "kernel": 3, "stride": 2, "mid": 16, "se": 4, "c_in": 8}
    cols |= {"c_out": 8, "h": 4, "w": 4}
    macs = 8 * 16 * 16 + 9 * 16 * 4 + 16 * 8 * 4 + 2 * 16 * 4
    assert jobsmod.cost_proxy(cols) == macs + e * (128 + 512 + 128 + 64 + 128)
    conv = {"op": "conv", "kernel": 3, "stride": 1, "c_in": 3, "c_out": 4, "h": 8, "w": 8}
    assert jobsmod.cost_proxy(conv) == 9 * 3 * 4 * 64 + e * (3 * 64 + 2 * 4 * 64)
    same = {"op": "identity", "stride": 1, "c_in": 4, "c_out": 4, "h": 2, "w": 2}
    assert jobsmod.cost_proxy(same) == e * 16
    assert jobsmod.cost_proxy({"op": "Tanh", "input_shape": "1x4x2x2"}) == e * 32
    assert jobsmod.cost_proxy({"op": "Tanh"}) is None


def test_estimate_is_exact_when_time_follows_the_proxy(tmp_path: Path) -> None:
    clock = FakeClock()
    jobs = []
    for job in jobsmod.space_jobs(space(), 1, "float32", width_step=1):
        ns = int(jobsmod.cost_proxy(job.columns) or 0)
        jobs.append(Job(job.key, job.columns, lambda ns=ns: (Work(clock, ns), (torch.zeros(1),))))
    est = build.estimate_build(jobs, SETTINGS, clock=clock, samples=4)
    proxies = sorted(jobsmod.cost_proxy(j.columns) or 0 for j in jobs)
    passes = SETTINGS.warmup + SETTINGS.trials
    assert est.by_proxy and est.entries == 10 and len(est.sampled) == 4
    assert est.passes_s == pytest.approx(passes * sum(proxies) / 1e9, rel=1e-9)
    # sorted by proxy: identity, m8 .. m16; groups [0:2] [2:5] [5:8] [8:10], middle of each
    assert [k.split("|")[3] for k in est.sampled] == ["m8", "m10", "m13", "m16"]
    assert build.estimate_build(jobs, SETTINGS, clock=clock, samples=4).sampled == est.sampled
    assert est.seconds >= est.passes_s + est.saves_s > 0
    assert build.estimate_build([], SETTINGS).seconds == 0.0


def test_estimate_says_which_samples_failed_and_leaves_their_groups_out() -> None:
    """A sample that cannot be built gives its group no time, and the estimate says so."""
    clock = FakeClock()

    def jobs(fail: str | None) -> list[Job]:
        out = []
        for job in jobsmod.space_jobs(space(), 1, "float32", width_step=1):
            ns = int(jobsmod.cost_proxy(job.columns) or 0)

            def make(ns: int = ns, mid: int = job.columns["mid"]) -> tuple[nn.Module, tuple]:
                if f"m{mid}" == fail:
                    raise ValueError("no such block")
                return Work(clock, ns), (torch.zeros(1),)

            out.append(Job(job.key, job.columns, make))
        return out

    whole = build.estimate_build(jobs(None), SETTINGS, clock=clock, samples=4)
    assert whole.failed == [] and whole.unestimated == 0
    est = build.estimate_build(jobs("m13"), SETTINGS, clock=clock, samples=4)
    # groups by proxy [identity, m8] [m9 m10 m11] [m12 m13 m14] [m15 m16]: m13's is out
    [key] = [k for k in est.sampled if "|m13|" in k]
    assert est.failed == [f"{key}: ValueError: no such block"] and est.unestimated == 3
    passes = SETTINGS.warmup + SETTINGS.trials
    group = sorted(jobsmod.cost_proxy(j.columns) or 0 for j in jobs(None))[5:8]
    assert est.passes_s == pytest.approx(whole.passes_s - passes * sum(group) / 1e9, rel=1e-9)
