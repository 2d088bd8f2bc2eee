"""A child's timer cost inside its parent, as the model's own passes measure it
(runner.nest_in_model; reported, not subtracted): exact arithmetic on a fake clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latprof.config import ProfileConfig
from latprof.io.profile_file import load, save_parquet
from latprof.measure.clocks import FakeClock
from latprof.measure.hooks import TreeTimer
from latprof.measure.runner import RunResult, nest_in_model, time_tree
from latprof.profiler import profile
from tests.helpers import Work

READ_NS = 100


class Net(nn.Module):
    """c1 (3 µs) -> a1 (1 µs) -> shared (2 µs) twice, 0.5 µs of its own work; its code after
    each child runs 0.3 µs slower while the child is timed (on nn.Identity a timer costs its
    parent less than between real layers)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.c1 = Work(clock, 3000)
        self.a1 = Work(clock, 1000)
        self.shared = Work(clock, 2000)

    def call(self, child: nn.Module, x: torch.Tensor) -> torch.Tensor:
        y = child(x)
        if "forward" in child.__dict__:  # shadowed: the child is timed
            self.clock.advance(300)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.call(self.shared, self.call(self.a1, self.call(self.c1, x)))
        self.clock.advance(500)
        return self.call(self.shared, x)


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


def test_tree_times_counts_timed_children() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    inner = nn.Sequential(Work(clock, 1000), Work(clock, 1000))
    outer = nn.Sequential(inner)
    timer = TreeTimer([outer, inner, *inner], clock)
    time_tree(lambda: outer(torch.zeros(1)), timer)
    counts = {i: kids for i, _, _, _, kids in timer.tree_times(0.1, 0.1)}
    assert counts == {0: 1, 1: 2, 2: 0, 3: 0}


def test_profile_reports_the_nest_its_own_passes_measured_and_subtracts_identitys() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    config = ProfileConfig(warmup=2, trials=4)
    prof = profile(Net(clock), (torch.zeros(1, 2),), config=config, clock=clock)
    # timed - plain: 5 calls x 2 reads + 4 x 0.3 µs = 2.2 µs; less 5 x 0.1 bias and the
    # model's own 0.1 outside its marks: 1.6 µs over 4 nested calls
    assert prof.nest_us == pytest.approx(0.1)
    assert prof.nest_in_model_us == pytest.approx(0.4)
    s = prof.summary
    # subtracted: nn.Identity's 0.1 per child, so the model's 0.5 µs reads 0.5 + 4 x 0.3
    assert s.self_sum_us == pytest.approx(1.7)
    assert s.leaf_sum_us == pytest.approx(8.0)
    assert s.unattributed_us == pytest.approx(0.1 - 1.2)
    (notice,) = [n for n in prof.notices if n.kind == "negative-unattributed"]
    assert "these passes put nest at 0.40 µs per child call" in notice.message


def test_leaves_only_is_untouched() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    config = ProfileConfig(warmup=2, trials=4, scope="leaves")
    prof = profile(Net(clock), (torch.zeros(1, 2),), config=config, clock=clock)
    assert prof.nest_us == 0.0 and prof.nest_in_model_us is None
    assert prof.summary.leaf_sum_us == pytest.approx(8.0)
    # the model's 0.5 µs and the plain pass's clock read (the slower code is not in it)
    assert prof.summary.unattributed_us == pytest.approx(0.6)


def test_both_nests_are_saved_with_the_profile(tmp_path: Path) -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    config = ProfileConfig(warmup=2, trials=4)
    prof = profile(Net(clock), (torch.zeros(1, 2),), config=config, clock=clock)
    path = tmp_path / "p.parquet"
    save_parquet(prof, path)
    back = load(path)
    assert back.nest_us == pytest.approx(0.1) and back.nest_in_model_us == pytest.approx(0.4)
