from __future__ import annotations

import math

import numpy as np
import pytest

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


def test_category_aggregation_is_the_mean_of_skewed_per_trial_sums() -> None:
    # 5 trials x 3 leaves (A, B, A); A's per-trial sums 3 3 3 3 23 (mean 7, median 3),
    # B's 1 1 1 1 11 (mean 3, median 1): a median anywhere shows
    times = np.array(
        [[1.0, 1.0, 2.0], [2.0, 1.0, 1.0], [1.0, 11.0, 2.0], [2.0, 1.0, 1.0], [20.0, 1.0, 3.0]]
    )
    calls = np.array([[1, 1, 1], [1, 1, 1], [1, 3, 1], [1, 1, 1], [1, 1, 1]])
    rows = aggregate_categories(["A", "B", "A"], times, calls, [None, None, None], [0, 0, 0])
    by = {r.category: r for r in rows}
    assert by["A"].time_us == 7.0 and by["B"].time_us == 3.0
    assert by["A"].calls == 2.0 and by["B"].calls == 7 / 5  # mean calls: 1 1 3 1 1
    assert [r.category for r in rows] == ["A", "B"]


def test_summarize_skewed_four_samples_by_hand() -> None:
    s = summarize([1.0, 10.0, 1.0, 1.0])
    assert (s.mean, s.median, s.min, s.max, s.n) == (3.25, 1.0, 1.0, 10.0, 4)
    assert s.std == 4.5  # deviations -2.25 x 3 and 6.75: (3 x 5.0625 + 45.5625) / 3 = 20.25
    assert s.iqr == 2.25  # sorted 1 1 1 10: q1 = 1, q3 at position 2.25 = 1 + 0.25 x 9
    assert s.p10 == 1.0
    assert s.outliers == 0  # MAD 0: nothing is an outlier
    t = summarize([10.0, 12.0, 11.0, 13.0, 100.0])
    assert t.p10 == 10.4  # position 0.4 between 10 and 11
    assert t.outliers == 1 and t.median == 12.0  # MAD = median(2 0 1 1 88) = 1


def test_noisy_is_strictly_above_ten_percent() -> None:
    assert summarize([100.0, 100.0, 100.0, 110.0, 110.0]).noisy is False  # IQR 10 = 10%
    assert summarize([100.0, 100.0, 100.0, 111.0, 111.0]).noisy is True  # 11%
    assert summarize([0.0, 0.0, 0.0, 5.0]).noisy is False  # median 0: never noisy
    assert summarize([5.0]).noisy is False  # one sample


def test_no_samples_summarize_to_nan_not_zero() -> None:
    s = summarize([])
    values = (s.mean, s.median, s.std, s.min, s.max, s.iqr, s.p10)
    assert all(math.isnan(v) for v in values)
    assert (s.n, s.outliers, s.noisy) == (0, 0, False)
    assert outlier_mask([]).tolist() == []


def test_category_aggregation_refuses_columns_of_other_lengths() -> None:
    times = np.ones((2, 2))
    calls = np.ones((2, 2), dtype=int)
    with pytest.raises(ValueError, match="zip"):
        aggregate_categories(["A", "A"], times, calls, [1.0], [0, 0])  # one MAC count short
    with pytest.raises(ValueError, match="zip"):
        aggregate_categories(["A", "A"], times, calls, [1.0, 1.0], [0])  # one params short


def test_two_samples_have_a_spread() -> None:
    s = summarize([1.0, 3.0])
    assert s.std == math.sqrt(2.0)  # ddof = 1: (1 + 1) / 1
    assert (s.mean, s.median, s.iqr, s.p10) == (2.0, 2.0, 1.0, 1.2)


def test_outlier_mask_is_boolean_one_per_sample_and_strictly_above_14_8() -> None:
    for x in ([], [5.0], [5.0, 5.0, 5.0, 9.0], [10.0, 10.5, 9.5, 10.0, 60.0]):
        mask = outlier_mask(x)
        assert mask.dtype == bool and mask.shape == (len(x),)
    # median 100, MAD 5: 174 is exactly 74 / 5 = 14.8 MADs away, not above: no outlier
    assert not outlier_mask([100.0, 100.0, 105.0, 95.0, 174.0]).any()
    assert outlier_mask([100.0, 100.0, 105.0, 95.0, 175.0]).tolist()[-1]
