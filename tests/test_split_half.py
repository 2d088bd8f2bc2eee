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


def calls(offset: float) -> list[float]:
    """7 trials: 4 rounds of 2, 2, 2, 1 timed passes, each after one untimed pass (99 µs);
    round r's pass j takes offset + 10 (r + 1) + j µs, after one warm-up pass."""
    out = [99.0]
    for r, passes in enumerate((2, 2, 2, 1)):
        out += [99.0] + [offset + 10 * (r + 1) + j for j in range(passes)]
    return out


def test_halves_are_the_even_and_the_odd_rounds_as_many_from_each() -> None:
    clock = FakeClock()
    nets = [(Scripted(clock, calls(o)), (torch.ones(1),), {}) for o in (0.0, 100.0)]
    got = val.measure_networks(nets, MeasureSettings(warmup=1, trials=7), clock)
    for (stats, _, halves), o in zip(got, (0.0, 100.0), strict=True):
        assert halves is not None
        even, odd = halves
        # even rounds 0 and 2 hold 4 passes, odd rounds 1 and 3 hold 3: 3 of each
        assert (even.n, even.min, even.max) == (3, o + 10.0, o + 30.0)
        assert (odd.n, odd.min, odd.max) == (3, o + 20.0, o + 40.0)
        assert even.mean == pytest.approx(o + (10 + 11 + 30) / 3)
        assert stats.n == 7 and stats.max == o + 40.0  # the whole keeps every pass
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
        "(even vs odd rounds): τ 1.00, the halves differ by a median of 9.5 %, a prediction "
        "could reach at most about τ 1.00" in describe(check)
    )
    older = [{k: v for k, v in r.items() if not k.startswith("half_")} for r in rows]
    assert "split_half_tau" not in val.summary(older)  # rows of older files: no halves
    assert selfcheck.summarize_rows(older, "random", 1)["split_half_tau"] is None
    assert "even vs odd" not in describe(selfcheck.summarize_rows(older, "random", 1))


def test_rows_with_missing_halves_are_left_out() -> None:
    nan = float("nan")
    rows = [
        {"half_a_us": a, "half_b_us": b}
        for a, b in [(1.0, 1.1), (2.0, 2.1), (nan, 3.0), (None, 4.0), (3.0, 2.9)]
    ]
    got = val.split_half(rows)
    assert got == split_half([1.0, 2.0, 3.0], [1.1, 2.1, 2.9])


def test_validate_prints_the_line_from_ten_networks_on(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from latprof.cli import app

    def fake(networks, settings, progress=None):
        return [
            (summarize([100.0 + i] * 2), 1.0, (summarize([100.0 + i]), summarize([101.0 + i])))
            for i in range(len(networks))
        ]

    monkeypatch.setattr(val, "measure_networks", fake)
    args = ["validate", "--lut", str(tiny_lut), "--seed", "1", "--threads", "1", "-f", "csv"]
    ten = CliRunner().invoke(app, [*args, "--samples", "10"])
    assert ten.exit_code == 0, ten.output
    assert (
        "random: the measurement against itself (even vs odd rounds, 10 networks): Kendall τ "
        "1.00, the halves differ by a median of" in ten.stderr
    )
    assert "a prediction could reach at most about τ 1.00 against it" in ten.stderr
    nine = CliRunner().invoke(app, [*args, "--samples", "9"])
    assert nine.exit_code == 0 and "against itself" not in nine.stderr
