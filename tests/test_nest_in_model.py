"""A child's timer cost inside its parent, as the model's own passes measure it
(runner.nest_in_model; subtracted on the CPU, never below nn.Identity's): exact arithmetic on
a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latprof.config import ProfileConfig
from latprof.io.profile_file import load, save_json, save_parquet
from latprof.measure.clocks import FakeClock
from latprof.measure.hooks import TreeTimer
from latprof.measure.runner import (
    RunResult,
    nest_in_model,
    nest_to_subtract,
    run_trials,
    time_tree,
    with_nest,
)
from latprof.profiler import profile
from latprof.records import Profile
from tests.helpers import Work, timed_now

READ_NS = 100


class Net(nn.Module):
    """c1 (3 µs) -> a1 (1 µs) -> shared (2 µs) twice, 0.5 µs of its own work; its code after
    each child runs `slower` ns slower while the child is timed (on nn.Identity a timer
    costs its parent less than between real layers)."""

    def __init__(self, clock: FakeClock, slower: int = 300) -> None:
        super().__init__()
        self.clock = clock
        self.slower = slower
        self.c1 = Work(clock, 3000)
        self.a1 = Work(clock, 1000)
        self.shared = Work(clock, 2000)

    def call(self, child: nn.Module, x: torch.Tensor) -> torch.Tensor:
        y = child(x)
        if timed_now(child):  # the child is timed
            self.clock.advance(self.slower)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.call(self.shared, self.call(self.a1, self.call(self.c1, x)))
        self.clock.advance(500)
        return self.call(self.shared, x)


def profiled(slower: int = 300, scope: str = "modules") -> Profile:
    clock = FakeClock(read_cost_ns=READ_NS)
    config = ProfileConfig(warmup=2, trials=4, scope=scope)
    return profile(Net(clock, slower), (torch.zeros(1, 2),), config=config, clock=clock)


def result(hooked: list[float], e2e: list[float], calls: int = 11, nested: int = 10) -> RunResult:
    n = len(hooked)
    zeros = np.zeros((n, 2))
    return RunResult(
        zeros,
        np.tile([calls - nested, nested], (n, 1)),
        np.array(e2e),
        np.array(hooked),
        zeros.copy(),
        child_calls=np.tile([nested, 0], (n, 1)),
    )


def test_nest_is_what_the_passes_added_beyond_the_bias_per_nested_call() -> None:
    # 11 calls (10 with a timed parent), 6.2 µs added per pass: 11 x 0.1 bias, the root's
    # 0.1 nest, 5.0 µs over 10 nested calls
    assert nest_in_model(result([106.2, 107.2, 105.2], [100, 101, 99]), 0.1, 0.1) == (
        pytest.approx(0.5)
    )
    # cheaper than calibrated is measured too, below 0 included (noise, reported as is)
    assert nest_in_model(result([101.7, 101.7], [100, 100]), 0.1, 0.1) == pytest.approx(0.05)
    assert nest_in_model(result([99.0, 99.0], [100, 100]), 0.1, 0.1) == pytest.approx(-0.22)


def test_nest_takes_the_median_pass_and_is_none_without_a_measurement() -> None:
    # a slow timed pass (+50 µs) is not the timers' cost: the median of 6.2, 6.2, 56.2
    assert nest_in_model(result([106.2, 157.2, 105.2], [100, 101, 99]), 0.1, 0.1) == (
        pytest.approx(0.5)
    )
    assert nest_in_model(result([150.0], [100.0]), 0.1, 0.1) is None  # one trial
    assert nest_in_model(result([150.0, 150.0], [100, 100], 1, 0), 0.1, 0.1) is None  # no nesting
    # one child call per pass is enough: 1.0 added - 2 x 0.1 bias - the root's 0.1
    assert nest_in_model(result([101.0, 101.0], [100, 100], 2, 1), 0.1, 0.1) == pytest.approx(0.7)


def test_tree_times_counts_timed_children_and_the_calls_below() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    inner = nn.Sequential(Work(clock, 1000), Work(clock, 1000))
    outer = nn.Sequential(inner, Work(clock, 500))
    timer = TreeTimer([outer, inner, *inner, outer[1]], clock)
    time_tree(lambda: outer(torch.zeros(1)), timer)
    counts = {i: (kids, below) for i, _, _, _, kids, below in timer.tree_times(0.1, 0.1)}
    assert counts == {0: (2, 4), 1: (2, 2), 2: (0, 0), 3: (0, 0), 4: (0, 0)}


def test_with_nest_equals_timing_with_that_nest() -> None:
    # a block called twice, a child two levels down: self times and totals both move
    def measure(nest: float) -> RunResult:
        clock = FakeClock(read_cost_ns=READ_NS)
        net = Net(clock)
        inner = nn.Sequential(net, Work(clock, 700))
        model = nn.Sequential(inner, net.shared)
        modules = [model, inner, net, net.c1, net.a1, net.shared, inner[1]]
        return run_trials(lambda: model(torch.zeros(1)), modules, clock, 1, 3, 0.1, None, nest)

    moved = with_nest(measure(0.1), 0.1, 0.45)
    direct = measure(0.45)
    assert moved.leaf_time_us == pytest.approx(direct.leaf_time_us)
    assert moved.total_us == pytest.approx(direct.total_us)
    assert moved.edge_us == pytest.approx(direct.edge_us)  # the callees' totals per caller
    assert moved.edge_us != measure(0.1).edge_us
    assert not np.allclose(direct.total_us, measure(0.1).total_us)
    assert moved.e2e_us.tolist() == direct.e2e_us.tolist()


def test_with_nest_leaves_a_result_without_call_counts_as_it_is() -> None:
    counted = result([106.2, 107.2], [100, 101])  # timed children, but no calls below counted
    assert with_nest(counted, 0.1, 0.5) is counted


def test_the_nest_subtracted_is_the_passes_never_below_identitys() -> None:
    assert nest_to_subtract(0.2, 0.7, "cpu") == 0.7
    assert nest_to_subtract(0.2, 0.05, "cpu") == 0.2  # below the calibration: noise
    assert nest_to_subtract(0.2, -0.3, "cpu") == 0.2
    assert nest_to_subtract(0.2, None, "cpu") == 0.2  # one trial, or no nesting
    # on a GPU timed minus plain passes is device time: nn.Identity's host-side nest
    assert nest_to_subtract(0.2, 0.7, "cuda") == 0.2
    assert nest_to_subtract(0.2, 0.7, "cuda:1") == 0.2


def test_profile_subtracts_the_nest_its_own_passes_measured() -> None:
    prof = profiled()
    # timed - plain: 5 calls x 2 reads + 4 x 0.3 µs = 2.2 µs; less 5 x 0.1 bias and the
    # model's own 0.1 outside its marks: 1.6 µs over 4 nested calls
    assert prof.nest_identity_us == pytest.approx(0.1)
    assert prof.nest_in_model_us == pytest.approx(0.4)
    assert prof.nest_us == pytest.approx(0.4)
    s = prof.summary
    # the model's own 0.5 µs, without the 4 x 0.3 µs its children's timers cost it
    assert s.self_sum_us == pytest.approx(0.5)
    assert s.leaf_sum_us == pytest.approx(8.0)
    assert s.unattributed_us == pytest.approx(0.1)  # the plain pass's own clock read
    (root,) = prof.module_rows(0)
    assert root["time_us"] == pytest.approx(8.5)
    assert not [n for n in prof.notices if n.kind == "negative-unattributed"]


def test_a_nest_below_identitys_is_not_subtracted() -> None:
    # the parent's code runs 0.3 µs faster after a timed child: the passes say -0.2 µs
    prof = profiled(slower=-300)
    assert prof.nest_in_model_us == pytest.approx(-0.2)
    assert prof.nest_us == pytest.approx(0.1) == prof.nest_identity_us
    assert prof.summary.self_sum_us == pytest.approx(0.5 - 1.2)


def test_leaves_only_is_untouched() -> None:
    prof = profiled(scope="leaves")
    assert prof.nest_us == 0.0 and prof.nest_in_model_us is None
    assert prof.summary.leaf_sum_us == pytest.approx(8.0)
    # the model's 0.5 µs and the plain pass's clock read (the slower code is not in it)
    assert prof.summary.unattributed_us == pytest.approx(0.6)


class Caller(nn.Module):
    """A leaf (no submodules) that works 0.4 µs and calls a module handed to it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def forward(self, x: torch.Tensor, other: nn.Module) -> torch.Tensor:
        self.clock.advance(400)
        return other(x)


