"""Shared fixtures: tiny models and a check that no hook leaks out of latprof."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from latprof.measure.allocator import CONDITIONS


@pytest.fixture(autouse=True)
def no_global_hooks_leak() -> Iterator[None]:
    from torch.nn.modules import module as m

    before = (len(m._global_forward_hooks), len(m._global_forward_pre_hooks))
    yield
    assert (len(m._global_forward_hooks), len(m._global_forward_pre_hooks)) == before


@pytest.fixture(autouse=True)
def fast_child_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes (the allocator check, the build's fit and self-check) cost ~1.5 s of
    torch import each: tests stub them unless marked `real_children` (which test them)."""
    if request.node.get_closest_marker("real_children"):
        return
    from latprof import conditions
    from latprof.lut import fresh

    def two_conditions(
        child_request: dict, passes: int, warmup: int, system_processes: int = 1
    ) -> tuple:
        runs = [conditions.ConditionRun(n, "stub", [100.0] * passes, 0.0) for n in CONDITIONS]
        more = [runs[0]] * (system_processes - 1)
        return runs[0], runs[1], more

    def in_this_process(path: Path, samples: int, seed: int, models: list | None = None) -> list:
        request = {"path": str(path), "samples": samples, "seed": seed, "models": models or []}
        return fresh.rows_for(request)

    monkeypatch.setattr(conditions, "compare", two_conditions)
    monkeypatch.setattr(fresh, "validate_rows", in_this_process)


@pytest.fixture
def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )


@pytest.fixture(scope="session")
def tiny_lut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real lookup table of tests/spaces/tiny.toml (width step 4, fast settings)."""
    from typer.testing import CliRunner

    from latprof.cli import app

    out = tmp_path_factory.mktemp("lut") / "tiny.parquet"
    space = Path(__file__).parent / "spaces" / "tiny.toml"
    fast = ["--warmup", "1", "--trials", "3", "--threads", "1"]
    args = ["build-lut", "--space", str(space), "--width-step", "4", *fast, "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out
