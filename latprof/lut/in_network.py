"""Measure search-space entries in context: inside networks that run one entry per slot.

Timed alone, an entry's input and weights sit in whatever cache state the entries measured
before it left; inside a network its input is hot from the block before it and its weights
are as cold as a whole network's working set makes them. On this project's 2-core CPU, sums
of entries timed alone over-predicted the TF-NAS archs by up to 7 % (and by different amounts
for different archs); timed in context the bias per arch was within ±1.5 %
(docs/benchmarks.md).

A plan places every entry to measure in one network (one position per slot; slots with the
same entries share them); positions with nothing left to measure get a filler: an entry of
the same slot, timed for more samples when it is itself being measured, else only run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from latprof.lut.jobs import Job
from latprof.lut.measurement import (
    MeasureSettings,
    Ready,
    failed_row,
    failure_reason,
    finish_row,
    prepare,
)
from latprof.measure import allocator
from latprof.measure.clocks import Clock
from latprof.measure.device import measuring

NETWORK_WARMUP = 2
"""Passes of a whole network before its trials; every entry was first warmed up alone."""

Layout = list[str | None]


def plan(slot_keys: Sequence[Sequence[str]], todo: Sequence[str], seed: int = 0) -> list[Layout]:
    """Networks (a key or None per slot) that together hold every key of `todo` once.

    Slots with the same keys form a class whose positions share its keys; a key belongs to
    the first class that has it. Each class's keys are shuffled (seeded) and spread evenly
    over the networks, so the number of networks is the largest class's share."""
    wanted = set(todo)
    classes: dict[frozenset[str], list[int]] = {}
    for position, keys in enumerate(slot_keys):
        classes.setdefault(frozenset(keys), []).append(position)
    rng = random.Random(seed)
    owned: set[str] = set()
    shares: list[tuple[list[int], list[list[str]]]] = []
    for keyset, positions in classes.items():
        mine = sorted(k for k in keyset if k in wanted and k not in owned)
        owned.update(mine)
        rng.shuffle(mine)
        step = len(positions)
        shares.append((positions, [mine[i : i + step] for i in range(0, len(mine), step)]))
    stray = wanted - owned
    if stray:
        raise ValueError(f"{len(stray)} keys fit no slot, e.g. {sorted(stray)[0]}")
    count = max((len(parts) for _, parts in shares), default=0)
    networks: list[Layout] = [[None] * len(slot_keys) for _ in range(count)]
    for positions, parts in shares:
        for i, keys in enumerate(parts):
            net = networks[i * count // len(parts)]
            for position, key in zip(positions, keys, strict=False):
                net[position] = key
    return networks


def fill(
    group: Sequence[Layout], slot_keys: Sequence[Sequence[str]], rng: random.Random
) -> list[list[str]]:
    """Complete a group of networks: an empty position takes a key the same position holds
    elsewhere in the group (in turn), else a random key of its slot; a network never holds
    one key twice while its slot has others."""
    out = [list(net) for net in group]
    for position, keys in enumerate(slot_keys):
        present = [net[position] for net in group if net[position] is not None]
        turn = 0
        for net in out:
            if net[position] is None:
                if present:
                    net[position] = present[turn % len(present)]
                    turn += 1
                else:
                    fresh = [k for k in keys if k not in net] or list(keys)
                    net[position] = rng.choice(fresh)
    return cast(list[list[str]], out)


class _BlockFailed(Exception):
    def __init__(self, index: int, cause: Exception) -> None:
        super().__init__(str(cause))
        self.index, self.cause = index, cause


def measure_group(
    networks: Sequence[Sequence[str]],
    jobs: dict[str, Job],
    record: set[str],
    settings: MeasureSettings,
    clock: Clock,
) -> dict[str, dict[str, Any]]:
    """Rows for the `record` keys of a group of complete networks.

    Every distinct entry is built and warmed up alone; then each network runs
    NETWORK_WARMUP passes and `settings.trials` timed passes with a clock mark between
    blocks (one clock pass, so on CUDA one synchronisation, per network pass). An entry that
    fails to build, or to run in its network, gets a failed row and its position takes
    another entry of the group; an entry whose networks cannot run at all (a slot with no
    entry that runs) gets a failed row saying so."""
    with measuring(settings.device, settings.tf32, settings.cudnn_benchmark):
        allocator.steady()
        ready: dict[str, Ready] = {}
        rows: dict[str, dict[str, Any]] = {}
        for key in dict.fromkeys(k for net in networks for k in net):
            got = prepare(jobs[key], settings)
            if isinstance(got, Ready):
                ready[key] = got
            else:
                rows[key] = got
        with torch.inference_mode():
            for net in networks:
                while (chain := _runnable(net, networks, ready)) is not None:
                    try:
                        _time_network(chain, record, settings, clock)
                        break
                    except _BlockFailed as failed:
                        bad = chain[failed.index].job
                        rows[bad.key] = failed_row(
                            bad, settings, "in its network: " + failure_reason(failed.cause)
                        )
                        del ready[bad.key]
        broken = "; ".join(f"{r['key']}: {r['error']}" for r in rows.values())[:300]
        for key in sorted(record - rows.keys()):
            r = ready.get(key)
            if r is not None and r.row["samples_us"]:
                rows[key] = r.row
            else:
                why = f"not timed: a slot of its network has no entry that runs ({broken})"
                rows[key] = failed_row(jobs[key], settings, why)
        return {k: finish_row(v) for k, v in rows.items()}


def _runnable(
    net: Sequence[str], networks: Sequence[Sequence[str]], ready: dict[str, Ready]
) -> list[Ready] | None:
    """The network's prepared entries; a failed one replaced by another of its position."""
    chain: list[Ready] = []
    for position, key in enumerate(net):
        if key not in ready:
            key = next((n[position] for n in networks if n[position] in ready), None)
            if key is None:
                return None
        chain.append(ready[key])
    return chain


def _time_network(
    chain: list[Ready], record: set[str], settings: MeasureSettings, clock: Clock
) -> None:
    for _ in range(NETWORK_WARMUP):
        x = chain[0].args
        for index, r in enumerate(chain):
            x = _call(index, r, x)
    for _ in range(settings.trials):
        clock.start_pass()
        marks = [clock.mark()]
        x = chain[0].args
        for index, r in enumerate(chain):
            x = _call(index, r, x)
            marks.append(clock.mark())
        clock.finish()
        for r, start, end in zip(chain, marks, marks[1:], strict=False):
            if r.job.key in record:
                r.row["samples_us"].append(clock.elapsed_us(start, end))


def _call(index: int, r: Ready, x: tuple) -> tuple:
    try:
        return (r.module(*x),)
    except Exception as exc:  # this block cannot run here (or at all)
        raise _BlockFailed(index, exc) from exc


def _planned(
    todo: Sequence[Job], slots: Sequence[Sequence[Job]], seed: int
) -> tuple[dict[str, Job], list[list[str]], list[Layout]]:
    """Every job by key, each slot's keys, and the plan of networks for `todo`."""
    jobs = {j.key: j for slot in slots for j in slot}
    jobs.update({j.key: j for j in todo})
    slot_keys = [[j.key for j in slot] for slot in slots]
    return jobs, slot_keys, plan(slot_keys, [j.key for j in todo], seed)


def measure(
    todo: Sequence[Job],
    slots: Sequence[Sequence[Job]],
    settings: MeasureSettings,
    clock: Clock,
    networks_per_group: int = 4,
    seed: int = 0,
    on_group: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows for `todo`, measured in context networks through `slots` (the jobs each slot
    can hold, in order), a group of networks at a time; `on_group` gets each group's rows
    (to save them) as soon as they are measured."""
    jobs, slot_keys, networks = _planned(todo, slots, seed)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for start in range(0, len(networks), networks_per_group):
        group = networks[start : start + networks_per_group]
        record = {k for net in group for k in net if k is not None}
        rows = measure_group(fill(group, slot_keys, rng), jobs, record, settings, clock)
        done = [rows[k] for k in sorted(record)]
        out += done
        if on_group:
            on_group(done)
    return out


def estimate(
    todo: Sequence[Job],
    slots: Sequence[Sequence[Job]],
    settings: MeasureSettings,
    clock: Clock,
    samples: int = 3,
    seed: int = 0,
) -> tuple[int, float, float, list[str]]:
    """(networks, seconds, seconds spent sampling, "key: error" of the sampled networks'
    entries that failed) for measuring `todo` in context: a few networks of the plan, spread
    over it, are measured for real (each a group of its own); the rest are assumed to cost
    their mean. Saves are not included."""
    import time

    jobs, slot_keys, networks = _planned(todo, slots, seed)
    if not networks:
        return 0, 0.0, 0.0, []
    rng = random.Random(seed)
    k = min(samples, len(networks))
    picks = [networks[round(i * (len(networks) - 1) / max(k - 1, 1))] for i in range(k)]
    # the first network in a fresh process runs slower (allocator warm-up): run one untimed
    measure_group(fill(picks[:1], slot_keys, rng), jobs, set(), settings, clock)
    start = time.perf_counter()
    failed: dict[str, str] = {}
    for net in picks:
        record = {key for key in net if key is not None}
        rows = measure_group(fill([net], slot_keys, rng), jobs, record, settings, clock)
        failed.update((k, r["error"]) for k, r in rows.items() if r["status"] != "ok")
    took = time.perf_counter() - start
    return len(networks), took / k * len(networks), took, [f"{k}: {e}" for k, e in failed.items()]
