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
ROUNDS = 3
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
print(statistics.median(t))
"""


def plain(model: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PLAIN, model, str(PASSES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def latprof(model: str) -> dict:
    cmd = [sys.executable, "-m", "latprof", "profile", model, "--threads", "1", "--trials",
           str(PASSES), "--format", "json"]  # fmt: skip
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return data


def main() -> None:
    print("| model | plain median µs | latprof e2e median µs | latprof/plain | steady/system "
          "(allocator check) | faults/pass system / steady |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for model in MODELS:
        plains, ours, ratios, faults = [], [], [], []
        for r in range(ROUNDS):
            first, second = (plain, latprof) if r % 2 == 0 else (latprof, plain)
            results = {f.__name__: f(model) for f in (first, second)}
            plains.append(results["plain"])
            d = results["latprof"]
            ours.append(d["summary"]["e2e_us"]["median"])
            c = d["allocator_check"]
            ratios.append(c["other"]["median_us"] / c["main"]["median_us"])
            faults.append((c["main"]["faults_per_pass"], c["other"]["faults_per_pass"]))
        p, o = statistics.median(plains), statistics.median(ours)
        name = Path(model).stem if model.endswith(".py") else model
        f_sys = statistics.median(f[0] for f in faults)
        f_st = statistics.median(f[1] for f in faults)
        print(
            f"| {name} | {p:,.0f} | {o:,.0f} | {o / p:.3f} "
            f"(rounds {', '.join(f'{b / a:.3f}' for a, b in zip(plains, ours, strict=True))}) | "
            f"{statistics.median(ratios):.3f} | {f_sys:.0f} / {f_st:.0f} |"
        )


if __name__ == "__main__":
    main()
