from __future__ import annotations

import math

import numpy as np

from latprof.stats import aggregate_categories, outlier_mask, summarize


def test_summarize_known_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.mean == 22.0
    assert s.median == 3.0
    assert s.min == 1.0 and s.max == 100.0
    assert s.iqr == 2.0  # numpy linear percentiles: q1 = 2, q3 = 4
    assert s.n == 5
    assert math.isclose(s.std, float(np.std([1, 2, 3, 4, 100], ddof=1)))
    # MAD = median(|x-3|) = median(2,1,0,1,97) = 1; 97/1 > 14.8 -> one outlier
    assert s.outliers == 1


def test_outliers_flagged_not_dropped() -> None:
    x = [10.0, 10.5, 9.5, 10.0, 60.0]
    assert outlier_mask(x).tolist() == [False, False, False, False, True]
    assert summarize(x).n == 5


def test_no_outliers_when_mad_is_zero() -> None:
    assert not outlier_mask([5.0, 5.0, 5.0, 9.0]).any()


def test_noisy_flag() -> None:
    assert summarize([100, 100, 100, 100]).noisy is False
    assert summarize([80, 100, 120, 140]).noisy is True  # IQR 30 / median 110


def test_single_sample() -> None:
    s = summarize([7.0])
    assert (s.mean, s.median, s.std, s.iqr, s.n) == (7.0, 7.0, 0.0, 0.0, 1)


def test_category_aggregation_matches_seed_formulas() -> None:
    # 2 trials x 4 leaves; categories A, B, A, C
    times = np.array([[10.0, 1.0, 30.0, 5.0], [20.0, 3.0, 50.0, 5.0]])
    calls = np.array([[1, 2, 1, 1], [1, 2, 1, 1]])
    rows = aggregate_categories(
        ["A", "B", "A", "C"], times, calls, [100, 7, 200, None], [3, 0, 4, 1]
    )
    by = {r.category: r for r in rows}
    # r_A = mean(10+30, 20+50) = 55; k_A = mean(2, 2) = 2; m_A = 300
    assert by["A"].time_us == 55.0 and by["A"].calls == 2.0 and by["A"].macs == 300
    assert by["B"].time_us == 2.0 and by["B"].calls == 2.0 and by["B"].macs == 7
    assert by["C"].macs is None  # not counted, never a silent 0
    assert by["A"].params == 7 and by["A"].layers == 2
    assert [r.category for r in rows] == ["A", "C", "B"]  # slowest first
