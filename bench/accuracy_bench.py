"""LUT prediction vs measured latency of the TF-NAS zoo archs (issue goal: median |error|
<= 2 %, none above 5 %, CPU, batch 1, 1 thread), seed 004 Table 4 for this machine.

1. `tfnas` table at width step 8 (2,807 entries), `latprof validate` (widths interpolated);
2. batch 8: a table of only the entries the archs use (`build-lut --archs`), validated;
3. `mbv2` table, validated on TF-NAS-MBV2-A/-B.
Each validation measures all archs round-robin, 30 trials each.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

LATPROF = [sys.executable, "-m", "latprof"]
TFNAS = [
    f"zoo:tfnas-{n}"
    for n in ("a", "b", "c", "d", "a-wose", "b-wose", "c-wose", "d-wose", "cpu-a", "cpu-b")
]


def run(*args: str) -> str:
    done = subprocess.run([*LATPROF, *args], capture_output=True, text=True, check=True)
    return done.stdout


def build(out: Path, *args: str) -> float:
    start = time.perf_counter()
    run("build-lut", *args, "--threads", "1", "-o", str(out))
    run("build-lut", *args, "--threads", "1", "-o", str(out), "--resume", "--remeasure-noisy")
    return time.perf_counter() - start


def validate(label: str, lut: Path, *args: str) -> None:
    df = pd.read_csv(io.StringIO(run("validate", "--lut", str(lut), *args, "--trials", "30")))
    err = df["error_pct"].abs()
    cols = ["arch", "measured_us", "measured_iqr_us", "predicted_us", "error_pct", "macs"]
    print(f"\n{label}")
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    verdict = "met" if err.median() <= 2 and err.max() <= 5 else "MISSED"
    print(
        f"median |error| {err.median():.1f} %, max {err.max():.1f} % "
        f"(goal: median <= 2 %, max <= 5 %: {verdict})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tfnas = folder / "tfnas.parquet"
        print(
            f"tfnas table (batch 1, width step 8) built in {build(tfnas, '--space', 'tfnas'):.0f} s"
        )
        validate("tfnas, batch 1, widths interpolated", tfnas)
        b8 = folder / "tfnas-b8.parquet"
        took = build(b8, "--space", "tfnas", "--batch-size", "8", "--archs", *TFNAS)
        print(f"\ntfnas batch 8, entries of the 10 archs only, built in {took:.0f} s")
        validate("tfnas, batch 8, exact widths", b8)
        mbv2 = folder / "mbv2.parquet"
        print(
            f"\nmbv2 table (batch 1, width step 8) built in {build(mbv2, '--space', 'mbv2'):.0f} s"
        )
        validate("mbv2, batch 1, widths interpolated", mbv2)


if __name__ == "__main__":
    main()
