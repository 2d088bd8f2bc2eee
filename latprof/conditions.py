"""End-to-end latency of a MODEL under both host allocator conditions, in one run.

glibc cannot go back to its dynamic thresholds once they are fixed, so the condition the
profile is not measured under needs a process of its own (`python -m latprof.conditions`),
started with or without glibc's MALLOC_* variables (allocator.GLIBC_ENV). Both conditions
run in fresh child processes that time plain forward passes in alternating rounds (A B,
B A, ...), so that drift spreads over both and they differ only by the allocator; each
reports its minor page faults per pass (getrusage). The system condition runs in
SYSTEM_PROCESSES processes: under glibc's dynamic thresholds two processes running the same
code can draw different allocation histories (page faults, latency), and one process would
show only one of them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from latprof.errors import ModelRunError
from latprof.measure import allocator
from latprof.stats import summarize

if TYPE_CHECKING:
    from latprof.records import Notice

ROUNDS = 6
NOISE_FLOOR = 0.03
"""A difference below 3 % of the median (or below the passes' spread) is not reported."""
SYSTEM_PROCESSES = 2
"""Fresh processes under the system allocator; the first is `system`, the rest `system_more`."""
HISTORY_FAULTS = 50
"""Page faults per pass within this, or within 20 % of the larger count, of each other are the
same allocation history."""


@dataclass(frozen=True)
class ConditionRun:
    """Plain forward passes under one allocator condition."""

    condition: str
    setting: str
    samples_us: list[float]
    faults_per_pass: float

    @property
    def median_us(self) -> float:
        return summarize(self.samples_us).median


def check_dict(
    system: ConditionRun,
    steady: ConditionRun,
    profiled: str,
    system_more: list[ConditionRun] | None = None,
) -> dict[str, Any]:
    """The comparison as saved in a profile (`allocator_check`); `system_more` are the other
    fresh system processes (the figures and the ratio use the first, `system`)."""
    return {
        "profiled": profiled,
        "system": _run_dict(system),
        "steady": _run_dict(steady),
        "ratio_steady_to_system": (
            steady.median_us / system.median_us if system.median_us else None
        ),
        "system_more": [_run_dict(run) for run in system_more or []],
    }


def _run_dict(run: ConditionRun) -> dict[str, Any]:
    return asdict(run) | {"median_us": run.median_us}


def time_passes(forward: Callable[[], Any], n: int) -> tuple[list[float], int]:
    """n plain passes: their µs and the minor page faults they took together."""
    samples = []
    before = allocator.minor_faults()
    for _ in range(n):
        start = time.perf_counter_ns()
        forward()
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return samples, allocator.minor_faults() - before


def compare(
    child_request: dict[str, Any], passes: int, warmup: int, system_processes: int = 1
) -> tuple[ConditionRun, ConditionRun, list[ConditionRun]]:
    """The same MODEL in fresh child processes, one per condition (`system_processes` for
    the system condition), timed in alternating rounds (system first in even rounds, steady
    first in odd ones); (system, steady, the other system processes).

    Both conditions run in children so that they differ only by the allocator: a process
    that has just profiled (copies, hooks, MAC counting) runs its passes in another state."""
    names = [*(("system", i) for i in range(system_processes)), ("steady", 0)]
    children: dict[tuple[str, int], subprocess.Popen] = {}
    samples: dict[tuple[str, int], list[float]] = {name: [] for name in names}
    faults = dict.fromkeys(names, 0)
    finished = False
    try:
        for name in names:
            children[name] = subprocess.Popen(
                [sys.executable, "-m", "latprof.conditions"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=allocator.child_env(name[0]),
            )
        for child in children.values():  # all load the model at once, then report
            _send(child, {**child_request, "warmup": warmup})
        ready = {n: _reply(c) for n, c in children.items()}
        per_round = max(1, -(-passes // ROUNDS))
        for r in range(ROUNDS):
            for name in names if r % 2 == 0 else names[::-1]:
                _send(children[name], {"passes": per_round})
                got = _reply(children[name])
                samples[name] += got["samples_us"]
                faults[name] += got["faults"]
        for child in children.values():
            _send(child, {"quit": True})
        finished = True
    finally:
        for child in children.values():
            _end(child, finished)
    runs = [
        ConditionRun(n[0], ready[n]["setting"], samples[n], faults[n] / len(samples[n]))
        for n in names
    ]
    return runs[0], runs[-1], runs[1:-1]


def _send(child: subprocess.Popen, message: dict[str, Any]) -> None:
    assert child.stdin is not None
    child.stdin.write(json.dumps(message) + "\n")
    child.stdin.flush()


def _reply(child: subprocess.Popen) -> Any:
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        err = (child.stderr.read() if child.stderr else "").strip().splitlines()
        raise ModelRunError(
            "the allocator comparison's child process failed: "
            + (err[-1] if err else "no output")
            + "; skip it with --no-allocator-check"
        )
    reply = json.loads(line)
    if "error" in reply:
        raise ModelRunError(f"the allocator comparison's child process failed: {reply['error']}")
    return reply


def _end(child: subprocess.Popen, finished: bool) -> None:
    """Close a child's input and reap it; killed at once when the comparison failed (it may
    still be loading or timing), or when it does not end within 30 s."""
    if not finished:
        child.kill()
    try:
        if child.stdin:
            child.stdin.close()
    except OSError:  # the child is gone: its end of the pipe too
        pass
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _child_main() -> None:
    """Load the MODEL named on stdin, then time passes on request; JSON lines both ways."""
    import torch

    from latprof.loading import load_model
    from latprof.measure.device import DTYPES, eval_mode, place, prepare_model

    request = json.loads(sys.stdin.readline())
    try:
        if request.get("threads"):
            torch.set_num_threads(int(request["threads"]))
        shapes = [tuple(s) for s in request.get("shapes") or []]
        loaded = load_model(request["model"], shapes, request.get("batch_size"))
        dtype = DTYPES[request["dtype"]]
        module = prepare_model(loaded.module, request["device"], dtype)
        args = place(loaded.args, request["device"], dtype)
        kwargs = place(loaded.kwargs, request["device"], dtype)
    except Exception as exc:  # the user's model file may raise anything
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return
    with eval_mode(module), torch.inference_mode():
        for _ in range(int(request.get("warmup", 1))):
            module(*args, **kwargs)
        print(json.dumps({"setting": allocator.setting()}), flush=True)
        for line in sys.stdin:
            message = json.loads(line)
            if message.get("quit"):
                return
            samples, faults = time_passes(lambda: module(*args, **kwargs), message["passes"])
            print(json.dumps({"samples_us": samples, "faults": faults}), flush=True)


if __name__ == "__main__":
    _child_main()


def measure_both(request: dict[str, Any], config: Any) -> dict[str, Any]:
    """End-to-end passes of the MODEL `request` names (model, shapes, batch_size) under both
    conditions, each in a child process; the `allocator_check` dict of a profile."""
    import torch

    child_request = {
        **request,
        "device": config.device,
        "dtype": config.dtype,
        "threads": config.threads or torch.get_num_threads(),
    }
    system, steady, more = compare(
        child_request,
        passes=max(config.trials, 2 * ROUNDS),
        warmup=min(config.warmup, 5),
        system_processes=SYSTEM_PROCESSES,
    )
    return check_dict(system, steady, config.allocator, more)


def _spread(*runs: tuple[list[float], float]) -> float:
    """How far two medians must differ to count: the largest of the runs' IQR / median
    (samples, median), and at least NOISE_FLOOR."""
    return max([summarize(samples).iqr / median for samples, median in runs] + [NOISE_FLOOR])


def notice_of(check: dict[str, Any]) -> Notice | None:
    """A notice when the two conditions differ beyond the noise and in page faults, else None.

    The noise is the larger of the passes' spread and how far the two fresh system processes
    ran apart while drawing the same history (same faults): processes running the same code
    differ that much on this machine for no reason of the allocator's. Without a page-fault
    difference the allocator has no way to change the latency, so a gap is not its."""
    from latprof.records import Notice

    system, steady = check["system"], check["steady"]
    spread = _spread(
        (system["samples_us"], system["median_us"]), (steady["samples_us"], steady["median_us"])
    )
    first = _process(system)
    for other in map(_process, check.get("system_more", [])):
        if other.median_us and first.median_us and not _faults_apart(first, other):
            spread = max(spread, abs(other.median_us / first.median_us - 1))
    gain = 1 - steady["median_us"] / system["median_us"]
    if abs(gain) <= spread or not _faults_apart(first, _process(steady)):
        return None
    figures = (
        f"{steady['median_us']:,.1f} µs vs {system['median_us']:,.1f} µs median in fresh "
        f"processes; page faults per pass: steady {steady['faults_per_pass']:.0f}, "
        f"system {system['faults_per_pass']:.0f}"
    )
    if gain < 0:
        message = f"with a steady allocator this model runs {100 * -gain:.0f} % slower ({figures})"
        return Notice("allocator", message, "keep the system allocator for this model")
    if check["profiled"] == "steady":
        message = (
            f"this profile used a steady allocator; run as usual (system allocator) the model "
            f"is {100 * (system['median_us'] / steady['median_us'] - 1):.0f} % slower ({figures})"
        )
    else:
        message = f"with a steady allocator this model runs {100 * gain:.0f} % faster ({figures})"
    return Notice(
        "allocator", message, f"to run it that way in deployment, set {allocator.DEPLOY_HINT}"
    )


def history_notice(
    check: dict[str, Any], own_us: list[float], faults_per_pass: float | None
) -> Notice | None:
    """A notice when two processes under the system allocator ran the model apart, beyond
    both sides' noise and with other page-fault counts: this process (profiled under the
    system allocator; its plain passes `own_us`) against a fresh one of the check, or two
    fresh ones. Under glibc's dynamic thresholds the latency then depends on the process's
    allocation history. The pair furthest apart is named; else None."""
    from latprof.records import Notice

    fresh = [
        _process(run)
        for run in [check["system"], *check.get("system_more", [])]
        if run["median_us"]
    ]
    pairs = [(a, b) for i, a in enumerate(fresh) for b in fresh[i + 1 :]]
    own = None
    if check["profiled"] == "system" and faults_per_pass is not None and own_us:
        own = _Process(own_us, summarize(own_us).median, faults_per_pass)
        pairs = [(own, f) for f in fresh if own.median_us] + pairs
    apart = [(a, b) for a, b in pairs if _histories_apart(a, b)]
    if not apart:
        return None
    a, b = max(apart, key=lambda pair: abs(math.log(pair[0].median_us / pair[1].median_us)))
    if a is own:
        change = a.median_us / b.median_us - 1
        message = (
            f"this process ran the model {100 * abs(change):.0f} % "
            f"{'faster' if change < 0 else 'slower'} than a fresh process under the same "
            f"system allocator ({a.median_us:,.1f} µs vs {b.median_us:,.1f} µs median; page "
            f"faults per pass {a.faults:,.0f} here, {b.faults:,.0f} there)"
        )
    else:
        fast, slow = sorted((a, b), key=lambda p: p.median_us)
        message = (
            f"two fresh processes under the system allocator ran the model "
            f"{100 * (slow.median_us / fast.median_us - 1):.0f} % apart ({fast.median_us:,.1f} "
            f"µs vs {slow.median_us:,.1f} µs median; page faults per pass {fast.faults:,.0f} "
            f"and {slow.faults:,.0f})"
        )
    hint = (
        f"this profile's steady figure holds in every process started with {allocator.DEPLOY_HINT}"
        if check["profiled"] == "steady"
        else "for one figure that holds in every process, profile with --allocator steady and "
        f"deploy with {allocator.DEPLOY_HINT}"
    )
    return Notice(
        "allocator-history",
        message + ": with glibc's dynamic thresholds this model's latency depends on what a "
        "process allocated before, so a deployed process may see either figure",
        hint,
    )


@dataclass(frozen=True)
class _Process:
    samples_us: list[float]
    median_us: float
    faults: float


def _process(run: dict[str, Any]) -> _Process:
    return _Process(run["samples_us"], run["median_us"], run["faults_per_pass"])


def _faults_apart(a: _Process, b: _Process) -> bool:
    """Page faults per pass apart by more than HISTORY_FAULTS and 20 % of the larger count."""
    return abs(a.faults - b.faults) > max(HISTORY_FAULTS, 0.2 * max(a.faults, b.faults))


def _histories_apart(a: _Process, b: _Process) -> bool:
    """Medians apart beyond both sides' noise, and page faults apart."""
    spread = _spread((a.samples_us, a.median_us), (b.samples_us, b.median_us))
    return _faults_apart(a, b) and abs(a.median_us / b.median_us - 1) > spread
