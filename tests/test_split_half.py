"""The measurement against itself: validation's even and odd rounds as two measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.lut import selfcheck
from latprof.lut import validate as val
from latprof.lut.table import LatencyTable, describe
from latprof.measure.clocks import FakeClock
from latprof.rank_metrics import kendall_tau, split_half, tau_ceiling
from latprof.stats import summarize


def test_split_half_tau_and_median_difference() -> None:
    got = split_half([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 4.0, 3.0])
    assert got["split_half_tau"] == pytest.approx(4 / 6)  # 5 concordant pairs, 1 discordant
    assert got["split_half_diff_pct"] == pytest.approx((0.0 + 200.0 / 7) / 2)
    assert got["tau_ceiling"] == pytest.approx(tau_ceiling(4 / 6))
    assert split_half([1.0], [1.0]) == {}
    assert split_half([0.0, 0.0, 5.0], [0.0, 0.0, 5.0]) == {}  # zeros dropped: 1 item left


def test_tau_ceiling_limits_and_a_worked_value() -> None:
    assert tau_ceiling(1.0) == pytest.approx(1.0)
    assert tau_ceiling(0.0) == tau_ceiling(-0.3) == 0.0
    assert np.isnan(tau_ceiling(float("nan")))
    # r = sin(0.24π) = 0.6845; 2r / (1 + r) = 0.8128; (2/π)·asin(√0.8128) = 0.7151
    assert tau_ceiling(0.48) == pytest.approx(0.7151, abs=1e-4)


@pytest.mark.parametrize("noise", [0.3, 1.0])
def test_tau_ceiling_estimates_the_truths_tau_with_the_whole_measurement(noise: float) -> None:
    """Simulated (seeded): true values, two halves with independent normal noise, the whole
    their mean; the mean estimate over 200 draws matches the mean τ(truth, whole)."""
    rng = np.random.default_rng(7)
    estimates, actual = [], []
    for _ in range(200):
        truth = rng.normal(size=50)
        a, b = (truth + rng.normal(scale=noise, size=50) for _ in range(2))
        estimates.append(split_half(a + 10, b + 10)["tau_ceiling"])
        actual.append(kendall_tau(truth, (a + b) / 2))
    assert np.mean(estimates) == pytest.approx(np.mean(actual), abs=0.01)


class Scripted(nn.Module):
    """Each call takes the next of `us` µs of fake time."""

    def __init__(self, clock: FakeClock, us: list[float]) -> None:
        super().__init__()
        self.clock, self.us = clock, iter(us)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(int(next(self.us) * 1000))
        return x + 0


def test_halves_are_the_even_and_the_odd_rounds() -> None:
    clock = FakeClock()
    # calls: warm-up, then per round one untimed pass and 2 timed ones (4 trials: 2 rounds)
    calls = [99.0, 99.0, 10.0, 12.0, 99.0, 20.0, 22.0]
    net = (Scripted(clock, calls), (torch.ones(1),), {})
    ((stats, _, halves),) = val.measure_networks([net], MeasureSettings(warmup=1, trials=4), clock)
    assert halves is not None
    assert (halves[0].n, halves[0].min, halves[0].max) == (2, 10.0, 12.0)
    assert (halves[1].n, halves[1].min, halves[1].max) == (2, 20.0, 22.0)
    assert stats.n == 4 and stats.p10 == pytest.approx(10.6)
    one_round = (Scripted(clock, [1.0, 1.0, 5.0, 5.0]), (torch.ones(1),), {})
    ((_, _, none),) = val.measure_networks([one_round], MeasureSettings(warmup=1, trials=2), clock)
    assert none is None  # one round: no halves


def test_validation_rows_and_summaries_carry_the_halves(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    halves = [(100.0, 110.0), (200.0, 190.0), (300.0, 330.0)]

    def fake(networks, settings, progress=None):
        return [
            (summarize([a, b]), 1.0, (summarize([a]), summarize([b])))
            for a, b in halves[: len(networks)]
        ]

    monkeypatch.setattr(val, "measure_networks", fake)
    table = LatencyTable.load(tiny_lut)
    rows = val.validate(table, list(val.sampled_targets(table, 3, 1)), MeasureSettings(trials=4))
    assert [(r["half_a_us"], r["half_b_us"]) for r in rows] == halves  # p10 of one sample each
    s = val.summary(rows)
    assert s["split_half_tau"] == 1.0
    assert s["split_half_diff_pct"] == pytest.approx(200.0 * 10 / 210)  # the middle one
    check = selfcheck.summarize_rows(rows, "random", 1)
    assert check["split_half_tau"] == 1.0
    assert check["tau_ceiling"] == 1.0
    assert (
        "even vs odd rounds): τ 1.00, 9.5 % apart, so a perfect prediction would reach about τ 1.00"
        in describe(check)
    )
    older = [{k: v for k, v in r.items() if not k.startswith("half_")} for r in rows]
    assert "split_half_tau" not in val.summary(older)  # rows of older files: no halves
    assert selfcheck.summarize_rows(older, "random", 1)["split_half_tau"] is None
    assert "even vs odd" not in describe(selfcheck.summarize_rows(older, "random", 1))
