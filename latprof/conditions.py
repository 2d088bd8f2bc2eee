"""End-to-end latency of a MODEL under both host allocator conditions, in one run.

glibc cannot go back to its dynamic thresholds once they are fixed, so the condition the
profile is not measured under runs in a child process (`python -m latprof.conditions`),
started with or without glibc's MALLOC_*_THRESHOLD_ variables. Parent and child time plain
forward passes in alternating rounds (A B, B A, ...) so that drift spreads over both, and
each reports its minor page faults per pass (getrusage).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from latprof.errors import ModelRunError
from latprof.measure import allocator
from latprof.stats import summarize

ROUNDS = 6
NOISE_FLOOR = 0.03
"""A difference below 3 % of the median (or below the passes' spread) is not reported."""


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


def check_dict(main: ConditionRun, other: ConditionRun) -> dict[str, Any]:
    """The comparison as saved in a profile (`allocator_check`)."""
    return {
        "main": asdict(main) | {"median_us": main.median_us},
        "other": asdict(other) | {"median_us": other.median_us},
        "ratio_other_to_main": other.median_us / main.median_us if main.median_us else None,
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
    forward: Callable[[], Any],
    child_request: dict[str, Any],
    other: str,
    passes: int,
    warmup: int,
) -> tuple[ConditionRun, ConditionRun]:
    """Time `forward` here and the same MODEL in a child under condition `other`,
    alternating rounds; (here, child)."""
    cmd = [sys.executable, "-m", "latprof.conditions"]
    child = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=allocator.child_env(other),
    )
    try:
        ready = _ask(child, {**child_request, "warmup": warmup})
        for _ in range(warmup):
            forward()
        per_round = max(1, -(-passes // ROUNDS))
        here: list[float] = []
        there: list[float] = []
        faults_here = faults_there = 0
        for r in range(ROUNDS):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for who in order:
                if who == 0:
                    samples, faults = time_passes(forward, per_round)
                    here += samples
                    faults_here += faults
                else:
                    got = _ask(child, {"passes": per_round})
                    there += got["samples_us"]
                    faults_there += got["faults"]
        _ask(child, {"quit": True}, expect_reply=False)
    finally:
        child.stdin.close() if child.stdin else None
        child.wait(timeout=30)
    mine = ConditionRun(allocator.condition(), allocator.setting(), here, faults_here / len(here))
    theirs = ConditionRun(other, ready["setting"], there, faults_there / len(there))
    return mine, theirs


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


def measure_both(
    module: Any,
    args: tuple,
    kwargs: dict,
    request: dict[str, Any],
    config: Any,
) -> dict[str, Any]:
    """End-to-end passes of the loaded model here and, in a child, under the other
    condition; the `allocator_check` dict of a profile. `request` names the MODEL for the
    child (model, shapes, batch_size)."""
    import torch

    from latprof.measure.device import DTYPES, eval_mode, place, prepare_model, threads

    dtype = DTYPES[config.dtype]
    other = "steady" if allocator.condition() == "system" else "system"
    child_request = {
        **request,
        "device": config.device,
        "dtype": config.dtype,
        "threads": config.threads or torch.get_num_threads(),
    }
    with threads(config.threads):
        module = prepare_model(module, config.device, dtype)
        args, kwargs = place(tuple(args), config.device, dtype), place(kwargs, config.device, dtype)
        with eval_mode(module), torch.inference_mode():
            here, there = compare(
                lambda: module(*args, **kwargs),
                child_request,
                other,
                passes=max(config.trials, 2 * ROUNDS),
                warmup=min(config.warmup, 5),
            )
    return check_dict(here, there)


def notice_of(check: dict[str, Any]) -> Any:
    """A notice when the two conditions differ beyond the noise, else None."""
    from latprof.records import Notice

    main, other = check["main"], check["other"]
    spread = max(
        summarize(main["samples_us"]).iqr / main["median_us"],
        summarize(other["samples_us"]).iqr / other["median_us"],
        NOISE_FLOOR,
    )
    steady, system = (main, other) if main["condition"] == "steady" else (other, main)
    gain = 1 - steady["median_us"] / system["median_us"]
    if abs(gain) <= spread:
        return None
    faults = (
        f"page faults per pass: steady {steady['faults_per_pass']:.0f}, "
        f"system {system['faults_per_pass']:.0f}"
    )
    if gain > 0:
        message = (
            f"with a steady allocator this model runs {100 * gain:.0f} % faster "
            f"({steady['median_us']:,.1f} µs vs {system['median_us']:,.1f} µs median, "
            f"{faults}); this profile measured the {main['condition']} condition"
        )
        hint = f"to run it that way in deployment, set {allocator.DEPLOY_HINT}"
    else:
        message = (
            f"with a steady allocator this model runs {100 * -gain:.0f} % slower "
            f"({steady['median_us']:,.1f} µs vs {system['median_us']:,.1f} µs median, {faults})"
        )
        hint = "keep the system allocator for this model"
    return Notice("allocator", message, hint)
