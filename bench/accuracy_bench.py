"""Issue 12 goal: tables that predict architectures they have never seen, on this machine.

CPU, batch 1, 1 thread, tables built by the default command (`build-lut --space S
--threads 1`: in-context entries, the correction fitted on 20 random archs of seed 4409,
the self-check on 10 of seed 7301). Each table is validated on architectures no build, fit
or check used: the space's TF-NAS zoo archs and 50 random archs of EVAL_SEED (a seed no code
path uses). Two independent builds per space (two processes, minutes apart), both reported;
errors of the corrected prediction and of the raw sum of entries, per population.
Goal: median |error| <= 2 %, max <= 5 %, Kendall tau >= 0.95, for each population.
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
EVAL_SEED = 20261130
SAMPLES = 50
ZOO = {
    "tfnas": [
        f"zoo:tfnas-{n}"
        for n in ("a", "b", "c", "d", "a-wose", "b-wose", "c-wose", "d-wose", "cpu-a", "cpu-b")
    ],
    "mbv2": ["zoo:tfnas-mbv2-a", "zoo:tfnas-mbv2-b"],
}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LATPROF, *args], capture_output=True, text=True, check=True)


def tau(a: pd.Series, b: pd.Series) -> float:
    from latprof.rank_metrics import kendall_tau

    return kendall_tau(list(a), list(b))


def verdict(df: pd.DataFrame, pred: str, err: str) -> str:
    e = df[err].abs()
    t = tau(df[pred], df["measured_us"])
    met = e.median() <= 2 and e.max() <= 5 and t >= 0.95
    return (
        f"median {e.median():.1f} %, max {e.max():.1f} %, tau {t:.3f} "
        f"({'met' if met else 'MISSED'})"
    )


def evaluate(space: str, lut: Path, label: str) -> None:
    args = ["validate", "--lut", str(lut), *ZOO[space], "--samples", str(SAMPLES), "--seed",
            str(EVAL_SEED), "--threads", "1", "--format", "csv"]  # fmt: skip
    df = pd.read_csv(io.StringIO(run(*args).stdout))
    for population, part in df.groupby("population", sort=False):
        print(
            f"  {label}, {population} ({len(part)} archs): corrected "
            f"{verdict(part, 'predicted_us', 'error_pct')}; raw sum "
            f"{verdict(part, 'sum_us', 'sum_error_pct')}; signed median error "
            f"{part['error_pct'].median():+.1f} % (raw {part['sum_error_pct'].median():+.1f} %)"
        )


def build(space: str, out: Path, *extra: str) -> None:
    start = time.perf_counter()
    done = run("build-lut", "--space", space, "--threads", "1", *extra, "-o", str(out))
    lines = done.stdout.strip().splitlines()
    print(f"  built in {time.perf_counter() - start:.0f} s: {lines[0]}")
    for line in lines[1:]:
        print(f"  {line}")


def main(spaces: tuple[str, ...] = ("mbv2", "tfnas"), builds: int = 2) -> None:
    print(__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        for space in spaces:
            for b in range(1, builds + 1):
                lut = Path(tmp) / f"{space}-{b}.parquet"
                print(f"\n{space}, build {b} (batch 1)")
                build(space, lut)
                evaluate(space, lut, f"build {b}")


if __name__ == "__main__":
    main(*((tuple(sys.argv[1].split(",")),) if len(sys.argv) > 1 else ()))
