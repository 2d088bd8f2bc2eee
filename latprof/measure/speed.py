"""A fixed reference kernel timed beside a table's measurements: how fast the machine ran then.

On a shared VM the host runs every kernel faster or slower from one second to the next (on
this project's 2-core VM whole networks moved by ±20 % between processes minutes apart, and
a 128x128 matmul timed next to them moved with them; docs/benchmarks.md). A table's entries
and the networks measured against it carry the reference's p10 timed around them
(`speed_us`), so every number can be put on one speed: the table's own (`meta["speed_us"]`,
its first measured group's). CPU only: a GPU's kernels do not share the host's cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latprof.measure.clocks import Clock

REFERENCE = "matmul 128x128 float32, twice"
"""What the reference kernel is; recorded in a table's metadata as `speed_ref`."""
SIZE = 128


def reference_kernel() -> Callable[[], Any]:
    """The reference work: two 128x128 float32 matmuls on the CPU (about 0.1-0.2 ms)."""
    import torch

    x = torch.linspace(-1.0, 1.0, SIZE * SIZE).reshape(SIZE, SIZE)
    return lambda: (x @ x, x @ x)


class SpeedProbe:
    """Times the reference kernel on demand; `speed_us()` is the p10 of what it timed."""

    def __init__(self, clock: Clock, kernel: Callable[[], Any] | None = None) -> None:
        self.clock = clock
        self.kernel = kernel or reference_kernel()
        self.samples: list[float] = []

    def sample(self, times: int = 1) -> None:
        # a CPU clock needs no pass around its marks (nothing to synchronise)
        mark, kernel = self.clock.mark, self.kernel
        for _ in range(times):
            start = mark()
            kernel()
            end = mark()
            self.samples.append(self.clock.elapsed_us(start, end))

    def speed_us(self, since: int = 0) -> float | None:
        """p10 µs of the samples from index `since` on; None without a positive one."""
        import numpy as np

        got = self.samples[since:]
        if not got:
            return None
        value = float(np.percentile(got, 10))
        return value if value > 0 else None


def probe_for(device: str, clock: Clock) -> SpeedProbe | None:
    """A probe on the CPU with a host clock, None elsewhere (nothing is added to a GPU's
    measurements, and device events cannot time host work)."""
    host = not str(getattr(clock, "name", "")).startswith("cuda")
    return SpeedProbe(clock) if device == "cpu" and host else None


def factor(nominal: float | None, local: float | None) -> float:
    """What turns µs measured at speed `local` into µs at speed `nominal` (1 if unknown)."""
    if nominal and local and nominal > 0 and local > 0:
        return nominal / local
    return 1.0
