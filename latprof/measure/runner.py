"""Warm-up and interleaved trials: per-module self and total samples plus end-to-end samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from latprof.measure.clocks import Clock
from latprof.measure.hooks import TreeTimer

Progress = Callable[[str, int, int], None]
BIAS_LAYERS = 64


@dataclass
class RunResult:
    """Raw samples of one measurement; times in µs, one row per trial."""

    leaf_time_us: np.ndarray  # (trials, modules): per-forward sum of the calls' self times
    leaf_calls: np.ndarray  # (trials, modules)
    e2e_us: np.ndarray  # (trials,): forward pass without hooks
    hooked_us: np.ndarray  # (trials,): forward pass with timers
    total_us: np.ndarray  # (trials, modules): per-forward sum of the outermost calls' totals
    edges: dict[tuple[int, int], float] = field(default_factory=dict)  # (caller, callee): calls
    # per forward, mean over trials
    # (caller, callee): the callee's totals in those calls, µs per forward (mean over trials),
    # and the timed calls below them per forward
    edge_us: dict[tuple[int, int], float] = field(default_factory=dict)
    edge_below: dict[tuple[int, int], float] = field(default_factory=dict)
    child_calls: np.ndarray | None = None  # (trials, modules): timed children of the calls
    # (trials, modules): timed calls below the outermost calls (what their totals contain)
    descendants: np.ndarray | None = None


def time_plain(forward: Callable[[], Any], clock: Clock, settle: bool = False) -> float:
    """One forward pass without hooks, in µs. With `settle`, one untimed pass runs first (and
    the device is waited for): a plain pass right after a pass with timers ran 0.4-3.4 %
    slower than one after a plain pass (zoo:cnn and zoo:dscnn; docs/benchmarks.md)."""
    if settle:
        forward()
        clock.settle()
    clock.start_pass()
    start = clock.mark()
    forward()
    end = clock.mark()
    clock.finish()
    return clock.elapsed_us(start, end)


def time_tree(forward: Callable[[], Any], timer: TreeTimer) -> float:
    """One forward pass with every given module timed; total µs (calls stay in `timer`).

    The timers are attached, one untimed pass runs, and then the timed one: the first pass
    after attaching costs more per timed call (0.1-0.6 µs on zoo models; docs/benchmarks.md)."""
    clock = timer.clock
    with timer.attached():
        clock.start_pass()  # the untimed pass's marks reuse the timed pass's (CUDA) events
        forward()
        clock.settle()  # the timed pass starts on an idle device, as a plain pass does
        timer.reset()
        clock.start_pass()
        start = clock.mark()
        forward()
        end = clock.mark()
        clock.finish()
    return clock.elapsed_us(start, end)


def calibrate_bias(clock: Clock, device: str, passes: int = 20) -> float:
    """Median time a hooked `nn.Identity` call is credited with: the per-call hook bias."""
    model = nn.Sequential(*(nn.Identity() for _ in range(BIAS_LAYERS)))
    x = torch.zeros(1, device=device)
    timer = TreeTimer(list(model), clock)
    samples: list[float] = []
    for i in range(passes + 3):
        time_tree(lambda: model(x), timer)
        if i >= 3:
            samples.extend(clock.elapsed_us(start, end) for _, start, end, _, _ in timer.calls)
    return float(np.median(samples))


def calibrate_nesting(clock: Clock, device: str, passes: int = 20) -> float:
    """What one timed child costs its timed parent outside the child's own marks (µs).

    A `Sequential` of identities is timed alone and with its children timed, alternately:
    (parent - Σ children) with children timed, minus the parent alone, per child. Never
    below 0.
    """
    children = [nn.Identity() for _ in range(BIAS_LAYERS)]
    model = nn.Sequential(*children)
    x = torch.zeros(1, device=device)
    alone, nested = TreeTimer([model], clock), TreeTimer([model, *children], clock)
    alone_us: list[float] = []
    outer_us: list[float] = []
    for i in range(passes + 3):
        time_tree(lambda: model(x), alone)
        parent = alone.tree_times(0.0, 0.0)[-1][1]
        time_tree(lambda: model(x), nested)
        calls = nested.tree_times(0.0, 0.0)
        # with no bias and no nesting cost, the parent's self time is raw - Σ children's raw
        outer = calls[-1][1]
        if i >= 3:
            alone_us.append(parent)
            outer_us.append(outer)
    return max((float(np.median(outer_us)) - float(np.median(alone_us))) / BIAS_LAYERS, 0.0)


def run_trials(
    forward: Callable[[], Any],
    leaves: list[nn.Module],
    clock: Clock,
    warmup: int,
    trials: int,
    bias_us: float = 0.0,
    progress: Progress | None = None,
    nest_us: float = 0.0,
) -> RunResult:
    """Warm up, then time `trials` passes with and without timers, interleaved (AB BA AB ...);
    in the trials, a plain pass that follows one with timers follows an untimed plain pass
    too. The warm-up keeps one of each: it shapes glibc's allocation history, and with the
    untimed plain pass there too the process drew a fault-free history far more often than a
    plain one (a conv stack; docs/benchmarks.md).

    `leaves` may be any modules, nested ones included: each call is credited its self time
    (see `TreeTimer.tree_times`) and its total."""
    timer = TreeTimer(leaves, clock)
    n = len(leaves)
    total = warmup + trials
    for i in range(warmup):
        time_tree(forward, timer)
        time_plain(forward, clock)
        if progress:
            progress("warm-up", i + 1, total)
    times = np.zeros((trials, n))
    totals = np.zeros((trials, n))
    edges: dict[tuple[int, int], list] = {}
    calls = np.zeros((trials, n), dtype=np.int64)
    kids = np.zeros((trials, n), dtype=np.int64)
    below = np.zeros((trials, n), dtype=np.int64)
    e2e = np.zeros(trials)
    hooked = np.zeros(trials)
    for t in range(trials):
        if t % 2:
            e2e[t] = time_plain(forward, clock)
        hooked[t] = time_tree(forward, timer)
        # read before the next pass: a CUDA clock reuses its events
        for index, own, whole, outermost, children, deeper in timer.tree_times(
            bias_us, nest_us, edges
        ):
            times[t, index] += own
            kids[t, index] += children
            if outermost:  # a recursive call's total is inside its outer call's
                totals[t, index] += whole
                below[t, index] += deeper
            calls[t, index] += 1
        if not t % 2:
            e2e[t] = time_plain(forward, clock, settle=True)
        if progress:
            progress("trials", warmup + t + 1, total)
    per_pass = {pair: edge[0] / trials for pair, edge in edges.items()}
    edge_us = {pair: edge[1] / trials for pair, edge in edges.items()}
    edge_below = {pair: edge[2] / trials for pair, edge in edges.items()}
    return RunResult(
        times,
        calls,
        e2e,
        hooked,
        totals,
        per_pass,
        edge_us=edge_us,
        edge_below=edge_below,
        child_calls=kids,
        descendants=below,
    )


def with_nest(result: RunResult, subtracted_us: float, nest_us: float) -> RunResult:
    """`result` as if `nest_us` instead of `subtracted_us` had been subtracted per child call:
    exact, since a self time subtracts nest once per timed child and a total once per timed
    call below it."""
    if result.child_calls is None or result.descendants is None:
        return result
    delta = nest_us - subtracted_us
    return replace(
        result,
        leaf_time_us=result.leaf_time_us - result.child_calls * delta,
        total_us=result.total_us - result.descendants * delta,
        edge_us={
            pair: us - result.edge_below.get(pair, 0.0) * delta
            for pair, us in result.edge_us.items()
        },
    )


def nest_in_model(result: RunResult, bias_us: float, nest_us: float) -> float | None:
    """What one timed child cost its timed parent outside the child's marks in these passes.

    The median over trials of (timed pass - plain pass), less the bias of every timed call
    and the calibrated `nest_us` of those without a timed parent, per call with a timed
    parent. None without nesting or with fewer than 2 trials."""
    diff = result.hooked_us - result.e2e_us
    if result.child_calls is None or len(diff) < 2:
        return None
    calls = float(result.leaf_calls.sum(axis=1).mean())
    nested = float(result.child_calls.sum(axis=1).mean())
    if nested <= 0:
        return None
    added = float(np.median(diff))  # a slow sample in one pass is not the timers' cost
    return (added - calls * bias_us - (calls - nested) * nest_us) / nested


def nest_to_subtract(identity_us: float, in_model_us: float | None, device: str) -> float:
    """On the CPU the nest these passes measured, never below the one calibrated on
    nn.Identity (between real layers a timer costs more, not less: lower is noise);
    nn.Identity's when the passes could not measure it, and on a GPU, where timed minus
    plain passes is device time, not the timers' host cost."""
    if device != "cpu" or in_model_us is None:
        return identity_us
    return max(identity_us, in_model_us)
