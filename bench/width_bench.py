"""Mid widths between a table's measured ones: linear interpolation vs aligned-aware.

MBInvRes blocks of mbv2 and tfnas shapes (CPU, batch 1, 1 thread, the steady allocator, as a
table measures) timed alone at every mid width of a range, all widths of a shape in a
shuffled order per round, ROUNDS rounds of 2 passes; a width's time is the p10 of its
passes. Then the widths a step-8 table would not measure are predicted from the widths it
would (every 8th from the low end), by latprof's own `interpolate_linear` and by
`interpolate_aligned` with the table's `width_align` for this CPU, and each prediction is
compared with the width's own time: signed median, median and max |error| per shape.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

ROUNDS = 25
STEP = 8
SHAPES = [  # c_in, c_out, kernel, stride, h, mid low, mid high, activation, SE width
    (16, 24, 3, 2, 112, 32, 64, "relu6", 0),
    (24, 32, 5, 2, 56, 48, 96, "relu6", 0),
    (32, 64, 3, 2, 28, 128, 192, "relu6", 0),
    (64, 96, 5, 1, 14, 128, 256, "relu6", 0),
    (96, 160, 3, 2, 14, 384, 480, "relu6", 0),
    (160, 160, 5, 1, 7, 320, 480, "relu6", 0),
    (24, 40, 5, 2, 56, 48, 96, "swish", 24),
    (40, 80, 3, 2, 28, 160, 320, "swish", 80),
    (80, 112, 5, 1, 14, 160, 320, "swish", 80),
    (112, 192, 3, 2, 14, 224, 448, "swish", 224),
]


def time_widths(shape: tuple, rounds: int) -> dict[int, float]:
    """p10 µs per mid width of one shape."""
    import torch

    from latprof.blocks import MBInvRes

    ci, co, k, s, h, lo, hi, act, se = shape
    mids = list(range(lo, hi + 1))
    blocks = {
        m: MBInvRes(ci, co, k, s, mid_channels=m, act=act, se=se > 0, se_channels=se or None)
        for m in mids
    }
    x = torch.randn(1, ci, h, h)
    samples: dict[int, list[float]] = {m: [] for m in mids}
    rng = random.Random(0)
    with torch.no_grad():
        for b in blocks.values():
            b.eval()
        for _ in range(rounds):
            order = mids[:]
            rng.shuffle(order)
            for m in order:
                blocks[m](x)  # untimed: the block's weights back in cache
                for _ in range(2):
                    t0 = time.perf_counter_ns()
                    blocks[m](x)
                    samples[m].append((time.perf_counter_ns() - t0) / 1e3)
    return {m: sorted(v)[len(v) // 10] for m, v in samples.items()}


def errors(times: dict[int, float], align: int) -> tuple[list[float], list[float]]:
    """Percent errors of the widths off the step-8 grid: linear, aligned-aware."""
    from latprof.lut.table import interpolate_aligned, interpolate_linear

    lo = min(times)
    grid = {m: t for m, t in times.items() if (m - lo) % STEP == 0 or m == max(times)}
    linear, aligned = [], []
    for m, t in times.items():
        if m in grid:
            continue
        a, b = interpolate_linear(grid, m), interpolate_aligned(grid, m, align)
        linear.append(100 * ((a or 0) - t) / t)
        aligned.append(100 * ((b or 0) - t) / t)
    return linear, aligned


def line(errs: list[float]) -> str:
    return (
        f"signed {statistics.median(errs):+.1f} %, |error| median "
        f"{statistics.median(map(abs, errs)):.1f} %, max {max(map(abs, errs)):.1f} %"
    )


def noise_line() -> str:
    """The machine's noise right now (bench/_noise.py), to print beside the figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _noise

    return _noise.line()


def main(rounds: int = ROUNDS) -> None:
    import torch

    from latprof.env import capture
    from latprof.lut.table import default_width_align
    from latprof.measure import allocator

    torch.set_num_threads(1)
    allocator.steady()
    env = capture("cpu")
    align = default_width_align("cpu", "float32", env.cpu_capability) or 1
    print(__doc__.splitlines()[0])
    print(f"{env.cpu}, {env.cpu_capability}: width_align {align}; {rounds} rounds")
    print(noise_line())
    everything: dict[str, list[float]] = {"linear": [], "aligned": []}
    for shape in SHAPES:
        linear, aligned = errors(time_widths(shape, rounds), align)
        everything["linear"] += linear
        everything["aligned"] += aligned
        ci, co, k, s, h, lo, hi, act, se = shape
        name = f"k{k} s{s} {ci}>{co} {h}x{h} mid {lo}-{hi} {act}{f' se{se}' if se else ''}"
        print(f"  {name} ({len(linear)} widths): linear {line(linear)}; aligned {line(aligned)}")
    print(f"  all shapes: linear {line(everything['linear'])}")
    print(f"  all shapes: aligned {line(everything['aligned'])}")
    print(noise_line())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
