"""Edge cases of the ranking metrics (latprof.rank_metrics) that mutation testing found untested.

The basic cases (permutations, ties in the first sequence, scipy agreement) are in
test_predictors.py; expected values here are worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from latprof import rank_metrics as metrics


def test_unsigned_integer_inputs_are_compared_as_numbers() -> None:
    # uint8 differences wrap (1 - 2 = 255), so unconverted inputs would see every pair of
    # [1, 2, 3] as discordant with itself: τ would be -1 instead of 1.
    u = np.array([1, 2, 3], dtype=np.uint8)
    assert metrics.kendall_tau(u, u) == 1.0
    assert metrics.kendall_tau(u, [1.0, 2.0, 3.0]) == 1.0
    assert metrics.kendall_tau([1.0, 2.0, 3.0], u) == 1.0
    # Σx² = 16² + 16² = 512 (0 in uint8); Σxy = 16·32 + 16·32 = 1024 -> a = 1024 / 512 = 2
    v = np.array([16, 16], dtype=np.uint8)
    assert metrics.fit_scale(v, [32.0, 32.0]) == 2.0


def test_fit_scale_below_one() -> None:
    # Σx² = 0.25, Σxy = 0.5 · 3 = 1.5 -> a = 1.5 / 0.25 = 6 (a small Σx² is not "no fit")
    assert metrics.fit_scale([0.5], [3.0]) == 6.0


def test_kendall_with_ties_in_the_second_sequence() -> None:
    a, b = [1, 3, 2, 4], [1, 2, 2, 3]
    # pairs (i<j): (0,1) c, (0,2) c, (0,3) c, (1,2) tied in b, (1,3) c, (2,3) c
    # concordant 5, discordant 0, ties in a 0, ties in b 1 -> 5 / sqrt(6 · 5)
    assert metrics.kendall_tau(a, b) == pytest.approx(5 / math.sqrt(30))


def test_two_points_are_enough_for_a_rank_correlation() -> None:
    # n = 2: one pair, concordant -> τ = 1; ranks centred at 1.5: (-0.5, 0.5) each,
    # dot 0.5, norms² 0.5 and 0.5 -> ρ = 0.5 / sqrt(0.25) = 1 (den 0.5, below 1)
    assert metrics.kendall_tau([1, 2], [10, 20]) == 1.0
    assert metrics.spearman([1, 2], [10, 20]) == 1.0
    assert metrics.spearman([1, 2], [20, 10]) == -1.0
    assert math.isnan(metrics.spearman([1], [1]))


def test_mape_of_one_point_and_of_none() -> None:
    # one point: a = 2·3 / 2² = 1.5, |1.5·2 - 3| / 3 = 0
    assert metrics.mape_after_fit([2.0], [3.0]) == 0.0
    assert math.isnan(metrics.mape_after_fit([], []))
    with pytest.raises(ValueError, match=r"^measured values must be positive$"):
        metrics.mape_after_fit([1.0], [-1.0])


def test_top_overlap_of_one_point_and_of_none() -> None:
    # n = 1: k = ceil(0.1) = 1, both fastest sets are {0} -> 1 / 1
    assert metrics.top_overlap([5.0], [7.0]) == 1.0
    assert math.isnan(metrics.top_overlap([], []))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_top_overlap_fraction_outside_zero_one(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        metrics.top_overlap([1, 2], [1, 2], fraction=fraction)


def test_top_overlap_breaks_ties_by_position() -> None:
    # n = 40, k = ceil(0.1 · 40) = 4. `tied` is 20 ones then 20 zeros: its fastest 4 by
    # position are indices 20, 21, 22, 23. `distinct` ranks those same indices fastest:
    # distinct[i] = (i - 20) mod 40 -> 20: 0, 21: 1, 22: 2, 23: 3. Overlap 4 / 4.
    # (numpy's default quicksort puts 24..27 first here: overlap 0.)
    tied = [1.0] * 20 + [0.0] * 20
    distinct = [float((i - 20) % 40) for i in range(40)]
    assert metrics.top_overlap(tied, distinct) == 1.0
    assert metrics.top_overlap(distinct, tied) == 1.0
