"""The example search loop reaches its latency target on an exact hand-made table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from latprof import latency_model, predict
from tests.test_reuse import fake_table, tiny_space

EXAMPLE = Path(__file__).parent.parent / "examples" / "latency_search.py"


def load_example():
    spec = importlib.util.spec_from_file_location("latency_search", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target", [130.0, 150.0, 190.0])
def test_search_hits_the_expected_latency_target(target: float) -> None:
    table = fake_table()
    model = latency_model(table, tiny_space())
    arch, history = load_example().search(model, target, steps=300)
    assert history[-1]["latency_us"] == pytest.approx(target, rel=0.03)
    # the derived arch is a valid path whose LUT latency lies between the extremes
    pred = predict(table, arch, space=tiny_space())
    assert 10 + 20 + 80 <= pred.total_us <= 10 + 70 + 70 + 80