class Handing(nn.Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.works = nn.ModuleList(Work(clock, 1000) for _ in range(20))
        self.norm = Work(clock, 300)
        self.caller = Caller(clock)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for work in self.works:
            x = work(x)
        return self.caller(x, self.norm)


def test_leaves_only_never_takes_a_nest_from_a_leaf_calling_a_leaf() -> None:
    # 21 unnested leaf calls' timer cost would otherwise land on the one nested call
    clock = FakeClock(read_cost_ns=READ_NS)
    config = ProfileConfig(warmup=2, trials=4, scope="leaves")
    prof = profile(Handing(clock), (torch.zeros(1),), config=config, clock=clock)
    assert prof.nest_us == 0.0 and prof.nest_in_model_us is None
    (caller,) = [layer for layer in prof.layers if layer.name == "caller"]
    # its 0.4 µs and the 0.1 µs of norm's timer outside norm's marks (no nest is calibrated)
    assert caller.stats.mean == pytest.approx(0.5)


def test_every_nest_is_saved_with_the_profile(tmp_path: Path) -> None:
    prof = profiled()
    path = tmp_path / "p.parquet"
    save_parquet(prof, path)
    back = load(path)
    assert back.nest_us == pytest.approx(0.4) and back.nest_in_model_us == pytest.approx(0.4)
    assert back.nest_identity_us == pytest.approx(0.1)


def test_a_profile_saved_before_the_nest_was_measured_reads_identitys(tmp_path: Path) -> None:
    prof = profiled()
    path = tmp_path / "p.json"
    save_json(prof, path)
    data = json.loads(path.read_text())
    # files until 2026-12-07 subtracted nn.Identity's nest and had no nest_identity_us
    del data["nest_identity_us"]
    data["nest_us"] = 0.1
    path.write_text(json.dumps(data))
    back = load(path)
    assert back.nest_identity_us == pytest.approx(0.1) == back.nest_us
    assert back.nest_in_model_us == pytest.approx(0.4)
