"""Issue 11 benchmark: latprof profile's end-to-end median vs a plain Python process's.

For each model, alternating rounds: a plain process (torch, the model, N forward passes,
nothing else) and `latprof profile MODEL --threads 1 --format json` (default condition =
system). Reports the ratio latprof/plain (goal 0.97-1.03) and latprof's own steady/system
ratio from its allocator check, with page faults per pass. Run on a quiet machine.

Each process's minor page faults per pass are reported too (the plain process's over its
timed passes; latprof's own `e2e_faults_per_pass`, from five plain passes after its timed
ones): under glibc's dynamic thresholds a model whose activations sit near the mmap threshold
faults more or less depending on the process's allocation history. Where the plain processes'
faults vary, the last column compares each latprof process with the plain processes' line of
latency against faults (least squares), i.e. with a plain process of the same page-fault
count; a latprof process outside the plain processes' fault range is compared with the line
extended (marked with a "*" after the figure when any was).

`allocator_bench.py [MODEL ...]` measures other MODEL specs instead, e.g.
`torchvision:mobilenet_v2` (issue 11's own table; torchvision is not a dependency).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
MODELS = ["zoo:cnn", "zoo:dscnn", str(HERE / "models" / "conv_stack.py")]
ROUNDS = 12
PASSES = 40
PLAIN = """
import resource, sys, time, statistics, torch
torch.set_num_threads(1)
from latprof.loading import load_model
m = load_model(sys.argv[1])
mod, args = m.module.eval(), m.args
with torch.inference_mode():
    for _ in range(10):
        mod(*args)
    t = []
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(int(sys.argv[2])):
        s = time.perf_counter_ns(); mod(*args); t.append((time.perf_counter_ns() - s) / 1e3)
    f = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / len(t)
print(statistics.median(t), sorted(t)[len(t) // 10], f)
"""


def plain(model: str) -> tuple[float, float, float]:
    """(median, p10) µs of a plain process's passes and its minor page faults per pass."""
    cmd = [sys.executable, "-c", PLAIN, model, str(PASSES)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def latprof(model: str) -> dict:
    cmd = [sys.executable, "-m", "latprof", "profile", model, "--threads", "1", "--trials",
           str(PASSES), "--format", "json"]  # fmt: skip
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return data


def noise_line() -> str:
    """The machine's noise right now (bench/_noise.py), to print beside the figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _noise

    return _noise.line()


def main(models: list[str] | None = None) -> None:
    print(noise_line())
    print(
        f"{ROUNDS} alternating rounds (plain process, latprof profile); per round the ratio "
        "latprof/plain of the end-to-end median (and of the p10); the median over rounds"
    )
    print(
        "| model | plain median µs | latprof median µs | latprof/plain median (p10); ratio of "
        "the medians over rounds | "
        "rounds (median) | check's fresh system process/plain | steady/system, allocator "
        "check | faults/pass system / steady | faults/pass plain / latprof (median; per round) | "
        "latprof/plain at equal faults |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in models or MODELS:
        rows = []
        for r in range(ROUNDS):
            first, second = (plain, latprof) if r % 2 == 0 else (latprof, plain)
            results = {f.__name__: f(model) for f in (first, second)}
            (pm, p10, pf), d = results["plain"], results["latprof"]
            e2e = d["summary"]["e2e_us"]
            c = d["allocator_check"]
            rows.append(
                (pm, e2e["median"], e2e["median"] / pm, e2e["p10"] / p10,
                 c["ratio_steady_to_system"], c["system"]["median_us"] / pm,
                 c["system"]["faults_per_pass"], c["steady"]["faults_per_pass"],
                 pf, d["e2e_faults_per_pass"])
            )  # fmt: skip
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        name = Path(model).stem if model.endswith(".py") else model
        per_round = ", ".join(f"{row[2]:.2f}" for row in rows)
        faults = "; ".join(f"{row[8]:.0f} / {row[9]:.0f}" for row in rows)
        print(
            f"| {name} | {med[0]:,.0f} | {med[1]:,.0f} | {med[2]:.3f} ({med[3]:.3f}); "
            f"{med[1] / med[0]:.3f} | "
            f"{per_round} | {med[5]:.3f} | {med[4]:.3f} | {med[6]:.0f} / {med[7]:.0f} | "
            f"{med[8]:.0f} / {med[9]:.0f} ({faults}) | {at_equal_faults(rows)} |"
        )
    print(noise_line())


def at_equal_faults(rows: list[tuple[float, ...]]) -> str:
    """Median over latprof processes of latprof / the plain processes' latency-vs-faults line
    at that process's faults; '-' when the plain processes' faults hardly vary."""
    faults = [r[8] for r in rows]
    if max(faults) - min(faults) < 100:
        return "-"
    slope, intercept = statistics.linear_regression(faults, [r[0] for r in rows])
    ratios = [r[1] / (intercept + slope * r[9]) for r in rows]
    outside = any(not min(faults) <= r[9] <= max(faults) for r in rows)
    return (
        f"{statistics.median(ratios):.3f}{'*' if outside else ''} "
        f"(line {slope * 1000:.2f} µs per 1,000 faults)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
