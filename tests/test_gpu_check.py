"""The CPU-side parts of `make gpu-check`: its plan for N GPUs and its refusal without CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_plan_covers_every_gpu_the_tf32_pair_and_the_table_check() -> None:
    lines = run("--plan", "2").stdout.splitlines()
    names = [line.split("\t")[0] for line in lines]
    assert names[0] == "cuda tests"
    for dev in ("cuda:0", "cuda:1"):
        assert f"env {dev}" in names
        assert all(f"profile zoo:{m} {dev}" in names for m in ("cnn", "dscnn", "tfnas-a"))
    assert "profile tfnas-a tf32 on" in names and "profile tfnas-a tf32 off" in names
    tree = next(line for line in lines if line.startswith("module tree zoo:vit"))
    assert "--by module" in tree and "--device cuda" in tree
    units = next(line for line in lines if line.startswith("build-lut vit units in model"))
    assert "--context models --device cuda" in units and "predict vit" in names
    build = next(line for line in lines if line.startswith("build-lut tfnas"))
    assert "--device cuda" in build and "--archs zoo:tfnas-a" in build
    random = next(line for line in lines if line.startswith("validate 20 random"))
    assert "--samples 20" in random and "--exact" in random
    assert sum(int(line.split("\t")[1]) for line in lines) < 8 * 60 * 4  # timeouts bounded


def test_without_cuda_it_says_so() -> None:
    import torch

    if torch.cuda.is_available():
        return
    result = run()
    assert result.returncode == 1
    assert "CUDA is not available" in result.stderr
