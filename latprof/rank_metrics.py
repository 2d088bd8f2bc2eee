"""How well a predictor ranks and scales: Kendall τ-b, Spearman ρ, MAPE after a fit, top-k overlap.

Pure numpy. Degenerate inputs (fewer than 2 points, or a constant sequence) give NaN, as
scipy.stats does; mismatched lengths raise ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "fit_scale",
    "kendall_tau",
    "mape_after_fit",
    "ranks",
    "spearman",
    "split_half",
    "tau_ceiling",
    "top_overlap",
]

Values = Sequence[float] | np.ndarray


def _pair(a: Values, b: Values) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"sequences differ in length: {x.size} and {y.size}")
    return x, y


def fit_scale(x: Values, y: Values) -> float:
    """Least-squares scale through the origin: a = Σxy / Σx² (NaN when Σx² = 0)."""
    xs, ys = _pair(x, y)
    den = float(np.dot(xs, xs))
    return float(np.dot(xs, ys)) / den if den > 0 else math.nan


def ranks(values: Values) -> np.ndarray:
    """1-based ranks, ties given the average of the ranks they span."""
    x = np.asarray(values, dtype=float).ravel()
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # start index of each run of equal values
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    result = np.empty(x.size)
    result[order] = np.repeat(avg, ends - starts)
    return result


def kendall_tau(a: Values, b: Values) -> float:
    """Kendall τ-b: (concordant − discordant) / √((n0 − ties_a)(n0 − ties_b)), O(n²)."""
    x, y = _pair(a, b)
    if x.size < 2:
        return math.nan
    i, j = np.triu_indices(x.size, k=1)
    sx = np.sign(x[i] - x[j])
    sy = np.sign(y[i] - y[j])
    den = math.sqrt(float(np.abs(sx).sum()) * float(np.abs(sy).sum()))
    return float((sx * sy).sum()) / den if den > 0 else math.nan


def spearman(a: Values, b: Values) -> float:
    """Spearman ρ: Pearson correlation of the average ranks."""
    x, y = _pair(a, b)
    if x.size < 2:
        return math.nan
    rx = ranks(x) - (x.size + 1) / 2.0
    ry = ranks(y) - (y.size + 1) / 2.0
    den = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    return float(np.dot(rx, ry)) / den if den > 0 else math.nan


def mape_after_fit(pred: Values, measured: Values) -> float:
    """Mean |a·p − m| / m with a = `fit_scale`(pred, measured); a fraction (0.1 = 10 %).

    Measured values must be positive. NaN when the scale cannot be fitted (all p = 0).
    """
    p, m = _pair(pred, measured)
    if m.size == 0:
        return math.nan
    if np.any(m <= 0):
        raise ValueError("measured values must be positive")
    a = fit_scale(p, m)
    if math.isnan(a):
        return math.nan
    return float(np.mean(np.abs(a * p - m) / m))


def top_overlap(pred: Values, measured: Values, fraction: float = 0.1) -> float:
    """|fastest k by pred ∩ fastest k by measured| / k, with k = ⌈fraction · n⌉ (≥ 1).

    "Fastest" is smallest; ties are broken by position (stable sort).
    """
    p, m = _pair(pred, measured)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if p.size == 0:
        return math.nan
    k = math.ceil(round(fraction * p.size, 9))  # round: 0.07 * 100 is 7.000000000000001
    top_p = set(np.argsort(p, kind="stable")[:k].tolist())
    top_m = set(np.argsort(m, kind="stable")[:k].tolist())
    return len(top_p & top_m) / k


def split_half(a: Values, b: Values) -> dict[str, float]:
    """Two measurements of the same items (e.g. the even and the odd rounds' passes): Kendall
    τ between them (`split_half_tau`), the median |a - b| in percent of their mean
    (`split_half_diff_pct`) and `tau_ceiling`, the most τ a prediction could reach against
    the whole measurement (see `tau_ceiling`). Empty for fewer than 2 items."""
    x, y = _pair(a, b)
    keep = (x + y) > 0
    x, y = x[keep], y[keep]
    if x.size < 2:
        return {}
    diff = float(np.median(200.0 * np.abs(x - y) / (x + y)))
    tau = kendall_tau(x, y)
    return {"split_half_tau": tau, "split_half_diff_pct": diff, "tau_ceiling": tau_ceiling(tau)}


def tau_ceiling(split_tau: float) -> float:
    """Kendall τ between the true values and a measurement whose two halves agree with τ
    `split_tau`: each half's noise is twice the whole's in variance, values and noise are
    normal. τ → Pearson r by Greiner's relation (r = sin(πτ/2)), the whole's reliability
    by Spearman-Brown (2r / (1 + r)), the truth's correlation with the whole is its square
    root, and back to τ. 1 for halves in full agreement, 0 when they agree no better than
    chance, NaN for NaN. Whatever both halves share (e.g. one process's per-item effects,
    which a prediction made elsewhere cannot know) counts as truth here: an upper bound."""
    if split_tau != split_tau:
        return float("nan")
    r = math.sin(math.pi * split_tau / 2)
    if r <= 0:
        return 0.0
    reliability = 2 * r / (1 + r)
    return 2 / math.pi * math.asin(math.sqrt(reliability))
