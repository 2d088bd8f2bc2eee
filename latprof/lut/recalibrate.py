"""Rescale a table's predictions to the speed this machine runs at now.

A table is measured minutes or months before it is used, and a shared machine's speed moves
between processes by more than a table's errors: the same 20 mbv2 archs a build fitted its
correction on (0.7 % leave-one-out) measured 5.6-8.3 % slower twenty minutes later in fresh
processes (docs/benchmarks.md). A recalibration measures K reference architectures end to
end now: the first K of the archs the build's correction was fitted on (REFERENCE_SEED),
whose times at build time the table keeps. Every prediction is multiplied by the median of
(time now / time at build) over them: the same archs measured twice, so the factor is the
machine's drift and none of the table's own error on them. A table without those times
(built before latprof kept them, or with --fit 0) falls back to time now / prediction.
One factor scales every prediction alike: ranking is unchanged, expected latency stays
differentiable.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from latprof.errors import UsageError

if TYPE_CHECKING:
    from latprof.lut.table import LatencyTable
    from latprof.space.arch import Arch

REFERENCE_SEED = 4409
"""The correction's fit seed (lut/correction.py FIT_SEED): archs no validation scores."""
REFERENCE_ARCHS = 10


def references(table: LatencyTable, k: int) -> list[Arch]:
    """The k reference archs of a space table (UsageError for a layer table or k < 1)."""
    from latprof.space import arch as archmod
    from latprof.space.builtin import space_of_table

    if k < 1:
        raise UsageError(f"a recalibration needs at least 1 reference architecture, got {k}")
    if table.meta.get("source") != "space":
        raise UsageError(
            "recalibrating needs a table built from a search space (its references are random "
            "archs of the space); a layer table's models are what it predicts"
        )
    ref = table.meta.get("space_file") or table.meta["space"]
    archs = archmod.sample_archs(space_of_table(table.meta), k, REFERENCE_SEED)
    return [replace(a, space=ref, name=a.name.replace("sample-", "reference-", 1)) for a in archs]


def check_seed(seed: int, samples: int) -> None:
    """UsageError when random archs to be scored would be the references themselves."""
    if samples and seed == REFERENCE_SEED:
        raise UsageError(
            f"--seed {seed} draws the recalibration's reference archs; pick another seed"
        )


def baseline(meta: dict[str, Any]) -> dict[str, float]:
    """Reference name -> its time when the table was built (from the correction's fit)."""
    c = meta.get("correction") or {}
    if c.get("seed") != REFERENCE_SEED:
        return {}
    return {
        a["arch"].replace("sample-", "reference-", 1): float(a["measured_us"])
        for a in c.get("archs") or []
        if a.get("measured_us")
    }


def from_rows(rows: list[dict[str, Any]], before: dict[str, float] | None = None) -> dict:
    """The recalibration from validation rows of the references (predictions unscaled):
    the median of time now / time `before` (at build), or of time now / prediction for
    references without a time before."""
    before = before or {}
    ratios = []
    against = set()
    for r in rows:
        now, then = r.get("measured_us"), before.get(r.get("arch", ""))
        if now and then:
            ratios.append(now / then)
            against.add("measured at build")
        elif now and r.get("predicted_us"):
            ratios.append(now / r["predicted_us"])
            against.add("predicted")
    if not ratios:
        raise UsageError("no reference architecture could be predicted by this table")
    return {
        "factor": statistics.median(ratios),
        "k": len(ratios),
        "seed": REFERENCE_SEED,
        "against": " and ".join(sorted(against)),
        "ratios": ratios,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def describe(r: dict[str, Any], saved: bool = False) -> str:
    """One line: the factor and what it means."""
    f = float(r["factor"])
    how = "slower" if f >= 1 else "faster"
    vs = "at build" if r.get("against") == "measured at build" else "the table predicts"
    return (
        f"recalibrated on {r['k']} reference architectures (seed {r['seed']}) measured "
        f"{'at ' + str(r.get('at')) if saved else 'now'}: "
        f"predictions ×{f:.3f} (they ran {abs(f - 1) * 100:.1f} % {how} than {vs})"
    )
