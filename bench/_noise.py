"""Helper of the benchmarks: how quiet the machine is right now, to print beside a figure.

A 256×256 float32 matmul on one thread, 200 times (about 0.05 s): its p10 (the machine's
speed when undisturbed) and its interquartile range as a share of the median (how much
other work on the host disturbs a short kernel). On this project's 2-core VM a quiet
machine gives an IQR of about 2-5 % of the median; 15 % and more is a noisy host, and
figures taken then are labelled so. Not a benchmark itself (no main()); run_all skips it.
"""

from __future__ import annotations

import time

QUIET_IQR_PCT = 10.0
"""Above this the probe calls the machine noisy."""


def probe(passes: int = 200) -> tuple[float, float]:
    """(p10 µs, IQR as % of the median) of a 256×256 matmul on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(256, 256)
        x @ x
        times = []
        for _ in range(passes):
            t0 = time.perf_counter_ns()
            x @ x
            times.append((time.perf_counter_ns() - t0) / 1e3)
    finally:
        torch.set_num_threads(threads)
    times.sort()
    n = len(times)
    median = times[n // 2]
    return times[n // 10], 100.0 * (times[3 * n // 4] - times[n // 4]) / median


def line(label: str = "machine") -> str:
    """'machine noise: 256x256 matmul p10 210 µs, IQR 4.2 % of median (quiet)'."""
    p10, iqr = probe()
    verdict = "quiet" if iqr <= QUIET_IQR_PCT else "NOISY"
    return f"{label} noise: 256x256 matmul p10 {p10:.0f} µs, IQR {iqr:.1f} % of median ({verdict})"
