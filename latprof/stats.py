"""Robust statistics over raw samples and the seed-000 per-category aggregation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

OUTLIER_MAD_RATIO = 14.8  # |x - median| / MAD above this is an outlier (flagged, kept)
NOISY_IQR_RATIO = 0.10  # IQR / median above this is a noisy measurement


@dataclass(frozen=True)
class Stats:
    """Summary of samples in microseconds."""

    mean: float
    median: float
    std: float
    min: float
    max: float
    iqr: float
    n: int
    outliers: int
    p10: float  # 10th percentile: the quiet-machine latency (interference only adds time)

    @property
    def noisy(self) -> bool:
        return self.n > 1 and self.median > 0 and self.iqr / self.median > NOISY_IQR_RATIO

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "noisy": self.noisy}


def outlier_mask(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    """True where |x - median| / MAD > 14.8; nothing is an outlier when MAD is 0."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad == 0:
        return np.zeros(x.shape, dtype=bool)
    return np.abs(x - med) / mad > OUTLIER_MAD_RATIO


def summarize(samples: Sequence[float] | np.ndarray) -> Stats:
    """Mean, median, std (ddof=1), min, max, IQR, n, outlier count and 10th percentile."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        nan = float("nan")
        return Stats(nan, nan, nan, nan, nan, nan, 0, 0, nan)
    p10, q1, q3 = np.percentile(x, [10, 25, 75])
    return Stats(
        mean=float(x.mean()),
        median=float(np.median(x)),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        min=float(x.min()),
        max=float(x.max()),
        iqr=float(q3 - q1),
        n=int(x.size),
        outliers=int(outlier_mask(x).sum()),
        p10=float(p10),
    )


@dataclass(frozen=True)
class CategoryRow:
    """One category: r_c (time_us), k_c (calls), m_c (macs) as seed 000 defines them."""

    category: str
    calls: float
    time_us: float
    macs: float | None
    params: int
    layers: int


def aggregate_categories(
    categories: Sequence[str],
    times_us: np.ndarray,
    calls: np.ndarray,
    macs: Sequence[float | None],
    params: Sequence[int],
) -> list[CategoryRow]:
    """Per-category means over trials of per-trial sums.

    `times_us` and `calls` are (trials x leaves); `macs` are per forward per leaf (None =
    not counted). r_c = mean_t sum_l time[t, l], k_c = mean_t sum_l calls[t, l],
    m_c = sum of the counted leaves' MACs (None when no leaf of the category is counted).
    Rows are sorted by time, slowest first.
    """
    rows = []
    cats = np.asarray(categories, dtype=object)
    for cat in dict.fromkeys(categories):
        member = cats == cat
        counted = [m for m, keep in zip(macs, member, strict=True) if keep and m is not None]
        rows.append(
            CategoryRow(
                category=str(cat),
                calls=float(calls[:, member].sum(axis=1).mean()),
                time_us=float(times_us[:, member].sum(axis=1).mean()),
                macs=float(sum(counted)) if counted else None,
                params=int(sum(p for p, keep in zip(params, member, strict=True) if keep)),
                layers=int(member.sum()),
            )
        )
    return sorted(rows, key=lambda r: r.time_us, reverse=True)
