"""Roofline model per layer (seed 003: operational intensity and execution efficiency).

A layer call takes at least ``max(MACs / peak, bytes / bandwidth)`` seconds, bytes being its
inputs + outputs + weights (`LayerInfo.bytes_total`). Rates come from `latprof.calibrate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from latprof.predictors.layer_info import LayerInfo

__all__ = [
    "Bound",
    "attainable_macs_per_s",
    "bound",
    "efficiency",
    "intensity",
    "layer_time_s",
    "predict",
    "ridge_point",
]

Bound = Literal["compute", "memory"]


def _check(peak_macs_per_s: float, bandwidth_bytes_per_s: float) -> None:
    if not (peak_macs_per_s > 0 and bandwidth_bytes_per_s > 0):
        raise ValueError(
            f"peak and bandwidth must be positive, got {peak_macs_per_s}, {bandwidth_bytes_per_s}"
        )


def intensity(layer: LayerInfo) -> float:
    """Operational intensity in MACs per byte moved (inf for MACs without bytes, 0 for none)."""
    moved = layer.bytes_total
    if moved == 0:
        return math.inf if layer.macs > 0 else 0.0
    return layer.macs / moved


def ridge_point(peak_macs_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """Intensity (MACs/byte) above which a layer is compute-bound."""
    _check(peak_macs_per_s, bandwidth_bytes_per_s)
    return peak_macs_per_s / bandwidth_bytes_per_s


def layer_time_s(layer: LayerInfo, peak_macs_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """Roofline time of one call: max(MACs / peak, bytes / bandwidth), in seconds."""
    _check(peak_macs_per_s, bandwidth_bytes_per_s)
    return max(layer.macs / peak_macs_per_s, layer.bytes_total / bandwidth_bytes_per_s)


def bound(layer: LayerInfo, peak_macs_per_s: float, bandwidth_bytes_per_s: float) -> Bound:
    """Which roof limits the call: compute when MACs / peak ≥ bytes / bandwidth, else memory."""
    _check(peak_macs_per_s, bandwidth_bytes_per_s)
    compute = layer.macs / peak_macs_per_s
    memory = layer.bytes_total / bandwidth_bytes_per_s
    return "compute" if compute >= memory else "memory"


def attainable_macs_per_s(
    layer: LayerInfo, peak_macs_per_s: float, bandwidth_bytes_per_s: float
) -> float:
    """The roof at the layer's intensity: min(peak, intensity × bandwidth)."""
    _check(peak_macs_per_s, bandwidth_bytes_per_s)
    return min(peak_macs_per_s, intensity(layer) * bandwidth_bytes_per_s)


def efficiency(
    layer: LayerInfo,
    measured_s: float,
    peak_macs_per_s: float,
    bandwidth_bytes_per_s: float,
) -> float:
    """Fraction of the roofline bound reached: `layer_time_s` / measured time.

    For a layer with MACs this equals achieved MAC/s over `attainable_macs_per_s` (seed 003's
    execution efficiency w.r.t. the roofline). NaN when ``measured_s`` is not positive.
    """
    if not measured_s > 0:
        return math.nan
    return layer_time_s(layer, peak_macs_per_s, bandwidth_bytes_per_s) / measured_s


def predict(
    layers: Sequence[LayerInfo], peak_macs_per_s: float, bandwidth_bytes_per_s: float
) -> float:
    """Total roofline time of the layer calls in seconds (sum of `layer_time_s`)."""
    return float(math.fsum(layer_time_s(x, peak_macs_per_s, bandwidth_bytes_per_s) for x in layers))
