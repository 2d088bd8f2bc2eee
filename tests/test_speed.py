"""The reference kernel timed beside a table's measurements, and every number put on the
table's speed: exact on a fake clock whose reference kernel takes scripted times."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.lut import in_network as context
from latprof.lut import measurement
from latprof.lut import validate as val
from latprof.lut.table import LatencyTable, merge
from latprof.measure import speed
from latprof.measure.clocks import FakeClock
from latprof.stats import summarize
from tests.helpers import Work
from tests.test_context import SETTINGS, SLOT_KEYS, slot_jobs


def scripted_kernel(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, us: list[float], log: list[str] | None
) -> None:
    """The reference kernel takes us[0], us[1], ... µs of fake time (cycling)."""
    calls = iter(range(10**6))

    def kernel() -> None:
        i = next(calls)
        clock.advance(int(us[i % len(us)] * 1000))
        if log is not None:
            log.append("ref")

    monkeypatch.setattr(speed, "reference_kernel", lambda: kernel)


def test_factor_and_probe_p10() -> None:
    assert speed.factor(100.0, 200.0) == 0.5
    assert speed.factor(None, 200.0) == speed.factor(100.0, None) == 1.0
    assert speed.factor(0.0, 5.0) == speed.factor(5.0, 0.0) == 1.0
    clock = FakeClock()
    times = iter([300, 100, 200, 400, 500, 600, 700, 800, 900, 1000])
    probe = speed.SpeedProbe(clock, lambda: clock.advance(next(times) * 1000))
    assert probe.speed_us() is None
    probe.sample(10)
    assert probe.samples == [300.0, 100.0, 200.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0]
    assert probe.speed_us() == pytest.approx(190.0)  # numpy's p10 of 100..1000
    assert probe.speed_us(since=8) == pytest.approx(910.0)
    assert clock.passes == 0  # on the CPU the probe opens no clock pass
    zero = speed.SpeedProbe(FakeClock(), lambda: None)
    zero.sample(3)
    assert zero.speed_us() is None  # a clock that did not move measured nothing
    assert speed.probe_for("cuda", clock) is None
    assert speed.probe_for("cpu", clock) is not None


def row(key: str, p10: float, speed_us: float | None) -> dict:
    return {"key": key, "status": "ok", "time_us_p10": p10, "speed_us": speed_us}


def test_time_of_puts_every_row_on_the_speed_of_the_first() -> None:
    table = LatencyTable({"kind": "lut", "statistic": "p10"})
    table.add(row("old", 10.0, None))  # a row without a speed sets nothing and stays as timed
    assert "speed_us" not in table.meta
    table.add(row("a", 10.0, 100.0))
    table.add(row("b", 10.0, 125.0))  # measured while the machine ran 25 % slower
    assert table.meta["speed_us"] == 100.0
    assert table.lookup("a") == 10.0
    assert table.lookup("b") == pytest.approx(8.0)
    assert table.lookup("old") == 10.0


def test_interpolated_widths_use_each_neighbour_at_its_own_speed() -> None:
    table = LatencyTable({"kind": "lut", "statistic": "p10", "speed_us": 100.0})
    table.add(row("mb|k3|s1|m16|se0|x", 20.0, 100.0))
    table.add(row("mb|k3|s1|m32|se0|x", 80.0, 200.0))  # 40 µs at the table's speed
    assert table.lookup("mb|k3|s1|m24|se0|x") == pytest.approx(30.0)


def test_saved_and_loaded_tables_keep_the_speeds(tmp_path: Path) -> None:
    table = LatencyTable({"kind": "lut", "format_version": 1, "statistic": "p10"})
    table.add({**row("a", 10.0, 100.0), "time_us_median": 10.0})
    table.add({**row("b", 10.0, 50.0), "time_us_median": 10.0})
    table.save(tmp_path / "t.parquet")
    back = LatencyTable.load(tmp_path / "t.parquet")
    assert back.meta["speed_us"] == 100.0 and back.rows["b"]["speed_us"] == 50.0
    assert back.lookup("b") == pytest.approx(20.0)


def test_merge_keeps_each_rows_speed_and_one_unit() -> None:
    meta = {"kind": "lut", "statistic": "p10", "speed_ref": speed.REFERENCE}
    a = LatencyTable(dict(meta))
    a.add(row("a", 10.0, 100.0))
    b = LatencyTable(dict(meta))
    b.add(row("b", 10.0, 200.0))
    merged = merge([("a", a), ("b", b)])
    assert merged.meta["speed_us"] == 100.0 and merged.meta["speed_ref"] == speed.REFERENCE
    assert merged.lookup("b") == pytest.approx(5.0)
    other = LatencyTable({**meta, "speed_ref": "another kernel"})
    assert any(d.startswith("speed_ref:") for d in a.differences(other.meta))
    older = {k: v for k, v in meta.items() if k != "speed_ref"}
    assert a.differences(older) == []  # tables from before speed_ref mix with any


def test_context_rows_carry_their_groups_reference_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    log: list[str] = []
    # 3 networks in one group, SPEED_SAMPLES timings after each: p10 of 15 samples
    us = [100.0, 110.0, 120.0, 130.0, 140.0]
    scripted_kernel(monkeypatch, clock, us, log)
    slots = slot_jobs(clock, SLOT_KEYS)
    todo = [j for slot in slots for j in slot if j.key != "s"]
    rows = {r["key"]: r for r in context.measure(todo, slots, SETTINGS, clock)}
    want = float(torch.quantile(torch.tensor(us * 3, dtype=torch.float64), 0.1))
    assert [r["speed_us"] for r in rows.values()] == [pytest.approx(want)] * len(rows)
    assert log.count("ref") == 3 * context.SPEED_SAMPLES
    for key, r in rows.items():  # the blocks' own times are untouched by the probe
        assert set(r["samples_us"]) == {int(key[1:]) + 1.0}
    assert clock.passes == 9  # the probe adds no clock pass (nothing to synchronise on CUDA)


def test_entries_measured_alone_carry_the_reference_speed_of_their_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    log: list[str] = []
    scripted_kernel(monkeypatch, clock, [50.0, 70.0, 60.0], log)
    jobs = slot_jobs(clock, [["a1", "a2"]])[0]
    rows = measurement.measure_jobs(jobs, MeasureSettings(warmup=1, trials=3), clock)
    assert [r["speed_us"] for r in rows] == [pytest.approx(52.0)] * 2  # p10 of 50, 70, 60
    assert log == ["ref"] * 3  # one after each round of the round-robin
    assert [r["time_us_p10"] for r in rows] == [2.0, 3.0]


def test_nothing_is_added_on_cuda() -> None:
    from tests.test_cuda_fake import cuda_clock

    _, _, cuda = cuda_clock()
    assert speed.probe_for("cuda", FakeClock()) is None
    assert speed.probe_for("cpu", cuda) is None  # device events cannot time host work


class Tagged(nn.Module):
    def __init__(self, clock: FakeClock, ns: int, tag: str, log: list[str]) -> None:
        super().__init__()
        self.work, self.tag, self.log = Work(clock, ns), tag, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(self.tag)
        return self.work(x)


def test_networks_get_the_speed_timed_after_their_share_of_each_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    log: list[str] = []
    # A's rounds are followed by 100 µs references, B's by 300 µs ones
    scripted_kernel(monkeypatch, clock, [100.0, 300.0], log)
    nets = [
        (Tagged(clock, 1000 * (i + 1), t, log), (torch.ones(1),), {}) for i, t in enumerate("AB")
    ]
    got = val.measure_networks(nets, MeasureSettings(warmup=1, trials=4), clock)
    rounds = ["A", "A", "A", "ref", "B", "B", "B", "ref"]
    assert log == ["A", "B"] + rounds * 2
    assert [(s.p10, speed_us) for s, _, speed_us in got] == [(1.0, 100.0), (2.0, 300.0)]
    pairs = val.measure_many(nets, MeasureSettings(warmup=0, trials=2), clock)
    assert [(s.n, macs) for s, macs in pairs] == [(2, 0.0), (2, 0.0)]


@pytest.fixture
def measured_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float | None]]:
    """validate's networks all take 200 µs; the reference beside network i took speeds[i]."""
    speeds: list[float | None] = []

    def fake(networks, settings, progress=None):
        return [(summarize([200.0] * 5), 1.0, speeds[i]) for i in range(len(networks))]

    monkeypatch.setattr(val, "measure_networks", fake)
    yield speeds


def test_validation_compares_at_the_tables_speed(
    tiny_lut: Path, measured_at: list[float | None]
) -> None:
    table = LatencyTable.load(tiny_lut)
    targets = val.sampled_targets(table, 2, 1)
    settings = MeasureSettings(warmup=0, trials=5)
    table.meta["speed_us"] = 100.0
    measured_at[:] = [125.0, None]  # the first ran while the machine was 25 % slower
    rows = val.validate(table, list(targets), settings)
    slow, unknown = rows
    assert slow["measured_raw_us"] == 200.0 and slow["measured_us"] == pytest.approx(160.0)
    assert slow["speed_us"] == 125.0 and slow["speed_factor"] == pytest.approx(0.8)
    want = 100.0 * (slow["predicted_us"] - 160.0) / 160.0
    assert slow["error_pct"] == pytest.approx(want)
    assert unknown["measured_us"] == unknown["measured_raw_us"] == 200.0
    assert unknown["speed_factor"] == 1.0
    del table.meta["speed_us"]  # a table without a speed compares as timed
    assert val.validate(table, list(targets), settings)[0]["measured_us"] == 200.0
