"""Rescale a table's predictions to the speed this machine runs at now.

A table is measured minutes or months before it is used, and a shared machine's speed moves
between processes by more than a table's errors: the same 20 mbv2 archs a build fitted its
correction on (0.7 % leave-one-out) measured 5.6-8.3 % slower twenty minutes later in fresh
processes (docs/benchmarks.md). A recalibration measures K reference architectures end to
end now: the first K of the archs the build's correction was fitted on, whose times at build
time the table keeps. Every prediction is multiplied by the median of (time now / time at
build) over them: the same archs measured twice, so the factor is the machine's drift and
none of the table's own error on them. K is capped at the number of those archs. A table
without them (built before latprof kept them, or with --fit 0) falls back to the first K
archs of the fit's seed (DEFAULT_SEED without a fit) and time now / prediction, which also
carries the table's error.
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
    from latprof.lut.predict import Prediction
    from latprof.lut.table import LatencyTable
    from latprof.space.arch import Arch

DEFAULT_SEED = 4409
"""The correction's default fit seed (lut/correction.py FIT_SEED), for tables without one."""
REFERENCE_ARCHS = 10
AT_BUILD = "measured at build"
PREDICTED = "predicted"


def seed_of(meta: dict[str, Any]) -> int:
    """The seed of the table's fit archs (the references)."""
    return int((meta.get("correction") or {}).get("seed", DEFAULT_SEED))


def baseline(meta: dict[str, Any]) -> dict[str, float]:
    """Reference name -> its time when the table was built (from the correction's fit)."""
    archs = (meta.get("correction") or {}).get("archs") or []
    return {
        str(a["arch"]).replace("sample-", "reference-", 1): float(a["measured_us"])
        for a in archs
        if a.get("measured_us")
    }


def references(table: LatencyTable, k: int) -> list[Arch]:
    """The reference archs of a space table (UsageError for a layer table or k < 1)."""
    from latprof.space import arch as archmod
    from latprof.space.builtin import space_of_table

    if k < 1:
        raise UsageError(f"a recalibration needs at least 1 reference architecture, got {k}")
    if table.meta.get("source") != "space":
        raise UsageError(
            "recalibrating needs a table built from a search space (its references are random "
            "archs of the space); a layer table's models are what it predicts"
        )
    before = baseline(table.meta)
    count = k
    if before:  # the first k fit archs that have a time at build
        count = 1 + max(int(name.rsplit("-", 1)[1]) for name in before)
    ref = table.meta.get("space_file") or table.meta["space"]
    archs = archmod.sample_archs(space_of_table(table.meta), count, seed_of(table.meta))
    named = [replace(a, space=ref, name=a.name.replace("sample-", "reference-", 1)) for a in archs]
    return [a for a in named if not before or a.name in before][:k]


def check_usable(meta: dict[str, Any], preds: list[Prediction]) -> None:
    """UsageError before measuring when no reference could give a ratio."""
    before = baseline(meta)
    if not any((p.name in before) if before else not p.misses for p in preds):
        raise UsageError(
            "no reference architecture can be predicted by this table (entries missing) "
            "and it keeps no build-time times to compare with; recalibration needs one"
        )


def warn_allocator(meta: dict[str, Any]) -> None:
    """A LatprofWarning when the table was measured under another allocator setting than
    this process measures under: the factor would carry that difference too."""
    import warnings

    from latprof.errors import LatprofWarning
    from latprof.lut.table import OLDER_DEFAULTS
    from latprof.measure import allocator

    then, now = meta.get("allocator") or OLDER_DEFAULTS["allocator"], allocator.planned()
    if then != now:
        warnings.warn(
            f"the table was measured with allocator {then!r}, references are measured with "
            f"{now!r}: the factor includes that difference; rebuild the table for a factor "
            "of drift alone",
            LatprofWarning,
            stacklevel=3,
        )


def check_seed(meta: dict[str, Any], seed: int, samples: int) -> None:
    """UsageError when random archs to be scored would be the references themselves."""
    if samples and seed == seed_of(meta):
        raise UsageError(
            f"--seed {seed} draws the recalibration's reference archs; pick another seed"
        )


def from_rows(rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict:
    """The recalibration of a table (its metadata `meta`) from validation rows of its
    references (predictions unscaled): the median of time now / time at build when the
    table keeps such times, else of time now / prediction."""
    before = baseline(meta)
    if before:
        ratios = [
            r["measured_us"] / before[r["arch"]]
            for r in rows
            if r.get("measured_us") and r.get("arch") in before
        ]
    else:
        ratios = [
            r["measured_us"] / r["predicted_us"]
            for r in rows
            if r.get("measured_us") and r.get("predicted_us")
        ]
    if not ratios:
        raise UsageError("no reference architecture could be compared with the table")
    return {
        "factor": statistics.median(ratios),
        "k": len(ratios),
        "seed": seed_of(meta),
        "against": AT_BUILD if before else PREDICTED,
        "ratios": ratios,
        "threads": meta.get("threads"),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def describe(r: dict[str, Any], saved: bool = False) -> str:
    """One line: the factor and what it means."""
    f = float(r.get("factor") or 1.0)
    how = "slower" if f >= 1 else "faster"
    vs = "at build" if r.get("against") == AT_BUILD else "the table predicts"
    seed = f" (seed {r['seed']})" if r.get("seed") is not None else ""
    return (
        f"recalibrated on {r.get('k', '?')} reference architectures{seed} measured "
        f"{'at ' + str(r.get('at')) if saved else 'now'}: "
        f"predictions ×{f:.3f} (they ran {abs(f - 1) * 100:.1f} % {how} than {vs})"
    )
