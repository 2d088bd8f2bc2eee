"""`latprof compare --space mbv2 --samples 30` (CPU, batch 1, 1 thread): Kendall tau etc. of
each predictor against measured latency, with the mbv2 lookup table, and the wall time."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

LATPROF = [sys.executable, "-m", "latprof"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lut = Path(tmp) / "mbv2.parquet"
        start = time.perf_counter()
        subprocess.run(
            [*LATPROF, "build-lut", "--space", "mbv2", "--threads", "1", "-o", str(lut)],
            check=True,
            capture_output=True,
        )
        print(f"mbv2 table built in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        args = ["compare", "--space", "mbv2", "--samples", "30", "--threads", "1", "--lut"]
        args += [str(lut), "--format", "markdown", "--details", str(Path(tmp) / "d.csv")]
        done = subprocess.run(
            [*LATPROF, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        print(done.stdout + done.stderr.strip())
        print(f"latprof compare wall time: {wall:.0f} s")


if __name__ == "__main__":
    main()
