"""End-to-end latency of a MODEL under both host allocator conditions, in one run.

glibc cannot go back to its dynamic thresholds once they are fixed, so the condition the
profile is not measured under needs a process of its own (`python -m latprof.conditions`),
started with or without glibc's MALLOC_* variables (allocator.GLIBC_ENV). Both conditions
run in fresh child processes that time plain forward passes in alternating rounds (A B,
B A, ...), so that drift spreads over both and they differ only by the allocator; each
reports its minor page faults per pass (getrusage).
"""

from __future__ import annotations

import json
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


def check_dict(system: ConditionRun, steady: ConditionRun, profiled: str) -> dict[str, Any]:
    """The comparison as saved in a profile (`allocator_check`)."""
    return {
        "profiled": profiled,
        "system": asdict(system) | {"median_us": system.median_us},
        "steady": asdict(steady) | {"median_us": steady.median_us},
        "ratio_steady_to_system": (
            steady.median_us / system.median_us if system.median_us else None
        ),
    }


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
    child_request: dict[str, Any], passes: int, warmup: int
) -> tuple[ConditionRun, ConditionRun]:
    """The same MODEL in two fresh child processes, one per condition, timed in alternating
    rounds (system first in even rounds, steady first in odd ones); (system, steady).

    Both conditions run in children so that they differ only by the allocator: a process
    that has just profiled (copies, hooks, MAC counting) runs its passes in another state."""
    children = {
        name: subprocess.Popen(
            [sys.executable, "-m", "latprof.conditions"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=allocator.child_env(name),
        )
        for name in allocator.CONDITIONS
    }
    samples: dict[str, list[float]] = {name: [] for name in children}
    faults = dict.fromkeys(children, 0)
    try:
        ready = {n: _ask(c, {**child_request, "warmup": warmup}) for n, c in children.items()}
        per_round = max(1, -(-passes // ROUNDS))
        for r in range(ROUNDS):
            order = allocator.CONDITIONS if r % 2 == 0 else allocator.CONDITIONS[::-1]
            for name in order:
                got = _ask(children[name], {"passes": per_round})
                samples[name] += got["samples_us"]
                faults[name] += got["faults"]
        for child in children.values():
            _ask(child, {"quit": True}, expect_reply=False)
    finally:
        for child in children.values():
            if child.stdin:
                child.stdin.close()
            child.wait(timeout=30)
    runs = [
        ConditionRun(n, ready[n]["setting"], samples[n], faults[n] / len(samples[n]))
        for n in allocator.CONDITIONS
    ]
    return runs[0], runs[1]


def _ask(child: subprocess.Popen, message: dict[str, Any], expect_reply: bool = True) -> Any:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(message) + "\n")
    child.stdin.flush()
    if not expect_reply:
        return None
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
    system, steady = compare(
        child_request, passes=max(config.trials, 2 * ROUNDS), warmup=min(config.warmup, 5)
    )
    return check_dict(system, steady, config.allocator)


def _spread(*runs: tuple[list[float], float]) -> float:
    """How far two medians must differ to count: the largest of the runs' IQR / median
    (samples, median), and at least NOISE_FLOOR."""
    return max([summarize(samples).iqr / median for samples, median in runs] + [NOISE_FLOOR])


def notice_of(check: dict[str, Any]) -> Notice | None:
    """A notice when the two conditions differ beyond the noise, else None."""
    from latprof.records import Notice

    system, steady = check["system"], check["steady"]
    spread = _spread(
        (system["samples_us"], system["median_us"]), (steady["samples_us"], steady["median_us"])
    )
    gain = 1 - steady["median_us"] / system["median_us"]
    if abs(gain) <= spread:
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
    """A notice when this process, profiled under the system allocator, ran the model (its
    plain passes `own_us`) unlike the check's fresh system process, beyond both sides' noise,
    and with another page-fault count: under glibc's dynamic thresholds the latency then
    depends on the process's allocation history. Else None."""
    from latprof.records import Notice

    child = check["system"]
    if check["profiled"] != "system" or faults_per_pass is None or not own_us:
        return None
    own = summarize(own_us)
    if not child["median_us"] or not own.median:
        return None
    spread = _spread((child["samples_us"], child["median_us"]), (own_us, own.median))
    change = own.median / child["median_us"] - 1
    theirs = child["faults_per_pass"]
    apart = abs(faults_per_pass - theirs) > max(HISTORY_FAULTS, 0.2 * max(faults_per_pass, theirs))
    if abs(change) <= spread or not apart:
        return None
    message = (
        f"this process ran the model {100 * abs(change):.0f} % "
        f"{'faster' if change < 0 else 'slower'} than a fresh process under the same system "
        f"allocator ({own.median:,.1f} µs vs {child['median_us']:,.1f} µs median; page faults "
        f"per pass {faults_per_pass:,.0f} here, {theirs:,.0f} there): with glibc's dynamic "
        "thresholds this model's latency depends on what a process allocated before, so a "
        "deployed process may see either figure"
    )
    return Notice(
        "allocator-history",
        message,
        "for one figure that holds in every process, profile with --allocator steady and "
        f"deploy with {allocator.DEPLOY_HINT}",
    )
