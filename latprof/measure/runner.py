"""Warm-up and interleaved trials: raw per-leaf samples plus end-to-end samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from latprof.measure.clocks import Clock
from latprof.measure.hooks import LeafTimer

Progress = Callable[[str, int, int], None]
BIAS_LAYERS = 64


@dataclass
class RunResult:
    """Raw samples of one measurement; times in µs, one row per trial."""

    leaf_time_us: np.ndarray  # (trials, leaves): per-forward sum of bias-corrected calls
    leaf_calls: np.ndarray  # (trials, leaves)
    e2e_us: np.ndarray  # (trials,): forward pass without hooks
    hooked_us: np.ndarray  # (trials,): forward pass with hooks
    bias_us: float  # per-call hook bias subtracted from every leaf call


def time_plain(forward: Callable[[], Any], clock: Clock) -> float:
    """One forward pass without hooks, in µs."""
    clock.start_pass()
    start = clock.mark()
    forward()
    end = clock.mark()
    clock.finish()
    return clock.elapsed_us(start, end)


def time_hooked(
    forward: Callable[[], Any], timer: LeafTimer
) -> tuple[float, list[tuple[int, float]]]:
    """One forward pass with leaf hooks: (total µs, [(leaf, µs) per call])."""
    clock = timer.clock
    timer.calls.clear()
    with timer.attached():
        clock.start_pass()
        start = clock.mark()
        forward()
        end = clock.mark()
        clock.finish()
    return clock.elapsed_us(start, end), timer.durations_us()


def calibrate_bias(clock: Clock, device: str, passes: int = 20) -> float:
    """Median time a hooked `nn.Identity` call is credited with: the per-call hook bias."""
    model = nn.Sequential(*(nn.Identity() for _ in range(BIAS_LAYERS)))
    x = torch.zeros(1, device=device)
    timer = LeafTimer(list(model), clock)
    samples: list[float] = []
    for i in range(passes + 3):
        _, calls = time_hooked(lambda: model(x), timer)
        if i >= 3:
            samples.extend(us for _, us in calls)
    return float(np.median(samples))


def run_trials(
    forward: Callable[[], Any],
    leaves: list[nn.Module],
    clock: Clock,
    warmup: int,
    trials: int,
    bias_us: float = 0.0,
    progress: Progress | None = None,
) -> RunResult:
    """Warm up, then time `trials` hooked and unhooked passes, interleaved (AB BA AB ...)."""
    timer = LeafTimer(leaves, clock)
    n = len(leaves)
    total = warmup + trials
    for i in range(warmup):
        time_hooked(forward, timer)
        time_plain(forward, clock)
        if progress:
            progress("warm-up", i + 1, total)
    times = np.zeros((trials, n))
    calls = np.zeros((trials, n), dtype=np.int64)
    e2e = np.zeros(trials)
    hooked = np.zeros(trials)
    for t in range(trials):
        if t % 2:
            e2e[t] = time_plain(forward, clock)
        hooked[t], durations = time_hooked(forward, timer)
        if not t % 2:
            e2e[t] = time_plain(forward, clock)
        for index, us in durations:
            times[t, index] += max(us - bias_us, 0.0)
            calls[t, index] += 1
        if progress:
            progress("trials", warmup + t + 1, total)
    return RunResult(times, calls, e2e, hooked, bias_us)
