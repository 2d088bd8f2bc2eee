"""The steady allocator setting is applied once, recorded, and can be switched off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent


def run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_profile_fixes_the_allocator_and_records_it() -> None:
    code = (
        "import torch; from latprof.profiler import profile; from latprof.config import "
        "ProfileConfig; from latprof.measure import allocator; print(allocator.setting()); "
        "p = profile(torch.nn.ReLU(), (torch.zeros(2),), config=ProfileConfig(warmup=1, "
        "trials=2)); print(p.environment.allocator)"
    )
    before, recorded = run(code).splitlines()
    assert before == "default"
    assert recorded == "glibc mmap_threshold=33554432 trim_threshold=1073741824"


def test_opt_out_with_the_environment_variable() -> None:
    code = "from latprof.measure import allocator; print(allocator.steady())"
    assert run(code, LATPROF_ALLOCATOR="default") == "default (LATPROF_ALLOCATOR=default)"
