"""Clocks: what a hook reads. CPU wall clock, CUDA events, and a fake clock for tests.

A clock hands out opaque marks with `mark()`; durations are only read after `finish()`,
which on CUDA synchronises once for the whole pass. `settle()` waits for queued work outside
any timed pass (after an untimed one), so a timed pass never starts behind a backlog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class Clock(Protocol):
    name: str

    def start_pass(self) -> None: ...

    def mark(self) -> Any: ...

    def finish(self) -> None: ...

    def settle(self) -> None: ...

    def elapsed_us(self, start: Any, end: Any) -> float: ...


class CpuClock:
    """`time.perf_counter_ns`; marks are integers in nanoseconds."""

    name = "cpu.perf_counter_ns"

    def __init__(self) -> None:
        self.mark = time.perf_counter_ns

    def start_pass(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def settle(self) -> None:
        pass

    @staticmethod
    def elapsed_us(start: int, end: int) -> float:
        return (end - start) / 1000.0


class CudaClock:
    """CUDA events on the current stream *of the measured device*; one synchronisation per
    pass. `cuda` is the torch.cuda module (tests pass a fake that records where events go).

    Per pass it also compares the GPU's span (first to last event) with the host's time to
    launch the pass: a GPU that finishes as soon as the host has launched the last kernel was
    waiting on the host (launch-bound), and its per-layer times measure the launches.
    """

    name = "cuda.event"

    def __init__(
        self, device: Any, cuda: Any = None, host_ns: Callable[[], int] = time.perf_counter_ns
    ) -> None:
        if cuda is None:
            import torch

            cuda = torch.cuda
        self._cuda = cuda
        text = str(device)  # "cuda", "cuda:N" or a torch.device
        index = int(text.split(":")[1]) if ":" in text else None
        self.index = cuda.current_device() if index is None else index
        self._host_ns = host_ns
        self._pool: list[Any] = []
        self._next = 0
        self._stream: Any = None
        self._host_start = 0
        self.passes = 0
        self.launch_bound = 0

    def start_pass(self) -> None:
        self._next = 0
        self._stream = self._cuda.current_stream(self.index)
        self._host_start = self._host_ns()

    def mark(self) -> Any:
        if self._next == len(self._pool):
            self._pool.append(self._cuda.Event(enable_timing=True))
        event = self._pool[self._next]
        self._next += 1
        event.record(self._stream)
        return event

    def finish(self) -> None:
        if not self._next:
            return
        host_us = (self._host_ns() - self._host_start) / 1000.0
        self._pool[self._next - 1].synchronize()
        self.passes += 1
        if self._next > 1:
            gpu_us = self.elapsed_us(self._pool[0], self._pool[self._next - 1])
            self.launch_bound += gpu_us <= host_us

    def settle(self) -> None:
        """Wait for the device's queued work; neither a pass nor a sample."""
        self._cuda.synchronize(self.index)

    @property
    def launch_bound_share(self) -> float | None:
        """Share of passes in which the GPU waited on the host (None before any pass)."""
        return self.launch_bound / self.passes if self.passes else None

    @staticmethod
    def elapsed_us(start: Any, end: Any) -> float:
        return float(start.elapsed_time(end)) * 1000.0


class FakeClock:
    """Deterministic clock for tests: time moves only when told to.

    Each `mark()` costs `read_cost_ns` (like a real clock read would); test modules call
    `advance(ns)` inside their forward to simulate work. `passes`, `finishes` and `settles`
    count the calls of `start_pass()`, `finish()` and `settle()` (on CUDA the last two
    synchronise).
    """

    name = "fake"

    def __init__(self, read_cost_ns: int = 0) -> None:
        self.now_ns = 0
        self.read_cost_ns = read_cost_ns
        self.passes = 0
        self.finishes = 0
        self.settles = 0

    def start_pass(self) -> None:
        self.passes += 1

    def mark(self) -> int:
        self.now_ns += self.read_cost_ns
        return self.now_ns

    def advance(self, ns: int) -> None:
        self.now_ns += ns

    def finish(self) -> None:
        self.finishes += 1

    def settle(self) -> None:
        self.settles += 1

    @staticmethod
    def elapsed_us(start: int, end: int) -> float:
        return (end - start) / 1000.0


def clock_for(device: str) -> Clock:
    """The real clock for a device string ('cpu', 'cuda', 'cuda:N')."""
    if device == "cpu":
        return CpuClock()
    return CudaClock(device)
