"""Helper of profile_bench.py: run `latprof profile ARGS...` in this process, timing phases.

    python bench/_cli_phases.py OUT.json profile zoo:dscnn --threads 1 --format csv

The imports the CLI would do lazily are done first, one at a time and in the CLI's order, so
each one's cost is measured on its own (CSV output imports neither pyarrow nor rich); then
the CLI runs in-process (`latprof.cli.run_cli`) with the phases of `latprof.profiler.profile`
wrapped in timers. Writes {"phases": [[name, s], ...], "in_process_s": s} to OUT.json, then
ends with os._exit like the console entry point `latprof.cli.main` (no interpreter teardown).
Not a benchmark itself (no main()); run_all skips it.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

PHASES: dict[str, float] = {}


def add(name: str, seconds: float) -> None:
    PHASES[name] = PHASES.get(name, 0.0) + seconds


def timed_import(name: str, module: str) -> None:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module(module)
    add(name, time.perf_counter() - start)


def wrap(owner: Any, attr: str, name: str) -> None:
    """Replace owner.attr by a wrapper that adds its run time to phase `name`."""
    inner: Callable[..., Any] = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            add(name, time.perf_counter() - start)

    setattr(owner, attr, timed)


def run(out_path: str, argv: list[str]) -> None:
    timed_import("import latprof.cli (typer, click)", "latprof.cli")
    timed_import("import torch", "torch")
    timed_import("import thop (on top of torch)", "thop")
    timed_import("import latprof.loading/profiler/macs/env (rest)", "latprof.profiler")
    if "csv" not in argv and "markdown" not in argv:
        timed_import("import pyarrow (via latprof.io.profile_file)", "latprof.io.profile_file")
        timed_import("import rich renderers (latprof.render.terminal)", "latprof.render.terminal")

    import latprof.cli
    import latprof.env
    import latprof.io.export
    import latprof.loading
    import latprof.profiler

    wrap(latprof.loading, "load_model", "load_model (build the zoo model, random input)")
    wrap(latprof.profiler, "profile", "profile() other (leaves, copies, notices, records)")
    wrap(latprof.profiler, "_run_probe", "shape probe pass (forward hooks)")
    wrap(latprof.profiler, "count_layer_costs", "MAC counting (deep copy + thop pass)")
    wrap(latprof.env, "capture", "environment capture")
    wrap(latprof.profiler, "calibrate_bias", "bias calibration (64 Identity x 46 passes)")
    wrap(latprof.profiler, "run_trials", "warm-up + trials (the timed passes)")
    wrap(latprof.io.export, "profile_text", "render the output (CSV)")

    sys.argv = ["latprof", *argv]
    start = time.perf_counter()
    try:
        latprof.cli.run_cli()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    cli_total = time.perf_counter() - start
    # profile() contains the phases after it; keep only its own remainder
    inner = (
        "shape probe pass (forward hooks)",
        "MAC counting (deep copy + thop pass)",
        "environment capture",
        "bias calibration (64 Identity x 46 passes)",
        "warm-up + trials (the timed passes)",
    )
    other = "profile() other (leaves, copies, notices, records)"
    PHASES[other] -= sum(PHASES.get(n, 0.0) for n in inner)
    add(
        "CLI rest (argument parsing, set threads, write stdout)",
        cli_total - sum(v for k, v in PHASES.items() if not k.startswith("import")),
    )
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "phases": list(PHASES.items()),
                "in_process_s": time.perf_counter() - T0,
            },
            fh,
        )


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # as latprof.cli.main does
