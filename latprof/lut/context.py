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
from typing import Any

import torch

from latprof.lut.builder import BuildSettings, Job, Ready, _failed, _reason, finish_row, prepare
from latprof.measure import allocator
from latprof.measure.clocks import Clock

NETWORK_WARMUP = 2
"""Passes of a whole network before its trials; every entry was first warmed up alone."""

Network = list[str | None]


def plan(slot_keys: Sequence[Sequence[str]], todo: Sequence[str], seed: int = 0) -> list[Network]:
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
    networks: list[Network] = [[None] * len(slot_keys) for _ in range(count)]
    for positions, parts in shares:
        for i, keys in enumerate(parts):
            net = networks[i * count // len(parts)]
            for position, key in zip(positions, keys, strict=False):
                net[position] = key
    return networks


def fill(
    group: Sequence[Network], slot_keys: Sequence[Sequence[str]], rng: random.Random
) -> list[list[str]]:
    """Complete a group of networks: an empty position takes a key the same position holds
    elsewhere in the group (in turn), else a random key of its slot."""
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
                    net[position] = rng.choice(list(keys))
    return out  # type: ignore[return-value]


def measure_group(
    networks: Sequence[Sequence[str]],
    jobs: dict[str, Job],
    record: set[str],
    settings: BuildSettings,
    clock: Clock,
) -> dict[str, dict[str, Any]]:
    """Rows for the `record` keys of a group of complete networks.

    Every distinct entry is built and warmed up alone; then each network runs
    NETWORK_WARMUP passes and `settings.trials` timed passes with a clock mark between
    blocks (one clock pass, so on CUDA one synchronisation, per network pass). A key that
    fails to build or run gets a failed row; its positions take another key of the slot."""
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
            chain = _runnable(net, networks, ready)
            if chain is None:  # a slot none of whose entries runs: time what can be alone
                continue
            try:
                _time_network(chain, record, settings, clock)
            except Exception as exc:  # blocks that do not chain (a broken custom space)
                for r in chain:
                    if r.job.key in record:
                        rows[r.job.key] = _failed(r.job, settings, _reason(exc))
    for key, r in ready.items():
        if key in record and key not in rows:
            rows[key] = r.row
    for key in record - rows.keys():
        rows[key] = _failed(jobs[key], settings, "no runnable network held this entry")
    return {k: finish_row(v) for k, v in rows.items()}


def _runnable(
    net: Sequence[str], networks: Sequence[Sequence[str]], ready: dict[str, Ready]
) -> list[Ready] | None:
    chain = []
    for position, key in enumerate(net):
        if key not in ready:
            key = next((n[position] for n in networks if n[position] in ready), None)
            if key is None:
                return None
        chain.append(ready[key])
    return chain


def _time_network(
    chain: list[Ready], record: set[str], settings: BuildSettings, clock: Clock
) -> None:
    x0 = chain[0].args
    for _ in range(NETWORK_WARMUP):
        _pass(chain, x0)
    for _ in range(settings.trials):
        clock.start_pass()
        marks = [clock.mark()]
        x = x0
        for r in chain:
            x = (r.module(*x),)
            marks.append(clock.mark())
        clock.finish()
        for r, start, end in zip(chain, marks, marks[1:], strict=False):
            if r.job.key in record:
                r.row["samples_us"].append(clock.elapsed_us(start, end))


def _pass(chain: list[Ready], x: tuple) -> None:
    for r in chain:
        x = (r.module(*x),)


def measure(
    todo: Sequence[Job],
    slots: Sequence[Sequence[Job]],
    settings: BuildSettings,
    clock: Clock,
    networks_per_group: int = 4,
    seed: int = 0,
    on_group: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows for `todo`, measured in context networks through `slots` (the jobs each slot
    can hold, in order), a group of networks at a time; `on_group` gets each group's rows
    (to save them) as soon as they are measured."""
    jobs = {j.key: j for slot in slots for j in slot}
    jobs.update({j.key: j for j in todo})
    slot_keys = [[j.key for j in slot] for slot in slots]
    networks = plan(slot_keys, [j.key for j in todo], seed)
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
    settings: BuildSettings,
    clock: Clock,
    samples: int = 3,
    seed: int = 0,
) -> tuple[int, float, float]:
    """(networks, seconds, seconds spent sampling) for measuring `todo` in context: a few
    networks of the plan, spread over it, are measured for real (each a group of its own);
    the rest are assumed to cost their mean. Saves are not included."""
    import time

    jobs = {j.key: j for slot in slots for j in slot}
    jobs.update({j.key: j for j in todo})
    slot_keys = [[j.key for j in slot] for slot in slots]
    networks = plan(slot_keys, [j.key for j in todo], seed)
    if not networks:
        return 0, 0.0, 0.0
    rng = random.Random(seed)
    k = min(samples, len(networks))
    picks = [networks[round(i * (len(networks) - 1) / max(k - 1, 1))] for i in range(k)]
    # the first network in a fresh process runs slower (allocator warm-up): run one untimed
    measure_group(fill(picks[:1], slot_keys, rng), jobs, set(), settings, clock)
    start = time.perf_counter()
    for net in picks:
        record = {key for key in net if key is not None}
        measure_group(fill([net], slot_keys, rng), jobs, record, settings, clock)
    took = time.perf_counter() - start
    return len(networks), took / k * len(networks), took
