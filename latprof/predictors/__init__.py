"""Analytical latency predictors over per-call layer descriptions.

Every predictor maps ``list[LayerInfo]`` (from `describe`) to one number per model:

* ``flops``    total MACs (`flops_model.predict`); scale with `metrics.fit_scale`.
* ``roofline`` seconds, Σ max(MACs / peak, bytes / bandwidth) (`roofline.predict`); the
  rates come from a `latprof.calibrate.Calibration`.
* ``systolic`` cycles on an s1 × s2 array, U-Boost Eq. 9-15 (`systolic.predict`).

Units differ, so compare predictors by rank (`metrics.kendall_tau`, `metrics.spearman`,
`metrics.top_overlap`) or after a scale fit (`metrics.mape_after_fit`). `make` gives each as
a one-argument `Predictor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from latprof import rank_metrics as metrics
from latprof.predictors import flops_model, roofline, systolic
from latprof.predictors.layer_info import LayerInfo, LayerKind, describe, kind_of

__all__ = [
    "NAMES",
    "LayerInfo",
    "LayerKind",
    "Predictor",
    "Rates",
    "describe",
    "flops_model",
    "kind_of",
    "make",
    "metrics",
    "roofline",
    "systolic",
]

Predictor = Callable[[Sequence[LayerInfo]], float]
"""layers -> predicted cost of one forward pass (unit depends on the predictor)."""

NAMES = ("flops", "roofline", "systolic")


class Rates(Protocol):
    """What the roofline needs from a calibration (`latprof.calibrate.Calibration` has it)."""

    peak_macs_per_s: float
    bandwidth_bytes_per_s: float


def make(
    name: str,
    calibration: Rates | None = None,
    *,
    s1: int = systolic.ARRAY_SIZE[0],
    s2: int = systolic.ARRAY_SIZE[1],
) -> Predictor:
    """The predictor called `name` ("flops", "roofline" or "systolic") as a function of the
    layers. "roofline" needs `calibration`; `s1`, `s2` size the systolic array."""
    if name == "flops":
        return flops_model.predict
    if name == "roofline":
        if calibration is None:
            raise ValueError("the roofline predictor needs a calibration (peak and bandwidth)")
        return partial(
            roofline.predict,
            peak_macs_per_s=calibration.peak_macs_per_s,
            bandwidth_bytes_per_s=calibration.bandwidth_bytes_per_s,
        )
    if name == "systolic":
        return partial(systolic.predict, s1=s1, s2=s2)
    raise ValueError(f"unknown predictor {name!r}; choose from {', '.join(NAMES)}")
