"""Entries measured in context networks: the plan, the fillers, exact fake-clock times."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.lut import build
from latprof.lut import in_network as context
from latprof.lut.jobs import Job
from latprof.lut.table import LatencyTable
from latprof.measure.clocks import FakeClock
from tests.helpers import Work

SETTINGS = MeasureSettings(warmup=1, trials=3)
SLOT_KEYS = [
    ["s"],
    ["a1", "a2", "a3"],
    ["b1", "b2", "b3", "b4", "b5"],
    ["b1", "b2", "b3", "b4", "b5"],
]
ALL = sorted({k for keys in SLOT_KEYS for k in keys})
META = {
    "kind": "lut",
    "source": "space",
    "space_hash": "h",
    "batch": 1,
    "dtype": "float32",
    "device": "cpu",
    "context": "networks",
    "statistic": "p10",
}


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() != 0:
            raise RuntimeError("boom after another block")
        return x


def slot_jobs(clock: FakeClock, slot_keys: list[list[str]], broken: str = "") -> list[list[Job]]:
    """Each key 'runs' for (its number + 1) µs of fake time: s 1 µs, a2 3 µs, b5 6 µs."""

    def make(key: str) -> tuple[nn.Module, tuple]:
        if key == broken:
            raise RuntimeError("cannot build this one")
        if key == "interrupt":
            raise KeyboardInterrupt
        if key == "boom":  # builds and runs alone, fails inside a network
            return Boom(), (torch.zeros(1, 2),)
        ns = (int(key[1:] or 0) + 1) * 1000
        return Work(clock, ns), (torch.zeros(1, 2),)

    return [[Job(k, {"op": k[0]}, lambda k=k: make(k)) for k in keys] for keys in slot_keys]


def test_plan_places_every_key_once_in_a_slot_that_has_it() -> None:
    networks = context.plan(SLOT_KEYS, ALL)
    # b's five keys share two positions: 3 networks, as many as a's three keys need
    assert len(networks) == 3
    placed = Counter(k for net in networks for k in net if k is not None)
    assert sorted(placed) == ALL and set(placed.values()) == {1}
    for net in networks:
        for position, key in enumerate(net):
            assert key is None or key in SLOT_KEYS[position]
    assert context.plan(SLOT_KEYS, ALL) == networks  # seeded: the same plan again
    assert context.plan(SLOT_KEYS, ALL, seed=1) != networks


def test_plan_only_what_is_left_and_refuses_strays() -> None:
    networks = context.plan(SLOT_KEYS, ["a2", "b4"])
    assert len(networks) == 1 and networks[0] == [None, "a2", "b4", None]
    with pytest.raises(ValueError, match=r"fit no slot, e\.g\. z9"):
        context.plan(SLOT_KEYS, ["a1", "z9"])


def test_fill_reuses_keys_of_the_same_position_then_any_of_the_slot() -> None:
    group = [[None, "a1", None], [None, "a3", None], [None, None, None]]
    slot_keys = [["s"], ["a1", "a2", "a3"], ["c1", "c2"]]
    filled = context.fill(group, slot_keys, random.Random(0))
    assert [net[0] for net in filled] == ["s", "s", "s"]
    assert [net[1] for net in filled] == ["a1", "a3", "a1"]  # the empty one takes a1 in turn
    assert filled[0][2] in ("c1", "c2") and all(net[2] in ("c1", "c2") for net in filled)


def test_measure_times_each_block_inside_its_network_exactly() -> None:
    clock = FakeClock()
    slots = slot_jobs(clock, SLOT_KEYS)
    todo = [j for slot in slots for j in slot if j.key != "s"]  # s only as a filler
    rows = {r["key"]: r for r in context.measure(todo, slots, SETTINGS, clock)}
    assert sorted(rows) == sorted(set(ALL) - {"s"})
    for key, row in rows.items():
        want = int(key[1:]) + 1.0
        assert row["status"] == "ok"
        assert set(row["samples_us"]) == {want}
        assert row["time_us_p10"] == row["time_us_median"] == want
    # 3 networks x 3 trials; one clock pass and one finish() (on CUDA one synchronisation)
    # per network pass, not one per block; none in warm-up
    assert clock.passes == 9
    assert clock.finishes == 9
    # a's keys fill the one network the plan left without a: the filler is timed as well
    assert sum(rows[k]["n"] for k in ("a1", "a2", "a3")) == 9
    assert sum(rows[k]["n"] for k in ("b1", "b2", "b3", "b4", "b5")) == 18


def test_a_broken_entry_fails_alone_and_its_place_is_taken() -> None:
    clock = FakeClock()
    slots = slot_jobs(clock, SLOT_KEYS, broken="a2")
    rows = {r["key"]: r for r in context.measure(slots[1], slots, SETTINGS, clock)}
    assert rows["a2"]["status"] == "failed" and "cannot build this one" in rows["a2"]["error"]
    assert rows["a1"]["status"] == rows["a3"]["status"] == "ok"
    assert clock.passes == 9  # the network that held a2 still ran, with another a
    assert clock.finishes == 9


def test_build_in_context_saves_each_group_and_resumes(tmp_path: Path) -> None:
    clock = FakeClock()
    keys = [[f"a{i}" for i in range(10)], ["s"]]
    slots = slot_jobs(clock, keys)
    out = tmp_path / "t.parquet"
    broken = slot_jobs(clock, [[*keys[0][:6], "interrupt", *keys[0][7:]]])[0]
    broken_keys = [j.key for j in broken]
    plan_order = [net[0] for net in context.plan([broken_keys, ["s"]], broken_keys)]
    groups_done = plan_order.index("interrupt") // 4  # groups of 4 networks before it
    assert groups_done >= 1
    with pytest.raises(KeyboardInterrupt):
        build.build(broken, SETTINGS, out, META, clock=clock, slots=[broken, slots[1]])
    saved = LatencyTable.load(out)
    assert len(saved) == 4 * groups_done and saved.meta["context"] == "networks"
    result = build.build(slots[0], SETTINGS, out, META, resume=True, clock=clock, slots=slots)
    assert (result.reused, result.measured) == (4 * groups_done, 10 - 4 * groups_done)
    table = LatencyTable.load(out)
    assert table.statistic == "p10"
    assert table.lookup("a9") == 10.0


def test_a_block_failing_in_its_network_fails_alone() -> None:
    clock = FakeClock()
    # Work adds nothing, so give the stem a non-zero input: Boom then fails in a network
    slots = slot_jobs(clock, [["s"], ["a1", "boom"], ["c1"]])
    slots[0] = [Job("s", {"op": "s"}, lambda: (Work(clock, 1000), (torch.ones(1, 2),)))]
    todo = [j for slot in slots for j in slot]
    rows = {r["key"]: r for r in context.measure(todo, slots, SETTINGS, clock)}
    assert rows["boom"]["status"] == "failed"
    assert rows["boom"]["error"] == "in its network: RuntimeError: boom after another block"
    assert all(rows[k]["status"] == "ok" and rows[k]["n"] > 0 for k in ("s", "a1", "c1"))


def test_entries_of_networks_that_cannot_run_fail_with_the_reason() -> None:
    clock = FakeClock()
    slots = slot_jobs(clock, [["s"], ["a1", "a2"], ["c1"]], broken="c1")
    rows = {r["key"]: r for r in context.measure(slots[1], slots, SETTINGS, clock)}
    for key in ("a1", "a2"):  # never timed: no NaN 'ok' rows
        assert rows[key]["status"] == "failed" and rows[key]["n"] == 0
        assert "not timed: a slot of its network has no entry that runs" in rows[key]["error"]
        assert "c1: RuntimeError: cannot build this one" in rows[key]["error"]


def test_fill_never_puts_one_key_twice_in_a_network() -> None:
    slot_keys = [["x1", "x2"], ["x1", "x2"], ["a1"]]
    for seed in range(20):
        filled = context.fill([[None, None, "a1"]], slot_keys, random.Random(seed))
        assert sorted(filled[0][:2]) == ["x1", "x2"]


def test_resume_names_the_flags_and_merge_refuses_another_statistic(tmp_path: Path) -> None:
    from latprof.errors import UsageError
    from latprof.lut.table import merge

    out = tmp_path / "t.parquet"
    LatencyTable(dict(META)).save(out)
    old = {k: v for k, v in META.items() if k not in ("context", "statistic")}
    with pytest.raises(UsageError) as err:
        build.open_table(out, old, resume=True)
    assert "context: 'networks' != 'alone'; statistic: 'p10' != 'median'" in str(err.value)
    assert str(err.value).endswith("to continue it pass --context networks --statistic p10")
    with pytest.raises(UsageError, match="environments differ \\(statistic: 'p10' != 'median'"):
        merge(
            [("new", LatencyTable(dict(META))), ("old", LatencyTable({**META, "statistic": None}))]
        )
