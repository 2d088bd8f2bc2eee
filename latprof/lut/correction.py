"""A correction of a table's sums, fitted at build time on architectures measured end to end.

latency ≈ a · Σ entries + b · blocks + c. The sum of entries misses what happens between
blocks and how a whole network's working set differs from the contexts its entries were timed
in; the fit learns it from FIT_ARCHS random archs (FIT_SEED) of the space. It is linear in the
sum and in the number of blocks, so expected latency stays differentiable (a · E[Σ] +
b · E[blocks] + c). Leave-one-out errors are stored with it; the self-check (another seed)
scores it on archs it never saw.

Three nested models are fitted (MODELS): a·Σ, a·Σ + c and a·Σ + b·blocks + c. The sum and
the block count rise together, so on 20 archs the full model can trade a large per-block term
against a large intercept (1.32·Σ − 192 µs·blocks + 634 µs) that gains a few tenths of a
point of leave-one-out error and loses it, and some ranking, on archs measured in another
process (docs/benchmarks.md). A richer model is kept only when its leave-one-out median
|error| is at least PARSIMONY_PCT points lower than the simpler one's and its max no higher;
the unused coefficients are 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latprof.errors import ModelRunError
from latprof.lut import fresh
from latprof.lut.table import LatencyTable

FIT_SEED = 4409
FIT_ARCHS = 20
FEATURES = ("sum_us", "blocks", "one")
MODELS = {"ratio": (0,), "ratio+intercept": (0, 2), "full": (0, 1, 2)}
"""Model name -> the FEATURES it uses, simplest first."""
PARSIMONY_PCT = 1.0


def design(sums: Sequence[float], blocks: Sequence[float]) -> np.ndarray:
    return np.column_stack([np.asarray(sums, float), np.asarray(blocks, float), np.ones(len(sums))])


def fit(sums: Sequence[float], blocks: Sequence[float], measured: Sequence[float]) -> dict:
    """Least squares on relative errors (each arch weighs by 1 / measured) for each of MODELS,
    the simplest kept unless a richer one earns its terms (see the module's docstring); with
    the leave-one-out errors of every model and of the raw sum, in percent."""
    x, y = design(sums, blocks), np.asarray(measured, float)
    w = 1.0 / y
    fits = {name: _fit_model(x, y, w, cols) for name, cols in MODELS.items()}
    chosen = choose(fits)
    raw = 100.0 * (np.asarray(sums, float) - y) / y
    return {
        "features": list(FEATURES),
        "model": chosen,
        "coef": fits[chosen]["coef"],
        "k": len(y),
        "loo_median_abs_error_pct": fits[chosen]["loo_median"],
        "loo_max_abs_error_pct": fits[chosen]["loo_max"],
        "raw_median_abs_error_pct": float(np.median(np.abs(raw))),
        "raw_max_abs_error_pct": float(np.max(np.abs(raw))),
        "models": fits,
    }


def choose(fits: dict[str, dict[str, Any]]) -> str:
    """The simplest of MODELS unless a richer one's leave-one-out median is PARSIMONY_PCT
    points lower and its max no higher (each step against the model chosen so far)."""
    chosen = next(iter(MODELS))
    for name in list(MODELS)[1:]:
        better = fits[name]["loo_median"] <= fits[chosen]["loo_median"] - PARSIMONY_PCT
        if better and fits[name]["loo_max"] <= fits[chosen]["loo_max"]:
            chosen = name
    return chosen


def _fit_model(x: np.ndarray, y: np.ndarray, w: np.ndarray, cols: tuple[int, ...]) -> dict:
    """One model, on the `cols` of the design `x`: its coefficients (all of FEATURES, 0 where
    unused) and leave-one-out errors."""
    x = x[:, list(cols)]
    coef = np.zeros(len(FEATURES))
    coef[list(cols)] = _solve(x, y, w)
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c = _solve(x[keep], y[keep], w[keep])
        loo.append(abs(100.0 * (float(x[i] @ c) - y[i]) / y[i]))
    return {
        "coef": [float(v) for v in coef],
        "loo_median": float(np.median(loo)),
        "loo_max": float(np.max(loo)),
    }


def _solve(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    return coef


def fit_table(
    table: LatencyTable,
    k: int = FIT_ARCHS,
    seed: int = FIT_SEED,
    progress: Callable[[int, int], None] | None = None,
    path: Path | None = None,
) -> dict[str, Any]:
    """Measure k random archs of the table's space end to end, fit, store the correction in
    `table.meta["correction"]` (with the seed and each arch's measured time, the baseline
    of a later recalibration) and return it. With `path` (the table saved
    there, without a correction) the archs are measured in a fresh process."""
    table.meta.pop("correction", None)  # the fit is of the raw sums
    table.meta.pop("recalibration", None)  # measured against the correction it replaces
    if path is not None:
        table.save(path)
    rows = fresh.rows(table, k, seed, path=path, progress=progress)
    ok = [r for r in rows if r["sum_us"] is not None and r["measured_us"]]
    if not ok:
        raise ModelRunError(
            f"none of the {k} random architectures of the correction fit (seed {seed}) could be "
            "both predicted and measured; the table is saved without a correction (--fit 0 "
            "builds without one)"
        )
    correction = fit(
        [r["sum_us"] for r in ok], [r["blocks"] for r in ok], [r["measured_us"] for r in ok]
    )
    correction["seed"] = seed
    correction["archs"] = [
        {"arch": r["arch"], "measured_us": r["measured_us"]} for r in rows if r["measured_us"]
    ]
    table.meta["correction"] = correction
    return correction


def describe(c: dict[str, Any]) -> str:
    a, b, cc = c["coef"]
    law = f"{a:.4f}·Σ" + (f" + {b:.2f} µs·blocks" if b else "") + (f" + {cc:.1f} µs" if cc else "")
    model = f", model {c['model']}" if c.get("model") else ""
    return (
        f"correction fitted on {c['k']} random architectures (seed {c.get('seed')}{model}): "
        f"latency = {law}; leave-one-out median |error| "
        f"{c['loo_median_abs_error_pct']:.1f} %, max {c['loo_max_abs_error_pct']:.1f} % "
        f"(raw sum: {c['raw_median_abs_error_pct']:.1f} %, {c['raw_max_abs_error_pct']:.1f} %)"
    )
