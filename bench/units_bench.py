"""Layer tables with units, measured alone and in their models: the share of a model's time
that `predict` finds outside every entry (issue 14's goal: <= 5 % on transformers).

Each round builds, for every model, one table per context (`--context alone`, then
`--context models`), each in its own process, and runs `predict` on it PREDICTS times, each
in a fresh process (its end-to-end measurement is the reference). Prints the median (min to
max) of the share outside per model and context, and how many runs are within ±5 %.

    .venv/bin/python bench/units_bench.py [ROUNDS] [PREDICTS]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _noise

LATPROF = [sys.executable, "-m", "latprof"]
MODELS = {
    "zoo:vit": ["EncoderBlock"],
    "zoo:swin": ["SwinTransformerBlock", "PatchMerging"],
    "zoo:dscnn": ["MBInvRes"],
    "zoo:densenet": ["DenseBlock", "Transition"],
}
CONTEXTS = ("alone", "models")
OUTSIDE = re.compile(r"so (the entries sum to )?(-?[\d,.]+) µs \((-?[\d.]+) %\)")


def latprof(*args: str) -> str:
    """stdout and stderr (on a pipe the rows go to stdout, the summary line to stderr)."""
    done = subprocess.run([*LATPROF, *args], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def outside_share(table: Path, model: str) -> float:
    text = latprof("predict", model, "--lut", str(table), "--threads", "1")
    found = OUTSIDE.search(text)
    if found is None:
        raise RuntimeError(f"no share outside in: {text[-300:]}")
    share = float(found.group(3))
    return -share if found.group(1) else share  # "the entries sum to X more": X outside < 0


def main(rounds: int = 3, predicts: int = 3) -> None:
    print(_noise.line())
    start = time.monotonic()
    shares: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for model, units in MODELS.items():
                for context in CONTEXTS:
                    table = Path(tmp) / f"{model[4:]}-{context}-{r}.parquet"
                    latprof(
                        "build-lut", "--models", model, "--unit", *units, "--context", context,
                        "--threads", "1", "--self-check", "0", "-o", str(table),
                    )  # fmt: skip
                for p in range(predicts):
                    # alternate which context's predict runs first
                    order = CONTEXTS if p % 2 == 0 else CONTEXTS[::-1]
                    for context in order:
                        table = Path(tmp) / f"{model[4:]}-{context}-{r}.parquet"
                        shares.setdefault((model, context), []).append(outside_share(table, model))
    print(f"{rounds} builds x {predicts} predicts per model and context; share outside every entry")
    print(f"   {'model':<14}{'context':<9}{'median':>8}   {'min to max':<18}within ±5 %")
    for (model, context), values in shares.items():
        within = sum(abs(v) <= 5.0 for v in values)
        print(
            f"   {model:<14}{context:<9}{statistics.median(values):>7.1f} %  "
            f"{min(values):>6.1f} to {max(values):<6.1f}   {within} of {len(values)}"
        )
    print(_noise.line())
    print(f"\nunits_bench: {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
