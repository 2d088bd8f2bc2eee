"""build-lut throughput: entries per minute, per-entry overhead, --dry-run estimate accuracy.

Runs the real CLI (batch 1, 1 thread, default warm-up 10 / trials 20) on `uboost` (all 42
entries) and on a 1/20 shard of `mbv2` (the full table has 1,178 entries at width step 8),
with entries measured in context networks (the default) and alone. The per-entry overhead
goal (< 20 ms beyond the timed passes) is checked on the alone builds, whose passes are
one entry each.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

LATPROF = [sys.executable, "-m", "latprof"]
GOAL_OVERHEAD_MS = 20.0


def run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*LATPROF, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


_STARTUP: list[float] = []


def startup_s() -> float:
    """Interpreter + torch/thop/pandas/pyarrow import time: what every CLI run pays first."""
    if not _STARTUP:
        code = "import torch, thop, pandas, pyarrow.parquet, latprof.lut.build, latprof.cli"
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        _STARTUP.append(sorted(runs)[1])
        print(f"process start-up (imports): {_STARTUP[0]:.2f} s")
    return _STARTUP[0]


def one(space: str, extra: list[str], folder: Path) -> None:
    common = ["build-lut", "--space", space, "--threads", "1", "--batch-size", "1", *extra]
    out = folder / f"{space}-{extra[-1]}.parquet"
    dry_s, dry_out = run([*common, "--dry-run", "-o", str(out)])
    estimate = float(re.search(r"estimated build time: ([\d.]+) s", dry_out).group(1))
    wall, _ = run([*common, "-o", str(out)])
    table = pq.read_table(out).to_pandas()
    entries = len(table)
    print(
        f"{space} {' '.join(extra)}: {entries} entries in {wall:.1f} s wall "
        f"-> {entries / wall * 60:.0f} entries/min"
    )
    real = wall - startup_s()
    if "alone" in extra:
        timed_s = float((table["time_us_median"].fillna(0) * 30).sum()) / 1e6  # 10 + 20
        overhead_ms = (real - timed_s) / entries * 1000
        verdict = "met" if overhead_ms < GOAL_OVERHEAD_MS else "MISSED"
        print(
            f"  timed passes (30 per entry x median): {timed_s:.1f} s; overhead beyond them "
            f"and the process start-up: {overhead_ms:.1f} ms/entry (goal < "
            f"{GOAL_OVERHEAD_MS:.0f} ms: {verdict})"
        )
    print(
        f"  --dry-run estimate {estimate:.1f} s (the dry run took {dry_s:.1f} s) vs real "
        f"measuring time {real:.1f} s (wall minus start-up): {(estimate - real) / real:+.0%}"
    )
    print(
        f"  noisy entries: {int(table['noisy'].sum())}, failed: "
        f"{int((table['status'] != 'ok').sum())}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for context in ("networks", "alone"):
            one("uboost", ["--context", context], folder)
            one("mbv2", ["--shard", "0/20", "--context", context], folder)


if __name__ == "__main__":
    main()
