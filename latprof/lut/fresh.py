"""Validation rows measured in a fresh process (`python -m latprof.lut.fresh`).

A build's own process is not where a table's predictions are used: after measuring
thousands of entries it runs whole networks 5-13 % slower than a fresh process does (mbv2,
this project's CPU; docs/benchmarks.md). The build's fit and self-check therefore measure
their architectures in a child process, as `latprof validate` would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latprof.errors import LatprofWarning, ModelRunError


def startup_s() -> float | None:
    """Seconds since this process started (Linux: /proc), i.e. about what a fresh latprof
    process costs before it measures anything, when called before any measuring."""
    import os

    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)


def validate_rows(path: Path, samples: int, seed: int, models: list[str] | None = None) -> list:
    """Rows of `validate` for `samples` random archs of `seed` (or for `models`) of the table
    at `path`, measured in a fresh child process with the table's thread count."""
    request = {"path": str(path), "samples": samples, "seed": seed, "models": models or []}
    cmd = [sys.executable, "-m", "latprof.lut.fresh", json.dumps(request)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ModelRunError(
            f"measuring architectures in a fresh process failed: {lines[-1] if lines else '?'}"
        )
    return json.loads(done.stdout)


def rows_for(request: dict[str, Any]) -> list[dict[str, Any]]:
    """What the child process computes (also callable in-process)."""
    import torch

    from latprof.lut.table import LatencyTable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatprofWarning)
        table = LatencyTable.load(request["path"])
    if table.meta.get("threads"):
        torch.set_num_threads(int(table.meta["threads"]))
    return measure(table, request["samples"], request["seed"], request["models"])


def rows(
    table: Any,
    samples: int,
    seed: int,
    models: list[str] | None = None,
    path: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Validation rows of `samples` random archs of `seed` (or of `models`): in a fresh
    process when `path` (the table saved there) is given, else in this one."""
    if path is not None:
        return validate_rows(path, samples, seed, models)
    return measure(table, samples, seed, models, progress)


def measure(
    table: Any,
    samples: int,
    seed: int,
    models: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Validation rows measured in this process."""
    from latprof.config import MeasureSettings
    from latprof.lut import validate as val

    targets: list[Any] = list(models or []) or val.sampled_targets(table, samples, seed)
    settings = MeasureSettings.of_table(table.meta)
    return val.validate(table, targets, settings, "report", progress=progress)


if __name__ == "__main__":
    print(json.dumps(rows_for(json.loads(sys.argv[1]))))
