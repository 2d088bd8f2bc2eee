"""Issue 11 benchmark: latprof profile's end-to-end median vs a plain Python process's.

For each model, alternating rounds: a plain process (torch, the model, N forward passes,
nothing else) and `latprof profile MODEL --threads 1 --format json` (default condition =
system). Reports the ratio latprof/plain (goal 0.97-1.03) and latprof's own steady/system
ratio from its allocator check, with page faults per pass. Run on a quiet machine.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
MODELS = ["zoo:cnn", "zoo:dscnn", str(HERE / "models" / "conv_stack.py")]
ROUNDS = 6
PASSES = 40
PLAIN = """
import sys, time, statistics, torch
torch.set_num_threads(1)
from latprof.loading import load_model
m = load_model(sys.argv[1])
mod, args = m.module.eval(), m.args
with torch.inference_mode():
    for _ in range(10):
        mod(*args)
    t = []
    for _ in range(int(sys.argv[2])):
        s = time.perf_counter_ns(); mod(*args); t.append((time.perf_counter_ns() - s) / 1e3)
print(statistics.median(t), sorted(t)[len(t) // 10])
"""


def plain(model: str) -> tuple[float, float]:
    """(median, p10) µs of a plain process's passes."""
    cmd = [sys.executable, "-c", PLAIN, model, str(PASSES)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def latprof(model: str) -> dict:
    cmd = [sys.executable, "-m", "latprof", "profile", model, "--threads", "1", "--trials",
           str(PASSES), "--format", "json"]  # fmt: skip
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return data


def main() -> None:
    print(
        f"{ROUNDS} alternating rounds (plain process, latprof profile); per round the ratio "
        "latprof/plain of the end-to-end median (and of the p10); the median over rounds"
    )
    print(
        "| model | plain median µs | latprof median µs | latprof/plain median (p10) | "
        "rounds (median) | check's fresh system process/plain | steady/system, allocator "
        "check | faults/pass system / steady |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in MODELS:
        rows = []
        for r in range(ROUNDS):
            first, second = (plain, latprof) if r % 2 == 0 else (latprof, plain)
            results = {f.__name__: f(model) for f in (first, second)}
            (pm, p10), d = results["plain"], results["latprof"]
            e2e = d["summary"]["e2e_us"]
            c = d["allocator_check"]
            rows.append(
                (pm, e2e["median"], e2e["median"] / pm, e2e["p10"] / p10,
                 c["ratio_steady_to_system"], c["system"]["median_us"] / pm,
                 c["system"]["faults_per_pass"], c["steady"]["faults_per_pass"])
            )  # fmt: skip
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        name = Path(model).stem if model.endswith(".py") else model
        per_round = ", ".join(f"{row[2]:.2f}" for row in rows)
        print(
            f"| {name} | {med[0]:,.0f} | {med[1]:,.0f} | {med[2]:.3f} ({med[3]:.3f}) | "
            f"{per_round} | {med[5]:.3f} | {med[4]:.3f} | {med[6]:.0f} / {med[7]:.0f} |"
        )


if __name__ == "__main__":
    main()
