"""Every table knows how far to trust it: a self-check at the end of a build measures K random
architectures of the space end to end (held out from any fit) and stores the errors of the
table's predictions in its metadata (`self_check`).

The self-check samples with SELF_CHECK_SEED; the correction fit (lut/correction.py) with
FIT_SEED. Neither seed is used to evaluate accuracy: bench/accuracy_bench.py uses its own.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latprof.lut import fresh
from latprof.lut.table import LatencyTable
from latprof.lut.validate import split_half
from latprof.rank_metrics import kendall_tau

SELF_CHECK_SEED = 7301
SELF_CHECK_ARCHS = 10


def run(
    table: LatencyTable,
    k: int = SELF_CHECK_ARCHS,
    seed: int = SELF_CHECK_SEED,
    progress: Callable[[int, int], None] | None = None,
    path: Path | None = None,
) -> dict[str, Any]:
    """Measure K random archs of the table's space (or, for a layer table, its models) end
    to end; their errors become `table.meta["self_check"]`, which is also returned. With
    `path` (the table saved there) they are measured in a fresh process (lut/fresh.py)."""
    models = list(table.meta.get("models") or []) if table.meta.get("source") == "models" else []
    population = "models" if models else "random"
    rows = fresh.rows(table, k, seed, models, path, progress)
    corrected = bool(table.meta.get("correction"))
    check = summarize_rows(rows, population, seed if population == "random" else None, corrected)
    table.meta["self_check"] = check
    return check


def _number(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def summarize_rows(
    rows: list[dict[str, Any]], population: str, seed: int | None, corrected: bool = False
) -> dict:
    """median/max |error| %, Kendall τ, the measurement's split-half τ and median
    difference (None without halves) and the archs of validation rows. With `corrected`
    (the predictions are a correction of the sum) the raw sum's median/max |error| too, so
    the correction's gain shows (None otherwise)."""
    ok = [r for r in rows if r["error_pct"] is not None]
    errors = sorted(abs(r["error_pct"]) for r in ok)
    n = len(errors)
    raw = [abs(r["sum_error_pct"]) for r in ok if corrected and r.get("sum_error_pct") is not None]
    tau = kendall_tau([r["predicted_us"] for r in ok], [r["measured_us"] for r in ok])
    own = split_half(ok)
    return {
        "population": population,
        "k": n,
        "missed": len(rows) - n,
        "seed": seed,
        "median_abs_error_pct": statistics.median(errors) if n else None,
        "max_abs_error_pct": errors[-1] if n else None,
        "raw_median_abs_error_pct": statistics.median(raw) if raw else None,
        "raw_max_abs_error_pct": max(raw) if raw else None,
        "kendall_tau": None if tau != tau else tau,
        "split_half_tau": _number(own.get("split_half_tau")),
        "split_half_diff_pct": _number(own.get("split_half_diff_pct")),
        "tau_ceiling": _number(own.get("tau_ceiling")),
        "archs": [
            {
                "arch": r["arch"],
                "predicted_us": r["predicted_us"],
                "sum_us": r.get("sum_us"),
                "measured_us": r["measured_us"],
            }
            for r in rows
        ],
    }
